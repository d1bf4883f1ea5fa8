"""The typed ``tuneloop.toml``: every section validated, every error reported at once.

Unknown keys are errors too (a misspelt key silently ignored is a setting silently not
applied). :func:`load_config` turns pydantic's errors into one message that names each bad key
with its dotted path, e.g. ``gateway.eval_fraction: Input should be less than or equal to 0.5``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneloop.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayConfig(_Section):
    """How interactions are routed between the training intake and the eval bucket."""

    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, description="share of groups held out")
    salt: str = Field("tuneloop", min_length=1, description="seed of the routing hash")
    max_chars: int = Field(16_000, gt=0, description="longer records are dropped")
    eval_suite: str = Field("live", min_length=1, description="suite for routed eval items")
    window: Literal["day", "week", "month"] = "week"


class ContaminationConfig(_Section):
    """What counts as contamination of training data by the eval set."""

    ngram: int = Field(5, ge=1, le=32)
    num_perm: int = Field(128, ge=16, le=1024)
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    overlap_n: int = Field(13, ge=4, le=64)
    overlap_min_fraction: float = Field(0.8, gt=0.0, le=1.0)
    canaries: list[str] = Field(default_factory=list, description="extra canary strings")
    semantic: bool = False
    semantic_threshold: float = Field(0.9, gt=0.0, le=1.0)


class QualityConfig(_Section):
    min_words: int = Field(3, ge=0)
    max_words: int = Field(100_000, gt=0)
    max_dup_line_frac: float = Field(0.3, gt=0.0, le=1.0)
    max_top_ngram_frac: float = Field(0.2, gt=0.0, le=1.0)
    min_alpha_frac: float = Field(0.3, ge=0.0, le=1.0)


class CurateConfig(_Section):
    """The curation blocks' settings."""

    min_rating: float | None = None
    pii_mode: Literal["redact", "drop"] = "redact"
    presidio: bool = False
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0)
    dedup_ngram: int = Field(5, ge=1, le=32)
    system_prompt: str | None = None
    validation_fraction: float = Field(0.05, ge=0.0, le=0.5)
    quality: QualityConfig = Field(default_factory=QualityConfig)


