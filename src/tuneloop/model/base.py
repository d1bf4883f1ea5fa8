"""Loading a pretrained causal LM and its tokenizer, and recording exactly what was loaded.

A model's lineage must say which weights it started from, not just a name: the revision and a
sha256 over the weight files are recorded, so "retrain from the same base" is checkable.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneloop.errors import TuneloopError
from tuneloop.model.fetch import DEFAULT_MODEL, MARKER, default_model_path

# ChatML, used when a tokenizer ships without a chat template (docs/training.md, "Base model").
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


@dataclass(frozen=True)
class BaseModelInfo:
    """What the lineage records about a base model."""

    ref: str
    path: str
    revision: str | None
    weights_sha256: str
    architecture: str
    chat_template: str  # "tokenizer" or "default"
    parameters: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def weights_sha256(folder: Path) -> str:
    """One sha256 over every weight file of a model folder, in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise TuneloopError(f"{folder}: no weight files; pass a model folder or a Hub id")
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def resolve(ref: str, revision: str | None = None) -> Path:
    """A local folder for ``ref``: the folder itself, or its Hub snapshot (cached locally)."""
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download  # noqa: PLC0415 - heavy (huggingface_hub)

    try:
        return Path(snapshot_download(ref, revision=revision))
    except Exception as exc:  # the Hub client raises many kinds; all mean "not available"
        found = ", ".join(local_models()) or "none"
        raise TuneloopError(
            f"cannot load base model {ref!r}: not a model folder, and not a Hub model this "
            f"machine has or can fetch ({type(exc).__name__}); models here: {found}; set "
            "train.base to one of them or to a model folder (`tuneloop models fetch` caches "
            "the offline default; with Hub access, `hf download ID` caches a Hub model)"
        ) from None


def local_models() -> list[str]:
    """What ``train.base`` can name on this machine without a network: the offline default
    (once fetched) and the causal LMs in the Hugging Face cache."""
    names = [DEFAULT_MODEL] if (default_model_path() / MARKER).is_file() else []
    try:
        from huggingface_hub import constants, scan_cache_dir  # noqa: PLC0415 - heavy (huggingface_hub)

        repos = scan_cache_dir(constants.HF_HUB_CACHE).repos  # read now, not at import
    except Exception:  # no cache folder yet, or one the client cannot read: nothing cached
        repos = frozenset()
    names += sorted(r.repo_id for r in repos if r.repo_type == "model")
    return names


def quiet_transformers() -> None:
    """No per-load progress bars or deprecation chatter in tuneloop's own output."""
    from transformers.utils import logging as hf_logging  # noqa: PLC0415 - heavy (transformers)

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")


def load_base(ref: str, revision: str | None = None) -> tuple[Any, Any, BaseModelInfo]:
    """Model (fp32, CPU, eval mode), tokenizer with a chat template, and the lineage record."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 - heavy (transformers)

    quiet_transformers()
    folder = resolve(ref, revision)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    template = "tokenizer"
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
        template = "default"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    info = BaseModelInfo(
        ref=ref,
        path=str(folder),
        revision=revision,
        weights_sha256=weights_sha256(folder),
        architecture=type(model).__name__,
        chat_template=template,
        parameters=sum(p.numel() for p in model.parameters()),
    )
    return model, tokenizer, info
