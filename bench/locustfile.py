"""The locust scenario: simulated people on the REST API, each walking its own completion at a human pace.

Run it through the driver, which launches the app and prints one table (`python bench/soak.py load`), or
alone against a running app:

    locust -f bench/locustfile.py --headless -u 32 -r 4 -t 120s --host http://127.0.0.1:7860

Locust imports gevent, which patches the standard library: load this file only in locust's own process.

Each user opens the page (`model status`, then `preview` of its prompt), then takes turns, one every
`--think` seconds (0.3-2 by default). Its prompt is a slice of the project's docs of 16-240 words (about
20-300 tokens), raw or in the chat template, its knobs greedy or sampled with its own seed. Its turns are
dealt from a shuffled deck, so every operation comes up once in a round of 12 turns: 8 steps, and one
each of preview, a step forcing text, a small tree (2 x 2) and a model status poll. Every
`--attribution-every` seconds (60 by default, the first at a random point of the first interval) its turn
is a saliency attribution of its first completion token after the first 24 words of its prompt (a short
context). After MAX_COMPLETION tokens, or when the completion finishes, it starts a new prompt.
Requests are named per operation (OPERATIONS), so locust's statistics are per operation.
"""

from __future__ import annotations

import itertools
import random
import time

import harness
from locust import HttpUser, events, task

OPERATIONS = ("model status", "preview", "step", "step (force text)", "tree", "attribution")
DECK = ("step",) * 8 + ("preview", "force", "tree", "status")
MAX_COMPLETION = 150

ATTRIBUTION_WORDS = 24
FORCED = (" however,", " and then", ", for example,", " In short")
_NUMBERS = itertools.count()


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--think", default="0.3,2", help="seconds between a user's turns: MIN,MAX (default 0.3,2)")
    parser.add_argument(
        "--attribution-every", type=float, default=60.0, help="seconds between a user's attributions (default 60)"
    )


class Explorer(HttpUser):
    """One person at the explorer: their own prompt, knobs and completion."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.number = next(_NUMBERS)
        self.rng = random.Random(self.number)
        self.think = tuple(float(value) for value in options.think.split(","))
        self.every = options.attribution_every
        self.next_attribution = time.monotonic() + self.rng.uniform(0, self.every)
        self.deck: list[str] = []
        self.new_prompt()
        self.status()
        self.preview()

    def wait_time(self) -> float:
        return self.rng.uniform(*self.think)

    def new_prompt(self) -> None:
        self.prompt = harness.docs_prompt(self.rng, self.rng.randint(*harness.PROMPT_WORDS))
        greedy = self.rng.random() < 0.5
        self.params = {"greedy": True} if greedy else {"temperature": 0.8, "top_p": 0.95, "seed": self.number}
        self.chat = self.rng.random() < 0.3
        self.completion: list[int] = []

    def body(self) -> dict:
        return {
            "prompt": self.prompt,
            "use_chat_template": self.chat,
            "completion_ids": self.completion,
            "top_k": 10,
            "params": self.params,
        }

    def post(self, name: str, path: str, body: dict) -> dict | None:
        """The answer's JSON, or None on an error (which locust counts under `name`)."""
        response = self.client.post(path, json=body, name=name)
        return response.json() if response.ok else None

    @task
    def turn(self) -> None:
        if self.completion and time.monotonic() >= self.next_attribution:
            self.next_attribution += self.every
            self.attribution()
            return
        if not self.deck:
            self.deck = list(DECK)
            self.rng.shuffle(self.deck)
        getattr(self, self.deck.pop())()

    def step(self, name: str = "step", extra: dict | None = None) -> None:
        answer = self.post(name, "/api/step", self.body() | (extra or {}))
        if answer is None:
            return
        self.completion = answer["completion_ids"]
        if answer["finished"] or len(self.completion) >= MAX_COMPLETION:
            self.new_prompt()

    def force(self) -> None:
        self.step("step (force text)", {"force_text": self.rng.choice(FORCED)})

    def preview(self) -> None:
        self.post("preview", "/api/preview", self.body())

    def tree(self) -> None:
        self.post("tree", "/api/tree", self.body() | {"width": 2, "depth": 2})

    def status(self) -> None:
        self.client.get("/api/model/status", name="model status")

    def attribution(self) -> None:
        short = " ".join(self.prompt.split()[:ATTRIBUTION_WORDS])
        request = {"prompt": short, "use_chat_template": False, "completion_ids": self.completion[:1]}
        self.post("attribution", "/api/attribution", request | {"target_index": 0, "method": "saliency"})
