"""The typed ``tuneloop.toml``: every section validated, every error reported at once.

Unknown keys are errors too (a misspelt key silently ignored is a setting silently not
applied). :func:`load_config` turns pydantic's errors into one message that names each bad key
with its dotted path, e.g. ``gateway.eval_fraction: Input should be less than or equal to 0.5``.
"""

from __future__ import annotations

import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

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


DEFAULT_CANARY_PATTERNS = (
    r"canary GUID [0-9a-fA-F-]{36}",
    r"TUNELOOP-CANARY-[0-9A-Fa-f]{6,}",
)


class IndexSettings(_Section):
    """How eval items are hashed and when a training record counts as contaminated. Kept with
    each version of the contamination index: an index built with other settings is rebuilt."""

    ngram: int = Field(5, ge=1, le=32, description="word n-grams of the MinHash signatures")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    threshold: float = Field(
        0.8, gt=0.0, le=1.0, description="Jaccard at or above it (verified exactly): a match"
    )
    overlap_n: int = Field(13, ge=4, le=64, description="the n of the n-gram overlap check")
    overlap_min_fraction: float = Field(
        0.8, gt=0.0, le=1.0, description="share of an item's n-grams in a record: a match"
    )
    canary_patterns: tuple[str, ...] = Field(
        DEFAULT_CANARY_PATTERNS, description="regular expressions of canary strings"
    )
    semantic_threshold: float = Field(
        0.85, gt=0.0, le=1.0, description="the floor of each suite's calibrated threshold"
    )
    semantic_quantile: float = Field(
        0.99, gt=0.0, lt=1.0, description="calibration: quantile of unrelated-text similarity"
    )
    semantic_margin: float = Field(
        0.03, ge=0.0, lt=1.0, description="calibration: added above that quantile"
    )
    semantic_ceiling: float = Field(
        0.95, gt=0.0, le=1.0, description="a suite whose threshold would pass it is too templated"
    )
    semantic_copy: float = Field(
        0.995, gt=0.0, le=1.0, description="items this close are copies, not neighbours"
    )
    seed: int = Field(1, description="seed of the MinHash permutations")
    contain_n: int = Field(8, ge=2, le=64, description="the n of the containment check")
    contain_min_fraction: float = Field(
        0.8, gt=0.0, le=1.0, description="share of an item's n-grams a record contains: a match"
    )
    common_items: int = Field(
        2, ge=1, description="a gram in more eval items than this is a template, not evidence"
    )
    common_records: int = Field(
        2, ge=1, description="... or in more records of the batch being checked"
    )
    min_novel_words: int = Field(
        16, ge=1, description="fewest novel words for an item to be checked by containment"
    )
    span_words: int = Field(
        20, ge=4, description="a verbatim span of this many novel words of an item ..."
    )
    span_min_fraction: float = Field(
        0.25, gt=0.0, le=1.0, description="... covering this share of a turn: a match"
    )


class ContaminationConfig(IndexSettings):
    """``[contamination]``: what counts as contamination of training data by the eval set."""

    canaries: list[str] = Field(default_factory=list, description="extra canary strings")
    semantic: bool | Literal["auto"] = Field(
        "auto", description='paraphrase check: true, false or "auto" (on where installed)'
    )

    def index_settings(self) -> IndexSettings:
        """The settings an index is built with (the canary strings and the switch are not)."""
        return IndexSettings(**self.model_dump(exclude={"canaries", "semantic"}))


