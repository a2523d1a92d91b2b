"""The FAISS side of the image index: which index for how many vectors, built from scratch.

Vectors are L2-normalised, so inner product = cosine. Small collections use exact search
(``IndexFlatIP``). Larger ones, on a CPU, an HNSW graph (``HNSW32,Flat``) whose ``efSearch`` grows
with the collection; with faiss-gpu and a GPU, an inverted file (``IVF{nlist},Flat``, probing a
quarter of its lists), which the GPU scans fast and HNSW cannot use. The thresholds come from
benchmarks/image_index.py (docs/images.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FLAT_MAX = 100_000          # exact search costs ~50 ms of one core at 100k x 1152-d: fine for a tool call
# Probe this share of the lists. Measured at 1M (benchmarks/image_index.py, low-rank data):
# 1/8 -> recall@10 0.93, 1/4 -> 0.99 at ~140 ms of one core a query (exact search: ~450 ms).
IVF_RECALL_FRACTION = 1 / 4
HNSW_M = 32
# efSearch by collection size, from benchmarks/image_index.py (low-rank data, one core a query):
# 100k: 128 -> recall@10 0.993 at 3.3 ms; 1M: 128 -> 0.937 at 4.2 ms, 144 -> 0.951 at 4.8 ms,
# 160 -> 0.965 at 5.4 ms, 256 -> 0.983 at 7.3 ms (median of 200 queries).
HNSW_EF_SEARCH = 128
HNSW_EF_SEARCH_LARGE = 144
HNSW_LARGE = 300_000


def ivf_nlist(n: int) -> int:
    """Inverted lists for n vectors: about 4 sqrt(n), as a power of two (FAISS's guidance)."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def factory_for(n: int, gpu: bool | None = None) -> str:
    """The ``index_factory`` string for a collection of n vectors (``gpu``: None = whether
    faiss-gpu and a GPU are present). On a CPU, HNSW beat IVF at 100k and 1M: 1M low-rank
    vectors at recall@10 0.99 took ~140 ms a query with IVF (a quarter of 1,024 lists), ~7 ms
    with HNSW; its build is the cost (~19 min for 1M on 2 cores, IVF ~10 min)."""
    if n <= FLAT_MAX:
        return "Flat"
    if gpu if gpu is not None else gpu_available():
        return f"IVF{ivf_nlist(n)},Flat"
    return f"HNSW{HNSW_M},Flat"


def ef_search(n: int) -> int:
    """HNSW's search breadth for n vectors: recall@10 >= 0.95 as measured."""
    return HNSW_EF_SEARCH if n <= HNSW_LARGE else HNSW_EF_SEARCH_LARGE


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
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    _tune(index)
    return index


def add_vectors(index: Any, vectors: np.ndarray, ids: np.ndarray) -> None:
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    _tune(index)       # a collection grown past HNSW_LARGE searches wider


def _tune(index: Any) -> None:
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = ef_search(index.ntotal)


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
