"""``GuidelineRetriever``: one interface, three rankings behind it (BM25, dense, fused).

Fusion is reciprocal rank fusion (Cormack et al. 2009): score = sum over rankings of
1 / (RRF_K + rank). It needs no score calibration between BM25 and cosine, which is why MedRAG
uses it; on MIRAGE, BM25 alone matched a dense medical retriever and fusing added about a point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .chunking import Passage
from .embedder import SentenceEmbedder, TextEmbedder
from .index import GuidelineIndex

Mode = Literal["bm25", "dense", "fused"]
MODES: tuple[str, ...] = ("bm25", "dense", "fused")
RRF_K = 60
POOL = 50            # candidates each side contributes to the fusion


@dataclass
class Hit:
    passage: Passage
    score: float
    ranks: dict[str, int] = field(default_factory=dict)    # 1-based rank per side that found it

    def to_dict(self) -> dict:
        return {**self.passage.to_dict(), "score": round(self.score, 6), "ranks": self.ranks}


def reciprocal_rank_fusion(rankings: dict[str, list[int]], k: int = RRF_K) -> list[tuple[int, float, dict[str, int]]]:
    """``{"bm25": [row, ...], "dense": [...]}`` (best first) -> [(row, fused score, ranks)] best
    first; ties go to the row ranked best by any side, then to the lower row."""
    scores: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, rows in rankings.items():
        for rank, row in enumerate(rows, start=1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(row, {})[name] = rank
    order = sorted(scores, key=lambda r: (-scores[r], min(ranks[r].values()), r))
    return [(r, scores[r], ranks[r]) for r in order]


class GuidelineRetriever:
    """Search one guideline index. The query embedder is the index's own unless one is given
    (it must then carry the same name: vectors from two models do not compare)."""

    def __init__(self, index: GuidelineIndex, embedder: TextEmbedder | None = None, mode: Mode = "fused",
                 pool: int = POOL, rrf_k: int = RRF_K):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if embedder is not None and embedder.name != index.embedder_name:
            raise ValueError(f"the index was embedded with {index.embedder_name!r}, not {embedder.name!r}; "
                             "re-index the folder with this embedder")
        self.index = index
        self._embedder = embedder
        self.mode = mode
        self.pool = pool
        self.rrf_k = rrf_k

    @classmethod
    def open(cls, path: str | Path, embedder: TextEmbedder | None = None, mode: Mode = "fused") -> "GuidelineRetriever":
        return cls(GuidelineIndex.load(path), embedder, mode)

    @property
    def embedder(self) -> TextEmbedder:
        if self._embedder is None:
            self._embedder = SentenceEmbedder(self.index.embedder_path)   # None -> MiniLM from the wheel
        return self._embedder

    def bm25(self, query: str, n: int) -> list[tuple[int, float]]:
        return self.index.lexical.search(query, n)

    def dense(self, query: str, n: int) -> list[tuple[int, float]]:
        if len(self.index) == 0:
            return []
        vector = np.ascontiguousarray(self.embedder.encode([query]), dtype=np.float32)
        scores, rows = self.index.dense.search(vector, min(n, len(self.index)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0]) if r >= 0]

    def search(self, query: str, k: int = 5, mode: Mode | None = None) -> list[Hit]:
        """The ``k`` best passages for ``query``, best first."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        query = " ".join(query.split())
        if not query or k <= 0:
            return []
        passages = self.index.passages
        if mode == "bm25":
            return [Hit(passages[r], s, {"bm25": i}) for i, (r, s) in enumerate(self.bm25(query, k), start=1)]
        if mode == "dense":
            return [Hit(passages[r], s, {"dense": i}) for i, (r, s) in enumerate(self.dense(query, k), start=1)]
        pool = max(self.pool, k)
        rankings = {"bm25": [r for r, _ in self.bm25(query, pool)], "dense": [r for r, _ in self.dense(query, pool)]}
        fused = reciprocal_rank_fusion(rankings, self.rrf_k)[:k]
        return [Hit(passages[r], s, ranks) for r, s, ranks in fused]