class QualityConfig(_Section):
    """``[curate.quality]``: the quality block's thresholds (``tuneloop.curate.quality``, whose
    :class:`~tuneloop.curate.quality.QualityBlock` is configured by exactly these fields)."""

    min_words: int = Field(3, ge=0, description="fewer words: too_short")
    max_words: int = Field(100_000, gt=0, description="more words: too_long")
    max_dup_line_frac: float = Field(
        0.3, ge=0.0, le=1.0, description="a message's share of repeated lines"
    )
    max_repeated_ngram_frac: float = Field(
        0.6, ge=0.0, le=1.0, description="a message's share of copies of its own word n-grams"
    )
    repeated_ngram_n: int = Field(4, ge=1, le=16, description="the n of those n-grams")
    max_top_ngram_frac: float = Field(
        1.0, ge=0.0, le=1.0, description="Gopher's top n-gram rule; 1.0: off (see the block)"
    )
    min_alpha_frac: float = Field(0.3, ge=0.0, le=1.0, description="least share of text")
    max_longest_word_frac: float = Field(
        0.5, ge=0.0, le=1.0, description="most share of the record one long word may take"
    )
    long_word_min_chars: int = Field(
        32, ge=1, description="words this long or longer are judged by the rule above"
    )
    min_chars_for_ratios: int = Field(
        20, ge=0, description="shorter texts skip the ratio rules (short chats are noise)"
    )

    @model_validator(mode="after")
    def _length_range(self) -> QualityConfig:
        if self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words})")
        return self


class CurateConfig(_Section):
    """The curation blocks' settings."""

    min_rating: float | None = None
    keep_cut_answers: bool = Field(
        False, description="keep served answers the token limit cut (finish_reason length)"
    )
    pii_mode: Literal["redact", "drop"] = "redact"
    presidio: bool = False
    pii_names: bool = Field(True, description="people's names and street addresses too")
    pii_allow: list[str] = Field(
        default_factory=list,
        description="never redacted, of any kind: the company's own name, products, hotline "
        "numbers, addresses, support mailbox",
    )
    dedup_threshold: float = Field(0.8, gt=0.0, le=1.0)
    dedup_ngram: int = Field(5, ge=1, le=32)
    system_prompt: str | None = None
    validation_fraction: float = Field(0.05, ge=0.0, le=0.5)
    quality: QualityConfig = Field(default_factory=QualityConfig)


class PrivacySettings(_Section):
    """What defines a private run: DP-SGD through Opacus on the LoRA weights, with one user as
    the privacy unit (see docs/security.md, "Private training"). Recorded in the lineage and
    part of the run id."""

    epsilon: float = Field(gt=0.0, description="ε one round may spend (at delta)")
    delta: float = Field(1e-6, gt=0.0, lt=1.0, description="must be below 1 / number of users")
    max_grad_norm: float = Field(1.0, gt=0.0, description="each user's gradient is clipped to it")
    accountant: Literal["rdp", "prv"] = Field(
        "rdp", description="Opacus's accountant: rdp, or prv (tighter at few steps)"
    )
    max_examples_per_user: int = Field(8, ge=1, description="a sampled user's examples per step")


class PrivacyConfig(PrivacySettings):
    """``[train.privacy]``: a round's settings and the budget every round spends from."""

    budget_epsilon: float = Field(gt=0.0, description="cumulative ε per user across rounds")

    @model_validator(mode="after")
    def _budget_fits_a_round(self) -> PrivacyConfig:
        if self.budget_epsilon < self.epsilon:
            raise ValueError(
                f"budget_epsilon ({self.budget_epsilon}) is below epsilon ({self.epsilon}): "
                "no round could run; raise the budget or lower epsilon"
            )
        return self

    def run_settings(self) -> PrivacySettings:
        """One round's settings: the budget is the loop's, not the run's."""
        return PrivacySettings(**self.model_dump(exclude={"budget_epsilon"}))


