"""The lexical side: bm25s over title + section + passage text, with a small tokenizer of our own.

bm25s's own tokenizer would need PyStemmer for stemming; a light suffix stripper here makes
"vaccines"/"vaccination"/"vaccinated" and "screening"/"screened" meet, which is most of what
stemming buys on short clinical questions. Hyphenated and alphanumeric terms (HbA1c, CHA2DS2-VASc,
PCV20) are kept whole and also split, so either spelling matches.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .chunking import Passage

_WORD = re.compile(r"[a-z0-9]+(?:[-/][a-z0-9]+)*")
STOPWORDS = frozenset("""a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has have having he her
here hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
out over own same she should so some such than that the their them then there these they this those through to too under
until up very was we were what when where which while who whom why will with would you your yours patient patients
person people""".split())
# spelling variants clinicians use for the same thing (applied to tokens before stemming)
ALIASES = {"a1c": "hba1c", "hgba1c": "hba1c", "glycated": "hba1c", "glycosylated": "hba1c", "shingles": "zoster",
           "shingrix": "zoster", "flu": "influenza", "pap": "cytology", "mammogram": "mammography",
           "afib": "fibrillation", "af": "fibrillation", "htn": "hypertension", "dm": "diabetes",
           "t2dm": "diabetes", "ckd": "kidney", "copd": "copd", "ldct": "tomography", "ppsv23": "ppsv23"}


def stem(word: str) -> str:
    """A light suffix stripper: vaccine/vaccines/vaccination/vaccinated -> vaccin."""
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix in ("ations", "ation", "ions", "ion", "ities", "ity", "ness", "ments", "ings", "ing", "ies", "ied",
                   "ated", "ates", "ate", "ives", "ive", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            word = word[: len(word) - len(suffix)]
            break
    return word.rstrip("e") if len(word) > 3 else word


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _WORD.finditer(text.lower()):
        term = match.group()
        parts = re.split(r"[-/]", term)
        for word in ([term] if len(parts) > 1 else []) + parts:
            word = ALIASES.get(word, word)
            if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
                continue
            tokens.append(stem(word))
    return tokens


def passage_tokens(passage: "Passage") -> list[str]:
    return tokenize(f"{passage.title} {passage.section} {passage.text}")


class LexicalIndex:
    """bm25s over the passages, row i = passage i."""

    def __init__(self, retriever, size: int):
        self.retriever = retriever
        self.size = size

    @classmethod
    def build(cls, passages: list["Passage"]) -> "LexicalIndex":
        import bm25s

        retriever = bm25s.BM25()
        if passages:
            retriever.index([passage_tokens(p) or ["_"] for p in passages], show_progress=False)
        return cls(retriever, len(passages))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.size:
            self.retriever.save(str(folder), show_progress=False)
        (folder / "size.json").write_text(json.dumps({"passages": self.size}))

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        import bm25s

        size = json.loads((folder / "size.json").read_text())["passages"]
        retriever = bm25s.BM25.load(str(folder), show_progress=False) if size else bm25s.BM25()
        return cls(retriever, size)

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        """(row, score) best first; rows with no query term are left out."""
        tokens = tokenize(query)
        if not tokens or not self.size:
            return []
        docs, scores = self.retriever.retrieve([tokens], k=min(n, self.size), show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(np.asarray(docs)[0], np.asarray(scores)[0]) if s > 0]