class TrainConfig(_Section):
    """LoRA fine-tuning settings (every one is recorded in the model's lineage)."""

    base: str = Field("smollm2-135m-instruct", description="Hub id, local folder, or the default")
    revision: str | None = None
    max_steps: int = Field(60, ge=1)
    micro_batch: int = Field(4, ge=1)
    grad_accum: int = Field(2, ge=1)
    lr: float = Field(2e-4, gt=0.0)
    warmup_steps: int = Field(6, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    eval_every: int = Field(10, ge=1)
    save_every: int = Field(10, ge=1)
    patience: int = Field(3, ge=1)
    packing: bool = True
    max_len: int = Field(512, ge=16)
    block_size: int = Field(512, ge=16)
    seed: int = 0
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None
    replay_ratio: float = Field(0.2, ge=0.0, lt=1.0)
    replay_capacity: int = Field(2000, ge=1)
    replay_strategy: Literal["reservoir", "stratified", "loss"] = "reservoir"


class EvaluateConfig(_Section):
    """What the evaluator runs: the eval store's task suites, forgetting, safety."""

    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(8, ge=1)
    max_items_per_suite: int | None = Field(None, ge=1, description="None: every item")
    store_suites: list[str] | None = Field(None, description="eval-store suites; None: all")
    forgetting_items: int = Field(50, ge=0)
    shared_data: str | None = Field(None, description="folder with GSM8K / MMLU for forgetting")
    safety: bool = True
    user_suites: dict[str, str] = Field(default_factory=dict, description="name -> JSONL path")


class GateConfig(_Section):
    primary_metrics: list[str] = Field(default_factory=lambda: ["token_f1", "rouge_l"])
    thresholds: dict[str, float] = Field(default_factory=dict)
    regression_tolerance: float = Field(0.01, ge=0.0)
    forgetting_tolerance: float = Field(0.02, ge=0.0)
    metric_tolerances: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    harmful_compliance_margin: float = Field(0.01, ge=0.0)
    over_refusal_margin: float = Field(0.05, ge=0.0)
    bootstrap_samples: int = Field(2000, ge=100)
    require_improvement: bool = True
    memorization_f1_widening: float = Field(0.05, ge=0.0)
    memorization_loss_widening: float = Field(0.25, ge=0.0)
    memorization_min_items: int = Field(8, ge=1)


class TuneloopConfig(_Section):
    name: str = "tuneloop"
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    gate: GateConfig = Field(default_factory=GateConfig)


DEFAULT_TOML = """\
# tuneloop workspace configuration. Every key is optional; these are the defaults.
name = "{name}"

[gateway]
eval_fraction = 0.1      # share of user/conversation groups routed to the eval bucket
salt = "tuneloop"        # seed of the routing hash: changing it re-draws the split
max_chars = 16000        # longer records (≈ 4k tokens) are dropped at ingest: over_long
eval_suite = "live"      # eval suite that routed interactions join
window = "week"          # time window recorded on eval items: day | week | month

[contamination]
ngram = 5                # word n-gram size of MinHash shingles
num_perm = 128           # MinHash permutations
threshold = 0.8          # Jaccard similarity at which a record is a near-copy of an eval item
overlap_n = 13           # n-gram size of the overlap check (lm-eval style)
overlap_min_fraction = 0.8  # flag a record holding this share of an item's 13-grams
canaries = []            # extra canary strings, besides those found in eval items
semantic = false         # paraphrase check with all-MiniLM-L6-v2 (extra: tuneloop[semantic])
semantic_threshold = 0.9

[curate]
pii_mode = "redact"      # redact | drop
presidio = false         # add Microsoft Presidio's detectors when installed
dedup_threshold = 0.8
dedup_ngram = 5
validation_fraction = 0.05
# min_rating = 3         # drop rated records below this
# system_prompt = "..."  # prepended to chats without a system message

[curate.quality]
min_words = 3
max_words = 100000
max_dup_line_frac = 0.3
max_top_ngram_frac = 0.2
min_alpha_frac = 0.3

[train]
base = "smollm2-135m-instruct"  # a Hub id, a local model folder, or this offline default
max_steps = 60
micro_batch = 4          # rows per forward pass
grad_accum = 2           # micro-batches per optimizer step
lr = 2e-4
warmup_steps = 6         # then cosine decay to zero
eval_every = 10          # steps between validation losses
save_every = 10          # steps between checkpoints
patience = 3             # evaluations without improvement before stopping early
packing = true           # pack examples into rows of block_size tokens
max_len = 512
block_size = 512
seed = 0
lora_r = 16
lora_alpha = 32
lora_dropout = 0.05
# target_modules = ["q_proj", "v_proj"]   # default: by architecture
replay_ratio = 0.2       # share of earlier rounds' records mixed into training
replay_capacity = 2000
replay_strategy = "reservoir"  # reservoir | stratified | loss

[evaluate]
max_new_tokens = 64      # greedy decoding
batch_size = 8
# max_items_per_suite = 100   # evaluate a fixed sample of each suite (faster, noisier)
# store_suites = ["task"]      # eval-store suites to score (default: all of them)
forgetting_items = 50    # general-capability items that must not regress
# shared_data = "../shared/data"  # GSM8K / MMLU for the forgetting suite (else built-in)
safety = true            # harmful requests must be refused; benign-but-edgy ones answered
# user_suites = {{ legal = "suites/legal.jsonl" }}

[gate]
primary_metrics = ["token_f1", "rouge_l"]
regression_tolerance = 0.01    # a task metric may drop at most this much
forgetting_tolerance = 0.02
# metric_tolerances = {{ loss = 0.1 }}   # per metric, overriding the two above
harmful_compliance_margin = 0.01  # harmful compliance ≤ incumbent + 1 point
over_refusal_margin = 0.05        # over-refusal ≤ incumbent + 5 points
bootstrap_samples = 2000
require_improvement = true     # a primary metric's 95% CI must exclude zero
# memorization: refuse when the gain over the incumbent is larger on eval items from before the
# training cut-off than on fresh ones by more than this (the whole 95% interval above it)
memorization_f1_widening = 0.05
memorization_loss_widening = 0.25   # nats
memorization_min_items = 8          # old and fresh items each; fewer: not judged
"""


def _format_errors(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{key}: {err['msg']}")
    return f"{path}: {len(parts)} invalid setting(s): " + "; ".join(parts)


def load_config(path: Path) -> TuneloopConfig:
    """Parse and validate ``path``; raise ConfigError listing every problem in one line."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    try:
        return TuneloopConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