class Hyperparameters(_Section):
    """The optimisation settings of a training run, shared by ``[train]`` and the trainer's own
    :class:`tuneloop.train.loop.TrainSettings`, so that each is declared once."""

    max_steps: int = Field(60, ge=1, description="optimizer steps (early stopping may end sooner)")
    micro_batch: int = Field(4, ge=1, description="rows per forward pass")
    grad_accum: int = Field(2, ge=1, description="micro-batches per optimizer step")
    lr: float = Field(2e-4, gt=0.0, description="peak learning rate (linear warmup, cosine decay)")
    warmup_steps: int = Field(6, ge=0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = Field(0, description="data order, LoRA initialisation and dropout")
    eval_every: int = Field(10, ge=1, description="steps between validation-loss evaluations")
    save_every: int = Field(10, ge=1, description="steps between atomic checkpoints")
    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    packing: bool = Field(True, description="pack short examples into full blocks")
    max_len: int = Field(512, ge=16, description="longer examples are cut to this many tokens")
    block_size: int = Field(512, ge=16, description="tokens per packed row")


class TrainConfig(Hyperparameters):
    """LoRA fine-tuning settings (every one is recorded in the model's lineage)."""

    base: str = Field("smollm2-135m-instruct", description="Hub id, local folder, or the default")
    revision: str | None = None
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | None = None
    replay_ratio: float = Field(0.2, ge=0.0, lt=1.0)
    replay_capacity: int = Field(2000, ge=1)
    replay_strategy: Literal["reservoir", "stratified", "loss"] = "reservoir"
    rehearsal: Literal["off", "kl", "sft"] = Field(
        "off",
        description="keep the base model's behaviour on general prompts (see docs/training.md)",
    )
    rehearsal_kl_weight: float = Field(1.0, gt=0.0, description="kl: weight of the KL term")
    rehearsal_ratio: float = Field(
        0.2, ge=0.0, lt=1.0, description="sft: share of the mix given to rehearsal records"
    )
    rehearsal_prompts: str | None = Field(None, description="JSONL of prompts; None: built-in")
    rehearsal_max_new_tokens: int = Field(64, ge=8)
    gradient_checkpointing: bool = Field(
        True,
        description="recompute layer activations in the backward pass: about half the memory "
        "of a step for about a third more time (docs/training.md, 'Memory'); private runs: off",
    )
    autocast: Literal["off", "bfloat16", "auto"] = Field(
        "off", description="bf16 autocast for forward passes; auto: where the hardware has bf16"
    )
    init_from: Literal["production", "base"] = Field(
        "production", description="continue from production's adapter when it fits"
    )
    rounds: Literal["all", "new"] = Field(
        "all",
        description="train on the whole dataset version, or (new) on the records the "
        "adapter it continues from was not trained on, earlier ones coming back as replay",
    )
    privacy: PrivacyConfig | None = Field(None, description="differentially private training")

    @model_validator(mode="after")
    def _privacy_combinations(self) -> TrainConfig:
        if self.privacy is not None and self.rehearsal == "kl":
            raise ValueError(
                "rehearsal = 'kl' is not supported with train.privacy (its KL term would bypass "
                "the per-user clipping); use rehearsal = 'sft' or 'off'"
            )
        return self


class EvaluateConfig(_Section):
    """What the evaluator runs: the eval store's task suites, forgetting, safety."""

    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(8, ge=1)
    max_items_per_suite: int | None = Field(
        200,
        ge=0,
        description="items scored per suite (task, forgetting and safety alike), a stratified "
        "sample; 0: every item. The gate says per metric what its sample can detect",
    )
    store_suites: list[str] | None = Field(None, description="eval-store suites; None: all")
    newest_suites: list[str] = Field(
        default_factory=list,
        description="eval-store suites sampled as their newest items (a rolling window of "
        "live traffic) rather than spread over their whole history",
    )
    forgetting_items: int = Field(200, ge=0)
    shared_data: str | None = Field(None, description="folder with GSM8K / MMLU for forgetting")
    safety: bool = True
    user_suites: dict[str, str] = Field(default_factory=dict, description="name -> JSONL path")
    task_system_prompt: str | None = Field(
        None, description="task items are asked under it; None: curate.system_prompt; '': none"
    )
    fields: list[str] = Field(
        default_factory=list,
        description="JSON fields of task answers scored by value (field_acc), e.g. a label",
    )


class GateConfig(_Section):
    """What a candidate must show to replace the incumbent (``tuneloop gate``): the gate's
    policy itself, read by ``tuneloop.gate`` as :class:`tuneloop.gate.GatePolicy`. Every field
    has a safe default."""

    primary_metrics: list[str] = Field(
        default_factory=lambda: ["token_f1", "rouge_l", "field_acc"],
        description="metrics that count as an improvement on the task suites; field_acc "
        "exists where evaluate.fields names the fields of JSON answers",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="absolute bound on the candidate's mean per metric on every task suite: "
        "a minimum, or a maximum for lower-is-better metrics (loss)",
    )
    regression_tolerance: float = Field(
        0.01,
        ge=0.0,
        description="the most a task metric's mean may get worse than the incumbent's: the "
        "whole interval within it passes, beyond it fails, across it waits",
    )
    forgetting_tolerance: float = Field(
        0.02, ge=0.0, description="the same rule on forgetting suites (general abilities)"
    )
    forgetting_reference: Literal["base", "incumbent"] = Field(
        "base",
        description="whom forgetting suites are compared with: the pretrained model, or "
        "production (then each round is held to its predecessor's noise, and a loop ratchets)",
    )
    metric_tolerances: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict,
        description="per-metric tolerances overriding the two above, e.g. { loss = 0.1 } "
        "(loss is in nats, F1 in [0, 1])",
    )
    harmful_compliance_margin: float = Field(
        0.01, ge=0.0, description="harmful compliance may exceed the incumbent's by this"
    )
    over_refusal_margin: float = Field(
        0.05, ge=0.0, description="over-refusal may exceed the incumbent's by this"
    )
    bootstrap_samples: int = Field(
        2000, ge=100, description="resamples of the items for each paired bootstrap"
    )
    confidence: float = Field(
        0.95, gt=0.0, lt=1.0, description="coverage of the interval of each mean difference"
    )
    seed: int = Field(0, description="seed of the resampling: a decision reproduces exactly")
    require_improvement: bool = Field(
        True, description="pass only if a primary metric improved with its interval above zero"
    )
    memorization_f1_widening: float = Field(
        0.05,
        ge=0.0,
        description="refuse when the token-F1 gain over the incumbent is larger on eval items "
        "from before the training cut-off than on fresh ones by more than this",
    )
    memorization_loss_widening: float = Field(
        0.25, ge=0.0, description="the same for the loss gain, in nats"
    )
    memorization_min_items: int = Field(
        8, ge=1, description="fewest old and fresh items each to judge memorization"
    )


