"""The on-disk guideline index: passages with their metadata, a FAISS index and a bm25s index.

Layout of an index folder::

    meta.json      format, embedder name and dim, per-file sha256 and passage range, passages
    dense.faiss    IndexFlatIP over L2-normalised passage vectors (row i = passages[i])
    bm25/          the bm25s index over title + section + text

Re-indexing a folder hashes every file and re-reads and re-embeds only new or changed files;
the vectors of unchanged files are read back from the FAISS index (a flat index keeps them), so
the embedder is not even loaded when nothing changed. The flat FAISS and BM25 indexes are then
rebuilt from all passages: milliseconds for a guideline corpus, and it keeps them exact.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .chunking import Passage, chunk_document
from .embedder import TextEmbedder, normalise
from .lexical import LexicalIndex
from .readers import SUFFIXES, read_document

FORMAT = 1
META = "meta.json"
DENSE = "dense.faiss"
LEXICAL = "bm25"


@dataclass
class IndexReport:
    """What one (re-)index did: file names per outcome, and how many passages were embedded."""
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)     # file -> why it could not be read
    embedded: int = 0
    passages: int = 0

    @property
    def updated(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def guideline_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class GuidelineIndex:
    """Passages, their vectors (FAISS) and their lexical index (bm25s), loaded from one folder."""

    def __init__(self, path: Path, meta: dict, passages: list[Passage], dense, lexical: LexicalIndex):
        self.path = path
        self.meta = meta
        self.passages = passages
        self.dense = dense
        self.lexical = lexical

    @property
    def embedder_name(self) -> str:
        return self.meta["embedder"]["name"]

    @property
    def embedder_path(self) -> str | None:
        return self.meta["embedder"].get("path")

    @property
    def dim(self) -> int:
        return int(self.meta["embedder"]["dim"])

    def __len__(self) -> int:
        return len(self.passages)

    @staticmethod
    def exists(path: Path) -> bool:
        return (Path(path) / META).is_file()

    @classmethod
    def load(cls, path: str | Path) -> "GuidelineIndex":
        import faiss

        path = Path(path)
        if not cls.exists(path):
            raise FileNotFoundError(f"no guideline index at {path} (build one with `medagent guidelines index DIR`)")
        meta = json.loads((path / META).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: index format {meta.get('format')} is not {FORMAT}; re-index the folder")
        passages = [Passage.from_dict(p) for p in meta.pop("passages")]
        dense = faiss.read_index(str(path / DENSE))
        if dense.ntotal != len(passages):
            raise ValueError(f"{path}: {dense.ntotal} vectors for {len(passages)} passages; re-index the folder")
        return cls(path, meta, passages, dense, LexicalIndex.load(path / LEXICAL))

    def vectors(self) -> np.ndarray:
        if self.dense.ntotal == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.dense.reconstruct_n(0, self.dense.ntotal)

    @classmethod
    def build(cls, folder: str | Path, out: str | Path, embedder: TextEmbedder,
              embedder_path: str | None = None) -> tuple["GuidelineIndex", IndexReport]:
        """Index ``folder`` into ``out``, updating an existing index there in place: only new or
        changed files are read and embedded. A different embedder re-embeds everything."""
        folder, out = Path(folder), Path(out)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        with _locked(out):
            old = cls.load(out) if cls.exists(out) else None
            if old is not None and old.embedder_name != embedder.name:
                old = None                                   # other vectors: nothing can be kept
            old_files = old.meta["files"] if old else {}
            old_vectors = old.vectors() if old else None
            report = IndexReport()
            files: dict[str, dict] = {}
            for path in guideline_files(folder):
                rel = path.relative_to(folder).as_posix()
                sha = file_sha256(path)
                previous = old_files.get(rel)
                if previous and previous["sha256"] == sha and old is not None:
                    start, stop = previous["rows"]
                    files[rel] = {"sha256": sha, "passages": list(old.passages[start:stop])}
                    report.unchanged.append(rel)
                    continue
                try:
                    passages = chunk_document(read_document(path, folder))
                except Exception as exc:                       # one unreadable file does not stop the rest
                    report.skipped[rel] = f"{type(exc).__name__}: {exc}"
                    continue
                files[rel] = {"sha256": sha, "passages": passages, "new": True}
                (report.changed if previous else report.added).append(rel)
            report.removed = sorted(set(old_files) - set(files) - set(report.skipped))
            _check_unique_notes(files)
            if old is not None and not report.updated:
                report.passages = len(old)
                return old, report                           # nothing to write
            # unchanged files' vectors come back from the old index; only the rest are embedded now
            new_passages = [p for e in files.values() if e.get("new") for p in e["passages"]]
            fresh = normalise(embedder.encode([p.embedding_text() for p in new_passages])) if new_passages else None
            report.embedded = len(new_passages)
            dim = fresh.shape[1] if fresh is not None else old.dim if old else _probe_dim(embedder)
            ordered: list[Passage] = []
            blocks: list[np.ndarray] = []
            taken = 0
            for rel, entry in files.items():
                entry["rows"] = [len(ordered), len(ordered) + len(entry["passages"])]
                ordered += entry["passages"]
                if entry.get("new"):
                    if entry["passages"]:
                        blocks.append(fresh[taken:taken + len(entry["passages"])])
                    taken += len(entry["passages"])
                else:
                    a, b = old_files[rel]["rows"]
                    blocks.append(old_vectors[a:b])
            vectors = np.concatenate(blocks) if blocks else np.zeros((0, dim), dtype=np.float32)
            report.passages = len(ordered)
            meta = {"format": FORMAT, "folder": str(folder.resolve()),
                    "embedder": {"name": embedder.name, "path": embedder_path, "dim": int(dim)},
                    "files": {rel: {"sha256": e["sha256"], "rows": e["rows"]} for rel, e in files.items()}}
            index = cls(out, meta, ordered, _flat_index(vectors), LexicalIndex.build(ordered))
            index._save()
            return index, report

    def _save(self) -> None:
        import faiss

        tmp = self.path / (DENSE + ".tmp")
        faiss.write_index(self.dense, str(tmp))
        os.replace(tmp, self.path / DENSE)
        self.lexical.save(self.path / LEXICAL)
        data = {**self.meta, "passages": [p.to_dict() for p in self.passages]}
        fd, name = tempfile.mkstemp(dir=self.path, prefix=".meta-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
        os.replace(name, self.path / META)          # meta last: a reader never sees new meta over old data


def _flat_index(vectors: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _probe_dim(embedder: TextEmbedder) -> int:
    dim = getattr(embedder, "dim", None)
    return int(dim) if dim else int(embedder.encode(["dimension probe"]).shape[1])


def _check_unique_notes(files: dict[str, dict]) -> None:
    owner: dict[str, str] = {}
    for rel, entry in files.items():
        for p in entry["passages"]:
            if owner.setdefault(p.note_id, rel) != rel:
                raise ValueError(f"note id '{p.note_id}' is used by both {owner[p.note_id]} and {rel}; "
                                 "give one of them another `id:` in its front matter")


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One writer at a time per index folder (two commands may build the starter index at once)."""
    with open(folder / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
