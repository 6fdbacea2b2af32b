"""How much one request may cost: the limits, their defaults, flags and environment variables, and the checks.

`Budgets` holds one number per limit (None: no limit beyond the model's own). Public mode uses strict
defaults (strangers share one model), local use generous ones; each limit has a command-line flag and
an environment variable (see `LIMITS`). A request over a limit is refused before any model work, with a
message naming the limit and how to change it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from decoding import fields as parse


@dataclass(frozen=True)
class Limit:
    """One budget: its Budgets field, flag, environment variable, defaults and what it counts."""

    name: str
    public: int
    local: int | None
    unit: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "NEXTTOKEN_" + self.name.upper()

    def describe(self) -> str:
        """The command-line help: what it limits, both defaults, the environment variable."""
        local = "the model's" if self.local is None else f"{self.local:,}"
        return f"most {self.help} (default {self.public:,} public, {local} local) [{self.env}]"


LIMITS = (
    Limit("max_context_tokens", 2048, None, "tokens", "prompt + completion + forced text (local: the model's context)"),
    Limit("max_rows", 100, 1000, "rows", "candidate rows one request returns (its top_k)"),
    Limit("max_attribution_work", 512 * 32, 8192 * 256, "token-steps", "context tokens x integrated-gradients steps"),
    Limit("max_grammar_chars", 20_000, 1_000_000, "characters", "a constraint's options, regex, grammar or schema"),
    Limit("max_stop_sequences", 16, 256, "stop sequences", "stop sequences in one request"),
    Limit("max_stop_chars", 100, 10_000, "characters", "each stop sequence"),
    Limit("max_prompt_chars", 4000, 1_000_000, "characters", "prompt, system prompt, forced text, each message"),
    Limit("max_message_chars", 2000, 100_000, "characters", "one chat message"),
    Limit("max_history_turns", 32, 1000, "messages", "messages in a conversation (chat history or `messages`)"),
    Limit("max_history_chars", 16_000, 1_000_000, "characters", "all messages of a conversation together"),
    Limit("max_reply_tokens", 256, 1024, "tokens", "one chat reply"),
    Limit("max_tree_tokens", 65_536, 1_048_576, "tokens", "context tokens of a look-ahead tree, summed over its nodes"),
    Limit("max_interventions", 16, 64, "interventions", "model edits (ablations, steering) in one request"),
    Limit("max_patching_cells", 1024, 1_000_000, "cells", "activation patching grid, layers x context positions"),
    Limit("max_sweep_work", 512 * 270, 8192 * 1024, "token-components", "context tokens x components of a sweep"),
    Limit(
        "max_reference_mb",
        1024,
        65_536,
        "MiB",
        "memory of a reference model's weights (estimated before a copy is made)",
    ),
)
LIMIT_BY_NAME = {limit.name: limit for limit in LIMITS}


@dataclass(frozen=True)
class Budgets:
    """The limit of each budget (see `LIMITS`); None means only the model's own limit applies."""

    max_context_tokens: int | None
    max_rows: int | None
    max_attribution_work: int | None
    max_grammar_chars: int | None
    max_stop_sequences: int | None
    max_stop_chars: int | None
    max_prompt_chars: int | None
    max_message_chars: int | None
    max_history_turns: int | None
    max_history_chars: int | None
    max_reply_tokens: int | None
    max_tree_tokens: int | None
    max_interventions: int | None
    max_patching_cells: int | None
    max_sweep_work: int | None
    max_reference_mb: int | None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                parse.integer(f.name, value, 1, accepted="a whole number >= 1, or None for no limit")

    @classmethod
    def defaults(cls, public: bool) -> Budgets:
        return cls(**{limit.name: limit.public if public else limit.local for limit in LIMITS})

    def with_limits(self, **limits: int | None) -> Budgets:
        return replace(self, **limits)

    def check(self, name: str, amount: int, what: str) -> None:
        """Refuse `amount` over the limit `name`; `what` names the thing measured, e.g. "context"."""
        limit = getattr(self, name)
        if limit is not None and amount > limit:
            spec = LIMIT_BY_NAME[name]
            count = f"{amount:,}" if amount < 10**15 else parse.shown(amount)  # a caller's number can be absurd
            raise ValueError(f"{what} is {count} {spec.unit}; this server allows {limit:,} ({spec.flag} / {spec.env})")

    def check_texts(self, name: str, texts: dict[str, str]) -> None:
        """Each named text at most the `name` limit in characters."""
        for field, value in texts.items():
            self.check(name, len(value), field)

    def check_stops(self, stops: tuple[str, ...]) -> None:
        self.check("max_stop_sequences", len(stops), "stop_sequences")
        for i, stop in enumerate(stops):
            self.check("max_stop_chars", len(stop), f"stop_sequences[{i}]")

    def check_conversation(self, contents: list[str], what: str) -> None:
        """A conversation's message count and total characters."""
        self.check("max_history_turns", len(contents), what)
        self.check("max_history_chars", sum(len(c) for c in contents), f"{what} text")

    def check_attribution(self, context_tokens: int, passes: int) -> None:
        """Attribution cost: context tokens times forward-and-backward passes (1 except integrated gradients)."""
        self.check("max_context_tokens", context_tokens, "attribution context")
        work = f"attribution work ({context_tokens:,} context tokens x {passes} passes)"
        self.check("max_attribution_work", context_tokens * passes, work)

    def check_sweep(self, context_tokens: int, components: int, kind: str) -> None:
        """An ablation sweep: its context, and context tokens times the components ablated one at a time."""
        self.check("max_context_tokens", context_tokens, "sweep context")
        what = f"the sweep ({context_tokens:,} context tokens x {components:,} {kind})"
        self.check("max_sweep_work", context_tokens * components, what)

    def check_tree(self, context_tokens: int, width: int, depth: int, nodes: int, tokens: int) -> None:
        """A look-ahead tree: its most `nodes` (root included), each with its context, `tokens` in all."""
        what = f"the tree (width {width}, depth {depth}: {nodes:,} nodes over a context of {context_tokens:,} tokens)"
        self.check("max_tree_tokens", tokens, what)

    def check_patching(self, context_tokens: int, layers: int) -> None:
        """Activation patching: its context, and its grid (each cell runs the context from its position on)."""
        self.check("max_context_tokens", context_tokens, "patching context")
        what = f"the patching grid ({layers} layers x {context_tokens:,} positions)"
        self.check("max_patching_cells", layers * context_tokens, what)


LOCAL_BUDGETS = Budgets.defaults(public=False)
PUBLIC_BUDGETS = Budgets.defaults(public=True)