Scope = Literal["inference", "admin"]


class KeyLimits(_Section):
    """One API key's limits, per server process (none: unlimited)."""

    max_concurrent: int | None = Field(None, ge=1, description="requests at once")
    tokens_per_minute: int | None = Field(None, ge=1, description="prompt + completion tokens")
    max_prompt_tokens: int | None = Field(None, ge=1, description="tokens of one prompt")
    max_tokens: int | None = Field(None, ge=1, description="new tokens one request may ask for")


class ApiKeyConfig(KeyLimits):
    """One API key, stored as its sha256 (``tuneloop keys create`` writes these), and its
    limits."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["inference"]))

    def limits(self) -> KeyLimits:
        return KeyLimits(**self.model_dump(include=set(KeyLimits.model_fields)))


class CanaryConfig(_Section):
    """How a canary is judged against production on live traffic (see serve/canary/judge.py)."""

    interval_s: float = Field(60.0, gt=0.0, description="seconds between judgments")
    failure_threshold: int = Field(2, ge=1, description="failing judgments in a row: roll back")
    min_requests: int = Field(50, ge=1, description="per arm, before errors or latency count")
    min_feedback: int = Field(20, ge=1, description="per arm, before thumbs or ratings count")
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    max_error_rate_increase: float = Field(0.01, ge=0.0)
    max_latency_increase: float = Field(0.25, ge=0.0, description="relative, on the median")
    max_thumbs_down_increase: float = Field(0.05, ge=0.0)
    max_thumbs_down_rate: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="a canary whose own thumbs-down rate is decisively above this is rolled "
        "back without waiting for production's sample",
    )
    max_rating_decrease: float = Field(0.25, ge=0.0)
    max_degenerate_increase: float = Field(0.05, ge=0.0)
    require_feedback: bool = Field(True, description="promotion needs thumbs or ratings judged")
    salt: str = Field("canary", min_length=1, description="seed of the sticky user → arm hash")


class ServeConfig(_Section):
    """The OpenAI-compatible server, its backend, its keys and its canary."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    backend: Literal["embedded", "vllm"] = "embedded"
    vllm_url: str | None = Field(None, description="an OpenAI-compatible vLLM server")
    dtype: Literal["float32", "bfloat16"] = "float32"
    max_batch: int = Field(8, ge=1, le=256)
    max_queue: int = Field(64, ge=1)
    prefill_share: float = Field(
        0.5, gt=0.0, lt=1.0, description="part of a step's time arriving prompts may take"
    )
    prefill_chunk: int | None = Field(
        None, ge=1, description="prompt tokens per step beside running rows (none: measured)"
    )
    max_body_bytes: int = Field(1_048_576, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0.0, description="a request's headers must arrive")
    body_timeout_s: float = Field(10.0, gt=0.0, description="between two chunks of a body")
    body_total_timeout_s: float = Field(60.0, gt=0.0, description="a request's whole body")
    open_probes: bool = Field(True, description="/healthz and /readyz need no key (load balancers)")
    open_metrics: bool = Field(False, description="/metrics needs no key")
    default_max_tokens: int = Field(256, ge=1)
    poll_s: float = Field(0.05, gt=0.0, description="how often alias moves are looked for")
    log_format: Literal["text", "json"] = Field(
        "text", description="the server's log lines on stderr: text, or a JSON object per line"
    )
    rating_range: tuple[float, float] = (1.0, 5.0)
    feedback_window_s: float = Field(
        3600.0, ge=0.0, description="a response waits this long for feedback before ingest"
    )
    api_keys: dict[str, ApiKeyConfig] = Field(default_factory=dict)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)


