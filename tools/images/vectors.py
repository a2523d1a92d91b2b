"""The FAISS side of the image index: which index for how many vectors, built from scratch.

Vectors are L2-normalised, so inner product = cosine. Small collections use exact search
(``IndexFlatIP``); larger ones an inverted file (``IVF{nlist},Flat``) whose ``nprobe`` is set
for recall@10 >= 0.95, and past a few million vectors HNSW (whose build takes hours on 2 cores). The thresholds come from
benchmarks/image_index.py (see the README section). ``faiss-gpu`` is used when present.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLAT_MAX = 100_000          # exact search costs ~50 ms of one core at 100k x 1152-d: fine for a tool call
HNSW_MIN = 5_000_000        # past here IVF's training and list scans grow; HNSW scales by log n
# Probe this share of the lists. Measured at 1M (benchmarks/image_index.py, low-rank data):
# 1/8 -> recall@10 0.93, 1/4 -> 0.99 at ~140 ms of one core a query (exact search: ~450 ms).
IVF_RECALL_FRACTION = 1 / 4
HNSW_M = 32
HNSW_EF_SEARCH = 128


def ivf_nlist(n: int) -> int:
    """Inverted lists for n vectors: about 4 sqrt(n), as a power of two (FAISS's guidance)."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def factory_for(n: int) -> str:
    """The ``index_factory`` string for a collection of n vectors."""
    if n <= FLAT_MAX:
        return "Flat"
    if n < HNSW_MIN:
        return f"IVF{ivf_nlist(n)},Flat"
    return f"HNSW{HNSW_M},Flat"


def _faiss() -> Any:
    import faiss  # imported late: the CLI's help and `image_tools` without an index stay fast

    return faiss


def gpu_available() -> bool:
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def build_index(vectors: np.ndarray, ids: np.ndarray, factory: str | None = None) -> Any:
    """A FAISS index over ``vectors`` (n x d float32, normalised) answering with ``ids`` (int64)."""
    faiss = _faiss()
    n, dim = vectors.shape if vectors.ndim == 2 else (0, 0)
    factory = factory or factory_for(n)
    index = faiss.index_factory(dim, f"IDMap2,{factory}" if factory == "Flat" else factory, faiss.METRIC_INNER_PRODUCT)
    if factory.startswith("IVF"):
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.niter = 10
        sample = vectors[np.random.default_rng(0).permutation(n)[: 64 * ivf.nlist]]
        index.train(sample)
        ivf.nprobe = max(1, round(ivf.nlist * IVF_RECALL_FRACTION))
    if factory.startswith("HNSW"):
        index = faiss.IndexIDMap2(index)
        faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def add_vectors(index: Any, vectors: np.ndarray, ids: np.ndarray) -> None:
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))


def to_searchable(index: Any) -> Any:
    """The index to search with: a GPU copy when faiss-gpu and a GPU are present (flat/IVF)."""
    if not gpu_available():
        return index
    faiss = _faiss()
    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    except RuntimeError:  # HNSW has no GPU version: search it on the CPU
        return index


def search(index: Any, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return scores, ids


def save(index: Any, path: str) -> None:
    _faiss().write_index(index, path)


def load(path: str) -> Any:
    return _faiss().read_index(path)


def describe(index: Any) -> str:
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexIVF):
        return f"IVF{inner.nlist},Flat nprobe={inner.nprobe}"
    if isinstance(inner, faiss.IndexHNSW):
        return f"HNSW{HNSW_M},Flat efSearch={inner.hnsw.efSearch}"
    return "Flat"
