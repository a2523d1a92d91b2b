"""``ImageIndex``: image embeddings in FAISS, their metadata in SQLite, in one folder.

    INDEX/index.json      model name, dim, FAISS factory, count (what the vectors mean)
    INDEX/images.sqlite   one row per image (a frame of a multi-frame DICOM is an image):
                          path, frame, sha256, patient id, modality, body part, labels,
                          report, DICOM UIDs, extra CSV columns, and the vector itself
    INDEX/vectors.faiss   the search structure, rebuilt from SQLite whenever it must be

SQLite is the source of truth; the FAISS file is derived from it (faiss ids = row ids), so a
changed file or a collection that outgrows flat search just rebuilds it. Adding a folder
again skips files whose size and mtime (else sha256) are unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from . import vectors
from .readers import FrameMode, ImageEntry, ImageReadError, iter_image_files, read_entries

if TYPE_CHECKING:
    from .encoder import ImageEncoder

FORMAT = 1
META_COLUMNS = ("patient_id", "modality", "body_part", "labels", "report", "study_uid", "series_uid", "sop_uid",
                "description")
CSV_ALIASES = {"file": "path", "filename": "path", "image": "path", "patient": "patient_id", "label": "labels",
               "report_text": "report", "findings": "report", "bodypart": "body_part", "body part": "body_part"}
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, frame INTEGER NOT NULL DEFAULT -1, sha256 TEXT NOT NULL,
    size INTEGER, mtime REAL, {", ".join(f"{c} TEXT NOT NULL DEFAULT ''" for c in META_COLUMNS)},
    extra TEXT NOT NULL DEFAULT '{{}}', vector BLOB NOT NULL, UNIQUE (path, frame));
CREATE INDEX IF NOT EXISTS images_sha ON images (sha256);
CREATE INDEX IF NOT EXISTS images_patient ON images (patient_id);
CREATE INDEX IF NOT EXISTS images_study ON images (study_uid);
CREATE INDEX IF NOT EXISTS images_series ON images (series_uid);
"""


class ImageIndexError(Exception):
    """The index is missing, or was built with another model than the encoder in hand."""


@dataclass
class AddReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.added} images added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.removed} removed, {len(self.failed)} files failed ({self.seconds:.1f} s)")


@dataclass
class Hit:
    """One search result: the image's row (without its vector) and its cosine similarity."""

    score: float
    row: dict[str, Any]

    @property
    def citation_id(self) -> str:
        frame = self.row.get("frame", -1)
        return f"Image/{self.row['sha256'][:12]}" + (f"-f{frame}" if frame is not None and frame >= 0 else "")

    def as_json(self) -> dict[str, Any]:
        meta = {c: self.row.get(c, "") for c in META_COLUMNS if self.row.get(c)}
        meta.update(self.row.get("extra") or {})
        frame = self.row.get("frame", -1)
        return {"id": self.citation_id, "path": self.row["path"] or None, "frame": None if frame < 0 else frame,
                "score": round(self.score, 4), "metadata": meta}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata_csv(csv_path: Path, folder: Path) -> dict[str, dict[str, Any]]:
    """Rows of a labels/metadata CSV keyed by resolved path (a ``path`` column, relative to the
    folder or absolute; a bare file name also matches). Other columns go to ``extra``."""
    out: dict[str, dict[str, Any]] = {}
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        for raw in csv.DictReader(fh):
            rec = {CSV_ALIASES.get(k.strip().lower(), k.strip().lower()): (v or "").strip() for k, v in raw.items() if k}
            if not rec.get("path"):
                raise ValueError(f"{csv_path}: every row needs a path (or file/filename/image) column")
            if rec.get("labels"):  # one separator on disk: '; '
                rec["labels"] = "; ".join(x.strip() for x in rec["labels"].replace("|", ";").split(";") if x.strip())
            meta = {k: rec[k] for k in META_COLUMNS if rec.get(k)}
            meta["extra"] = {k: v for k, v in rec.items() if k not in META_COLUMNS and k != "path" and v}
            target = Path(rec["path"]).expanduser()
            out[str((target if target.is_absolute() else folder / target).resolve())] = meta
            out.setdefault(target.name, meta)
    return out