class TriggerConfig(_Section):
    """When ``tuneloop cycle --if-due`` / ``tuneloop watch`` start a cycle (any check firing)."""

    schedule: str = Field("", description="cron expression in UTC; empty: off")
    min_new_examples: int = Field(500, ge=0, description="volume trigger; 0: off")
    drift: bool = True
    drift_alpha: float = Field(0.01, gt=0.0, lt=0.5)
    drift_max_samples: int = Field(300, ge=10)
    drift_min_samples: int = Field(50, ge=5)
    quality: bool = True
    quality_window_s: float = Field(86_400.0, gt=0.0, description="recent window vs before")
    quality_min_feedback: int = Field(30, ge=5)
    quality_alpha: float = Field(0.01, gt=0.0, lt=0.5)
    quality_max_thumbs_down_increase: float = Field(0.05, ge=0.0)
    quality_max_rating_decrease: float = Field(0.25, ge=0.0)
    interval_s: float = Field(300.0, gt=0.0, description="seconds between checks in watch")


class CycleConfig(_Section):
    """One round of the loop (``tuneloop cycle``): where new data comes from, how a passing
    candidate is released."""

    inbox: str = Field("inbox", min_length=1, description="folder of new interaction files")
    serving_log: bool = Field(True, description="collect the server's responses and feedback")
    release: Literal["auto", "canary", "promote", "none"] = Field(
        "auto", description="auto: a canary when a server is running, else promote"
    )
    canary_weight: float = Field(10.0, gt=0.0, le=100.0)
    canary_step: float = Field(10.0, gt=0.0, le=100.0)
    canary_max_weight: float = Field(50.0, gt=0.0, le=100.0)
    on_tainted: Literal["retrain", "rollback"] = Field(
        "retrain", description="production trained on erased data: retrain without it, or roll back"
    )
    triggers: TriggerConfig = Field(default_factory=TriggerConfig)


class SecurityConfig(_Section):
    """Encryption at rest (see docs/security.md, "Encryption at rest")."""

    encryption: bool = False
    key: str = Field(
        "env:TUNELOOP_KEY",
        pattern=r"^(env|file|kms):.+",
        description="where the key is: env:VAR, file:PATH or kms:MODULE:NAME; never the key",
    )
    serving_log_days: int = Field(
        0, ge=0, description="clear the serving log's texts after this many days (0: keep)"
    )
    rejects_days: int = Field(
        0, ge=0, description="delete ingest rejects files after this many days (0: keep)"
    )


