"""The answer body of every operation as a model: the schema clients read, checked against real answers in tests.

Answers are the engine's dicts serialised as they are; these models describe them (they are not built on the
way out), so they are lenient about types (an integer is a number) but refuse keys they do not name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pill(Answer):
    """One token as shown: `text` the decoded text, `display` its readable form."""

    id: int
    text: str
    display: str
    special: bool


class Candidate(Pill):
    """A row of the distribution: its probability before and after the knobs, and the stage that removed it."""

    p_base: float
    p_final: float
    kept: bool
    valid: bool
    removed_by: str | None
    stages: dict[str, float]
    p_base_unedited: float | None = None  # under interventions: the unedited model's p_base of this token
    p_final_unedited: float | None = None  # ... and its p_final (the same knobs on the unedited logits)
    p_base_reference: float | None = None  # with a reference: the reference's p_base of this token
    p_final_reference: float | None = None  # ... and its p_final (the same knobs on the reference's logits)


class Distribution(Answer):
    """The next-token distribution: the top rows, those the knobs pushed down, each stage's count of survivors."""

    tokens: list[Candidate]
    pushed_down: list[Candidate]
    stages: list[str]
    stage_counts: dict[str, int]
    other_p_base: float
    other_p_final: float
    kept_token_count: int
    constraint_active: bool
    constraint_type: str | None
    entropy_base: float
    entropy_final: float
    greedy: bool
    kl_edit: float | None = None  # under interventions: KL(edited p_final || unedited p_final) in bits
    kl_edit_reason: str | None = None  # why kl_edit is null (infinite)
    edits: list[str] | None = None  # the interventions in words
    reference: str | None = None  # with a reference: the reference in words
    kl_reference_final: float | None = None  # KL(main p_final || reference p_final) in bits
    kl_reference_final_reason: str | None = None  # why kl_reference_final is null (infinite)
    kl_reference_base: float | None = None  # KL(main p_base || reference p_base) in bits
    tv_reference: float | None = None  # total variation of p_final
    top_agrees: bool | None = None  # both p_final have the same top token
    rank_under_reference: int | None = None  # the main model's top token's rank by the reference's p_base


class Choice(Answer):
    """How one appended token was chosen, with the distribution in force then."""

    token: Pill
    how: str
    dist: Distribution | None
    draw: float | None


class StepAnswer(Answer):
    """A preview (nothing appended) or a step's outcome: the tokens, and the distribution at the new position."""

    prompt_tokens: list[Pill]
    completion_tokens: list[Pill]
    completion_ids: list[int]
    completion_text: str
    dist: Distribution | None
    finished: bool
    finish_reason: str | None
    context_length: int
    notice: str
    appended: list[Pill]
    appended_meta: list[Choice]


class ModelStatus(Answer):
    """The shared model: what it is, where it runs, whether it is ready."""

    model_id: str
    source: str
    device: str
    dtype: str
    state: str
    error: str
    has_chat_template: bool
    vocab_size: int
    context_length: int
    placement: str
    engine: str
    gradients: bool


class TreeNode(Answer):
    """A continuation token, its probabilities at its parent, the path's probability, its children."""

    token: Pill
    path_ids: list[int]
    p_base: float
    p_final: float
    path_probability: float
    finish_reason: str | None
    children: list[TreeNode]
    p_base_unedited: float | None = None  # under interventions: the unedited model's p_base of this token
    p_final_unedited: float | None = None  # ... and its p_final (the same knobs on the unedited logits)
    p_base_reference: float | None = None  # with a reference: its p_base of the token at the parent
    p_final_reference: float | None = None  # ... and its p_final


class TreeAnswer(Answer):
    """The look-ahead tree of a position."""

    width: int
    depth: int
    node_count: int
    children: list[TreeNode]


class Faithfulness(Answer):
    comprehensiveness: float
    random_baseline: float
    k: int


class Word(Answer):
    start: int
    end: int
    text: str
    score: float
    normalized: float


class LogitComponents(Answer):
    """Direct logit attribution: the logit (minus the foil's) as the sum of the embedding's, each head's (layers x
    heads), each MLP's and the biases' shares, the final norm's scale frozen from the forward pass."""

    embed: float
    heads: list[list[float]]
    mlps: list[float]
    bias: float
    steering: float
    logit: float
    reconstruction_error: float
    rms: float
    model_dtype: str
    sum_dtype: str
    norm_scale: str


class AttributionAnswer(Answer):
    """Each context token's score for the target (minus the foil's), with the context's pills and words;
    direct_logit scores no tokens (empty lists) and splits the logit over the model's parts in `components`."""

    method: str
    scores: list[float]
    normalized: list[float]
    aggregation: str
    target_id: int
    target_logprob: float
    elapsed_s: float
    signed: bool
    contrast_token_id: int | None
    faithfulness: Faithfulness | None
    fell_back_to_cpu: bool
    completeness_error: float | None
    steps: int | None
    baseline: str | None
    target: Pill
    contrast: Pill | None
    target_index: int
    context_tokens: list[Pill]
    prompt_length: int
    granularity: str
    words: list[Word] | None
    components: LogitComponents | None = None


class PatchingAnswer(Answer):
    """Activation patching: `scores` (layers x positions) of (patched - corrupted) / (clean - corrupted) logit
    differences, null with a `reason` when the two runs give the same difference; both runs' tokens."""

    scores: list[list[float]] | None
    clean: float
    corrupted: float
    site: str
    reason: str | None
    target: Pill
    contrast: Pill
    target_index: int
    prompt_length: int
    clean_tokens: list[Pill]
    corrupted_tokens: list[Pill]
    elapsed_s: float


class SweepCell(Answer):
    """One component ablated alone: the score's change, the target's rank then (1 = likeliest) and its change."""

    delta: float
    rank: int
    rank_delta: int


class SweepBaseline(Answer):
    """The score (log p(target), minus log p(foil) with a foil) and rank with nothing more ablated."""

    score: float
    rank: int


class SweepAnswer(Answer):
    """An ablation sweep: the baseline, and per layer one cell per head (heads) or one cell (mlps, layers)."""

    components: str
    mode: str
    baseline: SweepBaseline
    grid: list[list[SweepCell]] | list[SweepCell]
    score: str
    target: Pill
    contrast: Pill | None
    target_index: int
    context_length: int


class SteeringVector(Answer):
    """A steering vector: its id (name it in a steer edit), layer, L2 norm, number of pairs and its examples."""

    id: str
    layer: int
    norm: float
    pairs: int
    positive: list[str]
    negative: list[str]


class SteeringVectors(Answer):
    """The current model's steering vectors, oldest first."""

    vectors: list[SteeringVector]


class ErrorAnswer(Answer):
    """A refusal (400), a full queue (429, with Retry-After) or a failure: one line."""

    detail: str