class ImageIndex:
    """An image index on disk. Open it with ``ImageIndex(path)``; ``exists`` says if it is built."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        self._db: sqlite3.Connection | None = None
        self._faiss: Any = None

    # -- files ------------------------------------------------------------------------------

    @property
    def manifest_file(self) -> Path:
        return self.path / "index.json"

    @property
    def exists(self) -> bool:
        return self.manifest_file.is_file() and (self.path / "images.sqlite").is_file()

    def manifest(self) -> dict[str, Any]:
        if not self.exists:
            raise ImageIndexError(f"no image index at {self.path} (build one with `medagent images index DIR`)")
        return json.loads(self.manifest_file.read_text())

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path / "images.sqlite")
            self._db.row_factory = sqlite3.Row
            self._db.executescript(SCHEMA)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM images").fetchone()[0])

    def check_encoder(self, encoder: "ImageEncoder") -> None:
        if not self.manifest_file.is_file():
            return
        m = json.loads(self.manifest_file.read_text())
        if (m.get("model"), m.get("dim")) != (encoder.name, encoder.dim):
            raise ImageIndexError(f"the index at {self.path} holds {m.get('model')} embeddings ({m.get('dim')}-d); "
                              f"the encoder is {encoder.name} ({encoder.dim}-d): use the same model, or a new --out")

    # -- building ---------------------------------------------------------------------------

    def add_folder(self, folder: str | Path, encoder: "ImageEncoder", labels_csv: str | Path | None = None,
                   frames: FrameMode = "middle") -> AddReport:
        """Index every PNG/JPEG/DICOM under ``folder``; unchanged files are skipped."""
        start = time.perf_counter()
        self.check_encoder(encoder)
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
        csv_meta = read_metadata_csv(Path(labels_csv).expanduser(), folder) if labels_csv else {}
        report, pending, replaced = AddReport(), [], False
        seen: set[str] = set()
        for file in iter_image_files(folder):
            key = str(file)
            seen.add(key)
            meta = csv_meta.get(key) or csv_meta.get(file.name) or {}
            old = self.db.execute("SELECT id, sha256, size, mtime FROM images WHERE path = ?", (key,)).fetchall()
            stat = file.stat()
            if old and all((r["size"], r["mtime"]) == (stat.st_size, stat.st_mtime) for r in old):
                self._apply_meta(key, meta)
                report.unchanged += 1
                continue
            sha = sha256_file(file)
            if old and all(r["sha256"] == sha for r in old):  # touched, not changed
                self.db.execute("UPDATE images SET size = ?, mtime = ? WHERE path = ?", (stat.st_size, stat.st_mtime, key))
                self._apply_meta(key, meta)
                report.unchanged += 1
                continue
            try:
                entries = read_entries(file, frames)
            except ImageReadError as exc:
                report.failed.append((key, str(exc)))
                continue
            if old:
                self.db.execute("DELETE FROM images WHERE path = ?", (key,))
                replaced, report.updated = True, report.updated + 1
            else:
                report.added += 1
            pending += [(key, sha, stat, entry, meta) for entry in entries]
            if len(pending) >= encoder.batch_size:
                self._insert(pending, encoder)
                pending = []
        self._insert(pending, encoder)
        for (path,) in self.db.execute("SELECT DISTINCT path FROM images").fetchall():
            if path.startswith(str(folder) + "/") and path not in seen and not Path(path).exists():
                self.db.execute("DELETE FROM images WHERE path = ?", (path,))
                report.removed, replaced = report.removed + 1, True
        self.db.commit()
        self._save_vectors(encoder, rebuild=replaced)
        report.seconds = time.perf_counter() - start
        return report

    def _apply_meta(self, path: str, meta: dict[str, Any]) -> None:
        """A CSV given again may carry new labels for an unchanged image: keep them, no re-encoding."""
        cols = {k: v for k, v in meta.items() if k in META_COLUMNS}
        if meta.get("extra"):
            cols["extra"] = json.dumps(meta["extra"], sort_keys=True)
        if cols:
            sets = ", ".join(f"{k} = ?" for k in cols)
            self.db.execute(f"UPDATE images SET {sets} WHERE path = ?", (*cols.values(), path))

    def _insert(self, pending: list[tuple[str, str, Any, ImageEntry, dict[str, Any]]], encoder: "ImageEncoder") -> None:
        if not pending:
            return
        vecs = encoder.encode_images([entry.image for _, _, _, entry, _ in pending])
        for (path, sha, stat, entry, meta), vec in zip(pending, vecs):
            cols = {c: str(meta.get(c) or entry.meta.get(c) or "") for c in META_COLUMNS}
            extra = json.dumps(meta.get("extra") or {}, sort_keys=True)
            frame = -1 if entry.frame is None else entry.frame
            self.db.execute(
                f"INSERT INTO images (path, frame, sha256, size, mtime, {', '.join(META_COLUMNS)}, extra, vector) "
                f"VALUES (?, ?, ?, ?, ?, {', '.join('?' * len(META_COLUMNS))}, ?, ?)",
                (path, frame, sha, stat.st_size, stat.st_mtime, *cols.values(), extra,
                 np.asarray(vec, dtype=np.float32).tobytes()))

    def _all_vectors(self, dim: int, since_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute("SELECT id, vector FROM images WHERE id > ? ORDER BY id", (since_id,)).fetchall()
        ids = np.array([r["id"] for r in rows], dtype=np.int64)
        vecs = np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return vecs, ids

    def _save_vectors(self, encoder: "ImageEncoder", rebuild: bool) -> None:
        old = json.loads(self.manifest_file.read_text()) if self.manifest_file.is_file() else {}
        n = self.count()
        factory = vectors.factory_for(n)
        faiss_file = self.path / "vectors.faiss"
        if rebuild or old.get("factory") != factory or not faiss_file.is_file():
            vecs, ids = self._all_vectors(encoder.dim)
            index = vectors.build_index(vecs if len(vecs) else np.zeros((0, encoder.dim), np.float32), ids, factory)
        else:  # same structure: add only the rows past the last one it holds
            index = vectors.load(str(faiss_file))
            vecs, ids = self._all_vectors(encoder.dim, since_id=int(old.get("max_id", 0)))
            if len(ids):
                vectors.add_vectors(index, vecs, ids)
        vectors.save(index, str(faiss_file))
        max_id = self.db.execute("SELECT coalesce(max(id), 0) FROM images").fetchone()[0]
        manifest = {"format": FORMAT, "model": encoder.name, "encoder_path": str(encoder.path), "dim": encoder.dim,
                    "factory": factory, "search": vectors.describe(index), "count": n, "max_id": int(max_id),
                    "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self.manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
        self._faiss = None

    # -- reading ----------------------------------------------------------------------------

    def _row(self, r: sqlite3.Row) -> dict[str, Any]:
        out = {k: r[k] for k in r.keys() if k != "vector"}
        out["extra"] = json.loads(out.get("extra") or "{}")
        return out

    def rows(self, where: str = "1", params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        sql = f"SELECT * FROM images WHERE {where} ORDER BY id"
        return [self._row(r) for r in self.db.execute(sql, tuple(params)).fetchall()]

    def search(self, query: np.ndarray, k: int = 5) -> list[Hit]:
        """The k nearest images to a unit-length query vector, best first."""
        m = self.manifest()
        if query.shape[-1] != m["dim"]:
            raise ImageIndexError(f"query has {query.shape[-1]} dims; the index holds {m['dim']}-d vectors")
        if self._faiss is None:
            self._faiss = vectors.to_searchable(vectors.load(str(self.path / "vectors.faiss")))
        scores, ids = vectors.search(self._faiss, query.reshape(1, -1), max(1, k))
        hits = []
        for score, row_id in zip(scores[0], ids[0]):
            if row_id < 0:
                continue
            r = self.db.execute("SELECT * FROM images WHERE id = ?", (int(row_id),)).fetchone()
            if r is not None:
                hits.append(Hit(float(score), self._row(r)))
        return hits