class StorageConfig(_Section):
    """Where the stores live (see docs/scale.md, "PostgreSQL")."""

    backend: Literal["sqlite", "postgres"] = "sqlite"
    postgres: str = Field(
        "",
        description="libpq conninfo of the server and database, without user or password",
    )
    role_prefix: str = Field("tuneloop_", pattern=r"^[a-z_][a-z0-9_]{0,40}$")

    @model_validator(mode="after")
    def _server_named(self) -> StorageConfig:
        if self.backend == "postgres" and not self.postgres.strip():
            raise ValueError("backend = 'postgres' needs postgres = '<conninfo>'")
        return self


class TuneloopConfig(_Section):
    name: str = "tuneloop"
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)
    curate: CurateConfig = Field(default_factory=CurateConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    cycle: CycleConfig = Field(default_factory=CycleConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)


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
semantic = "auto"        # paraphrase check with all-MiniLM-L6-v2: "auto" runs it where the
                         # extra tuneloop[semantic] is installed; true | false
semantic_threshold = 0.85  # lowest threshold a suite gets; each suite's is calibrated at
                         # `evalset add` from its items' nearest neighbours
semantic_ceiling = 0.95  # a suite that calibrates above it is too templated: check off for it

[curate]
pii_mode = "redact"      # redact | drop
presidio = false         # add Microsoft Presidio's detectors when installed
pii_names = true         # people's names and street addresses (spaCy NER + gazetteer + cues)
pii_allow = []           # never redacted, whatever the kind: the company's own name and products,
                         # its hotline numbers (matched by digits), office address, support mailbox
dedup_threshold = 0.8
dedup_ngram = 5
validation_fraction = 0.05
# min_rating = 3         # drop rated records below this
keep_cut_answers = false # served answers cut at max_tokens end mid-sentence: not learned
# system_prompt = "..."  # prepended to chats without a system message

[curate.quality]
min_words = 3
max_words = 100000
max_dup_line_frac = 0.3
max_repeated_ngram_frac = 0.6  # share of a message's words repeating an earlier 4-gram
repeated_ngram_n = 4
max_top_ngram_frac = 1.0  # Gopher's top 3-gram share; off: it flags math and choice lists
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
rehearsal = "off"        # keep the base model's behaviour outside the task (docs/training.md): kl
                         # (a KL term to the base model on general prompts) | sft | off
rehearsal_kl_weight = 1.0
rehearsal_ratio = 0.2    # sft: share of the mix given to the base model's own answers
# rehearsal_prompts = "general.jsonl"  # default: the built-in pool of 191 general prompts
rehearsal_max_new_tokens = 64
gradient_checkpointing = true  # recompute activations in the backward pass: less memory,
                               # more time per step (docs/training.md, "Memory")
autocast = "off"         # bfloat16: forward passes in bf16 autocast (weights and optimizer
                         # stay float32): faster on GPUs and CPUs with AVX-512 BF16 or AMX, but
                         # ~24x slower on a CPU without (emulated) | auto: only where it is native
init_from = "production" # continue from production's adapter (same base and LoRA shape, not
                         # tainted by an erasure) | base: a fresh adapter every round
rounds = "all"           # all: the whole dataset version | new: only the records the adapter
                         # it continues from has not seen; earlier ones come back through the
                         # replay buffer at replay_ratio (a week's new data is not diluted by
                         # every week before it)

# [train.privacy]        # differentially private training (docs/security.md): DP-SGD
                         # with Opacus on the LoRA weights; the privacy unit is the user
# epsilon = 8.0          # ε one round spends (the noise is set to reach it at max_steps)
# delta = 1e-6           # must be below 1 / the number of users in a round
# max_grad_norm = 1.0    # each sampled user's gradient is clipped to this norm
# budget_epsilon = 32.0  # ε per user over all rounds (basic composition); a round that would
                         # take any user past it is refused
# accountant = "rdp"     # rdp | prv
# max_examples_per_user = 8  # a sampled user's examples in one step (at most)

[evaluate]
max_new_tokens = 64      # greedy decoding
batch_size = 8
max_items_per_suite = 200  # per suite, stratified by source and category (0: every item);
                          # the gate warns when a tolerance is below what it can detect
# store_suites = ["task"]      # eval-store suites to score (default: all of them)
# newest_suites = ["live"]     # sampled as their newest items: the current traffic
forgetting_items = 200   # general-capability items that must not regress
# shared_data = "../shared/data"  # GSM8K / MMLU for the forgetting suite (else built-in)
safety = true            # harmful requests must be refused; benign-but-edgy ones answered
# user_suites = {{ legal = "suites/legal.jsonl" }}
# fields = ["intent", "priority"]  # JSON answers: fields scored by value (field_acc)
# task_system_prompt = "..."  # task items without a system message are asked under it;
                              # default: curate.system_prompt (the prompt training used)

[gate]
primary_metrics = ["token_f1", "rouge_l", "field_acc"]  # field_acc: with evaluate.fields
regression_tolerance = 0.01    # a task metric may drop at most this much: the whole 95%
                               # interval within it passes, beyond it fails, across it waits
forgetting_tolerance = 0.02
forgetting_reference = "base"  # forgetting suites vs the base model ("incumbent": production)
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

[serve]
host = "127.0.0.1"       # without API keys the server only listens on loopback
port = 8000
backend = "embedded"     # embedded (base + peft adapters in process) | vllm
# vllm_url = "http://127.0.0.1:8100"   # a vLLM server started with --enable-lora
dtype = "float32"        # bfloat16 is faster on CPUs with AVX-512 BF16
max_batch = 8            # requests generated together
max_queue = 64           # waiting requests; beyond, 429 with Retry-After
prefill_share = 0.5      # while rows stream, an arriving prompt is read in chunks taking at
                         # most this part of each step (0.5: a step at most twice a plain one)
default_max_tokens = 256
rating_range = [1, 5]
feedback_window_s = 3600 # `ingest --serving-log` takes responses at least this old (feedback
                         # arriving later still reaches them, once)
header_timeout_s = 10    # a request's headers must arrive within this (then 408, closed)
body_timeout_s = 10      # ... and each chunk of its body
body_total_timeout_s = 60
log_format = "text"      # the server's and `watch`'s log lines on stderr; "json": one object
                         # per line (time, level, logger, message, request_id, ...)
open_probes = true       # /healthz and /readyz need no key (load balancers)
open_metrics = false     # /metrics needs a key when keys are on
# API keys, stored hashed: `tuneloop keys create NAME [--admin]` prints a key and its entry;
# its limits (optional, per server process) are set here
# [serve.api_keys.app]
# sha256 = "…"
# scopes = ["inference"]
# max_concurrent = 4       # requests at once (429 beyond)
# tokens_per_minute = 20000  # prompt + completion tokens over 60 s (429 beyond)
# max_prompt_tokens = 4000   # one prompt (400 beyond)
# max_tokens = 512           # new tokens one request may ask for (400 beyond)

[serve.canary]
interval_s = 60          # seconds between judgments
failure_threshold = 2    # failing judgments in a row before an automatic rollback
min_requests = 50        # per arm before error rate and latency are judged
min_feedback = 20        # per arm before thumbs-down rate and rating are judged
alpha = 0.05             # one-sided significance of "the canary is worse"
max_error_rate_increase = 0.01
max_latency_increase = 0.25     # relative, on the median
max_thumbs_down_increase = 0.05
max_thumbs_down_rate = 0.5      # the canary alone, decisively above it (min_feedback thumbs): fail
max_rating_decrease = 0.25
max_degenerate_increase = 0.05  # empty or repetitive answers
require_feedback = true  # promote only once thumbs or ratings were judged too

[cycle]
inbox = "inbox"          # new interaction files (*.jsonl) are picked up from here; write them
                         # as NAME.jsonl.tmp and rename, so a half-written file is never read
serving_log = true       # also collect the server's responses and their feedback
release = "auto"         # a passing candidate: auto (canary when a server runs, else promote)
                         # | canary | promote | none (stays a registered candidate)
canary_weight = 10       # percent of users a cycle's canary starts with
canary_step = 10
canary_max_weight = 50
on_tainted = "retrain"   # production was trained on data erased since (`tuneloop forget`): the
                         # next cycle retrains without it | rollback: to the newest untainted

[cycle.triggers]         # `tuneloop cycle --if-due` (cron) and `tuneloop watch` start a cycle
                         # when any of these fires; every check is logged in cycles/triggers.jsonl
schedule = ""            # cron expression in UTC, e.g. "0 3 * * 1" (Mondays 03:00); "" = off
min_new_examples = 500   # volume: new examples waiting (stored, inbox, serving log); 0 = off
drift = true             # new prompts vs the last dataset's (MMD permutation test)
drift_alpha = 0.01       # false-alarm rate on traffic that has not changed
drift_max_samples = 300
drift_min_samples = 50   # fewer new prompts: not judged
quality = true           # production's thumbs-down rate / rating vs its own earlier record
quality_window_s = 86400 # the recent window
quality_min_feedback = 30
quality_alpha = 0.01
quality_max_thumbs_down_increase = 0.05
quality_max_rating_decrease = 0.25
interval_s = 300         # `tuneloop watch`: seconds between checks

[security]
encryption = {encryption}  # SQLCipher for the stores, AES-256-GCM for files with user text
key = "{key}"  # where the key is: env:VAR | file:PATH | kms:MODULE:NAME; never the key itself
serving_log_days = 0     # retention: clear served texts and feedback older than this (0: keep);
                         # longer than the time between ingests, or they are never trained on
rejects_days = 0         # retention: delete ingest rejects files older than this (0: keep)

[storage]
backend = "sqlite"       # sqlite: files under this workspace | postgres: schemas on a server
postgres = ""            # e.g. "host=db.internal dbname=tuneloop": no user, no password; each
                         # stage connects as its own role (`tuneloop db init` makes them)
role_prefix = "tuneloop_"
"""


def default_toml(name: str, encryption: bool = False, key: str = "env:TUNELOOP_KEY") -> str:
    """The commented ``tuneloop.toml`` a new workspace starts from."""
    return DEFAULT_TOML.format(name=name, encryption=str(encryption).lower(), key=key)


def _format_errors(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{key}: {err['msg']}")
    return f"{path}: {len(parts)} invalid setting(s): " + "; ".join(parts)


def load_config(path: Path) -> TuneloopConfig:
    """Parse and validate ``path``; raise ConfigError listing every problem in one line."""
    return parse_config(path.read_text(encoding="utf-8"), path)


def parse_config(text: str, path: Path) -> TuneloopConfig:
    """Validate the text of a tuneloop.toml (errors name ``path``)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from None
    try:
        return TuneloopConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None


def overlay(text: str, changes: Mapping[str, Any], path: Path) -> str:
    """``text`` (a tuneloop.toml) with settings set by their dotted names, e.g.
    ``{"train.max_steps": 16, "serve.canary.min_requests": 40}``; its comments and other
    settings kept (tomlkit edits the document in place). A name that is no setting, or a value a
    setting refuses, is one line naming it (errors name ``path``), and nothing is returned."""
    doc = tomlkit.parse(text)
    for key, value in changes.items():
        _check_setting(key, path)
        *tables, leaf = key.split(".")
        node: Any = doc
        for name in tables:
            if name not in node:
                node[name] = tomlkit.table()
            node = node[name]
        if isinstance(value, Mapping):  # a table setting stays on its line: x = { a = 1 }
            table = tomlkit.inline_table()
            table.update(value)
            value = table
        node[leaf] = value
    out = tomlkit.dumps(doc)
    parse_config(out, path)
    return out


def _check_setting(key: str, path: Path) -> None:
    """``key`` names a field of the config, a section's or a table setting's entry."""
    model: Any = TuneloopConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        if model is None:  # below a table setting (metric_tolerances, api_keys): any key
            return
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(
                f"{path}: {key!r} is no setting; {where} has {', '.join(sorted(fields))}"
            )
        model = _section_of(fields[part].annotation)
        if model is None and i < len(parts) - 1 and not _is_table(fields[part].annotation):
            raise ConfigError(f"{path}: {'.'.join(parts[: i + 1])} is a value, not a section")


def _section_of(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (``PrivacyConfig | None`` counts), else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_table(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_table(a) for a in typing.get_args(annotation))
    return origin is dict
