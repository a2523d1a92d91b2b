"""The agent's guideline tool: ``search_guidelines(query, k)`` -> ``ToolResult`` with citation ids.

``guideline_tools(index_path=None)`` gives the bound tool functions for the agent's registry
(typed, with docstrings, like ``EhrSession.tools()``). With no index path the tool searches the
starter corpus shipped in this package, indexed on first use into the user cache dir (and
brought up to date there, re-embedding only notes that changed, when the package changes).
"""

from __future__ import annotations

import functools
import re
import threading
from pathlib import Path
from typing import Any, Callable

from tools.cache import cache_dir
from tools.ehr.results import ToolResult

from .embedder import SentenceEmbedder
from .index import GuidelineIndex, IndexReport
from .readers import slug
from .retriever import GuidelineRetriever, Hit, Mode

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
MAX_K = 10
MAX_PASSAGE_CHARS = 600      # a passage shown to the planner: enough for the recommendation, not a page
STARTER_NOTE = "starter corpus: team summaries of US federal sources; check the cited source"


def starter_index_path(embedder_name: str | None = None) -> Path:
    """Where the starter corpus is indexed: one folder per embedder (vectors do not mix)."""
    base = cache_dir() / "guidelines"
    return base / "starter" if embedder_name is None else base / f"starter-{slug(embedder_name)}"


_STARTER_LOCK = threading.Lock()


def ensure_starter_index(out: Path | None = None, embedder_path: str | Path | None = None
                         ) -> tuple[GuidelineIndex, IndexReport]:
    """The starter corpus's index, built on first use and refreshed when the shipped notes change
    (hashing ~50 small files costs about a millisecond; the embedder loads only if one changed)."""
    embedder = SentenceEmbedder(embedder_path)
    target = out or starter_index_path(None if embedder_path is None else embedder.name)
    with _STARTER_LOCK:
        return GuidelineIndex.build(CORPUS_DIR, target, embedder,
                                    None if embedder_path is None else str(Path(embedder_path).resolve()))


def open_retriever(index_path: str | Path | None = None, embedder_path: str | Path | None = None,
                   mode: Mode = "fused") -> GuidelineRetriever:
    """A retriever over ``index_path``, or over the starter corpus (indexed with the chosen
    embedder) when it is None."""
    if index_path is None:
        index, _ = ensure_starter_index(embedder_path=embedder_path)
    else:
        index = GuidelineIndex.load(index_path)
    embedder = SentenceEmbedder(embedder_path) if embedder_path is not None else None
    return GuidelineRetriever(index, embedder, mode)


def compact(text: str, limit: int = MAX_PASSAGE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def render_hits(query: str, hits: list[Hit], starter: bool) -> str:
    head = f'{len(hits)} guideline passage(s) for "{query}"' + (f" ({STARTER_NOTE})" if starter else "") + ":"
    lines = [head]
    for n, hit in enumerate(hits, start=1):
        p = hit.passage
        origin = "; ".join(x for x in (p.source, p.date) if x)
        lines.append(f"[{n}] {p.citation} | {p.title} | {p.section}" + (f" | {origin}" if origin else ""))
        lines.append(f"    {compact(p.text)}")
    return "\n".join(lines)


class GuidelineTools:
    """The guideline tool bound to one index; the retriever (and its model) loads on first call."""

    def __init__(self, index_path: str | Path | None = None, embedder_path: str | Path | None = None,
                 mode: Mode = "fused", retriever: GuidelineRetriever | None = None):
        self.index_path = Path(index_path) if index_path is not None else retriever.index.path if retriever else None
        self.embedder_path = embedder_path
        self.mode = mode
        self._retriever = retriever
        self._lock = threading.Lock()

    @property
    def retriever(self) -> GuidelineRetriever:
        with self._lock:
            if self._retriever is None:
                self._retriever = open_retriever(self.index_path, self.embedder_path, self.mode)
            return self._retriever

    def tools(self) -> list[Callable[..., ToolResult]]:
        return [self.search_guidelines]

    def describe(self, citation: str) -> str | None:
        """One line for a citation id (chat's /sources): title, section, source, date, URL; None
        when the index holds no such section. Not a tool: the planner never sees it."""
        citation = re.sub(r":\d+$", "", citation.strip())           # a passage key names its section too
        passage = next((p for p in self.retriever.index.passages if p.citation == citation), None)
        if passage is None:
            return None
        origin = ", ".join(x for x in (passage.source, passage.date) if x)
        return f"{citation}: {passage.title} — {passage.section}" + (f" ({origin})" if origin else "") + (
            f" {passage.url}" if passage.url else "")

    def search_guidelines(self, query: str, k: int = 5) -> ToolResult:
        """Search clinical practice guidelines (screening, immunization schedules, treatment targets).

        Use it for what is recommended in general, not for this patient's data: e.g. 'HbA1c goal
        in adults with diabetes', 'colorectal cancer screening age', 'pneumococcal vaccine adults
        over 50', 'first-line drug for hypertension', 'CKD stage by eGFR'. Ask in plain words.
        k: passages to return (1-10). Each passage comes with a citation id
        Guideline/<note>#<section>; cite it for any statement taken from it.
        """
        return _search(self, query, k)


def _guarded(fn: Callable[..., ToolResult]) -> Callable[..., ToolResult]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> ToolResult:
        try:
            return fn(*args, **kwargs)
        except (FileNotFoundError, ValueError) as exc:
            return ToolResult.fail(str(exc))
        except Exception as exc:  # a tool never raises into the planner loop
            return ToolResult.fail(f"search_guidelines failed: {type(exc).__name__}: {exc}")
    return wrapper


@_guarded
def _search(tools: GuidelineTools, query: Any, k: Any = 5) -> ToolResult:
    if not isinstance(query, str) or not query.strip():
        return ToolResult.fail("query must be a non-empty text, e.g. 'statin for primary prevention'")
    try:
        k = max(1, min(MAX_K, int(k)))
    except (TypeError, ValueError):
        return ToolResult.fail(f"k must be a whole number from 1 to {MAX_K}")
    hits = tools.retriever.search(query, k)
    if not hits:
        return ToolResult(text=f'no guideline passage matches "{query}"; try other words (a condition, test or vaccine)')
    ids = list(dict.fromkeys(h.passage.citation for h in hits))
    return ToolResult(text=render_hits(query, hits, tools.index_path is None), ids=ids,
                      resources=[h.to_dict() for h in hits])


def guideline_tools(index_path: str | Path | None = None, embedder_path: str | Path | None = None) -> list[
        Callable[..., ToolResult]]:
    """The guideline tools for the agent's registry: ``[search_guidelines]`` bound to an index
    (None = the shipped starter corpus). Nothing loads until the first call."""
    return GuidelineTools(index_path, embedder_path).tools()
