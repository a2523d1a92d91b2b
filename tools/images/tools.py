"""The image tools the planner calls: ``search_images`` and ``classify_image``.

``image_tools(index_path, encoder_path)`` returns them only when they can work (an encoder is
configured and the index exists), so the planner is never offered a tool that can only fail.
The encoder (MedSigLIP, ~3.5 GB) loads on the first call, not when the tools are listed.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import numpy as np

from tools.ehr.results import ToolResult, table

from .encoder import CONFIGURE_HINT, EncoderError, ImageEncoder
from .index import Hit, ImageIndex, ImageIndexError, sha256_file
from .readers import ImageReadError, read_image

MAX_K = 50
HIT_COLUMNS = ("rank", "score", "id", "modality", "body part", "labels", "patient", "report", "path")


def _tool(fn: Callable[..., ToolResult]) -> Callable[..., ToolResult]:
    """Failures become error results (never exceptions into the planner loop)."""
    @functools.wraps(fn)
    def wrapper(self: "ImageTools", *args: Any, **kwargs: Any) -> ToolResult:
        try:
            return fn(self, *args, **kwargs)
        except (ImageReadError, ImageIndexError, EncoderError, ValueError, FileNotFoundError) as exc:
            return ToolResult.fail(str(exc))
        except Exception as exc:
            return ToolResult.fail(f"{fn.__name__} failed: {type(exc).__name__}: {exc}")
    return wrapper


def hit_row(rank: int, hit: Hit) -> dict[str, str]:
    r = hit.row
    return {"rank": str(rank), "score": f"{hit.score:.3f}", "id": hit.citation_id, "modality": r.get("modality", ""),
            "body part": r.get("body_part", ""), "labels": r.get("labels", ""), "patient": r.get("patient_id", ""),
            "report": r.get("report", ""),
            "path": Path(r["path"]).name + (f" frame {r['frame']}" if r.get("frame", -1) >= 0 else "") if r["path"] else ""}


class ImageTools:
    """Image search and zero-shot classification over one index with one encoder."""

    def __init__(self, index_path: str | Path, encoder_path: str | Path, encoder: ImageEncoder | None = None,
                 patient_id: str | None = None):
        """``patient_id``: the patient an agent session is bound to. Hits from other patients then
        keep their image findings (modality, body part, labels: the point of similar cases) but
        lose what identifies them or their record (patient id, report, file path, extra columns)."""
        self.index = ImageIndex(index_path)
        self.encoder_path = Path(encoder_path).expanduser()
        self._encoder = encoder
        self.patient_id = patient_id

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            self._encoder = ImageEncoder(self.encoder_path)
        return self._encoder

    def tools(self) -> list[Callable[..., ToolResult]]:
        return [self.search_images, self.classify_image]

    def query_vector(self, query_image: str | None, query_text: str | None) -> np.ndarray:
        parts = []
        if query_image:
            parts.append(self.encoder.encode_images([read_image(Path(query_image).expanduser())])[0])
        if query_text and query_text.strip():
            parts.append(self.encoder.encode_texts([query_text.strip()])[0])
        if not parts:
            raise ValueError("give query_image (a PNG/JPEG/DICOM path) or query_text (a description), or both")
        vec = np.mean(parts, axis=0)
        return (vec / max(float(np.linalg.norm(vec)), 1e-12)).astype(np.float32)

    @_tool
    def search_images(self, query_image: str | None = None, query_text: str | None = None, k: int = 5) -> ToolResult:
        """Find the most similar indexed images (similar cases) to an image, a description, or both.

        query_image: path of a PNG, JPEG or DICOM file. query_text: what the image shows, in
        words (e.g. 'chest x-ray with pleural effusion'). Both together search for their
        average. k: how many results (default 5). Returns the nearest images with a cosine
        score (higher = more similar) and what is known about each: modality, body part,
        labels, patient id and report text. Similarity is not a diagnosis.
        """
        k = max(1, min(int(k), MAX_K))
        self.index.check_encoder(self.encoder)
        hits = self.index.search(self.query_vector(query_image, query_text), k)
        m = self.index.manifest()
        if not hits:
            return ToolResult(text=f"No images in the index at {self.index.path} ({m['count']} indexed).")
        head = (f"{len(hits)} most similar of {m['count']} indexed images ({m['model']} embeddings, cosine similarity, "
                f"best first):")
        hits = [self._scoped(h) for h in hits]
        rows = [hit_row(i, h) for i, h in enumerate(hits, 1)]
        return ToolResult(text=head + "\n" + table(rows, columns=HIT_COLUMNS), ids=[h.citation_id for h in hits],
                          resources=[h.as_json() for h in hits])

    def _scoped(self, hit: Hit) -> Hit:
        owner = hit.row.get("patient_id") or ""
        if self.patient_id is None or not owner or owner == self.patient_id:
            return hit
        row = {**hit.row, "patient_id": "(another patient)", "report": "", "path": "", "extra": {}}
        return Hit(hit.score, row)

    @_tool
    def classify_image(self, image: str, labels: list[str]) -> ToolResult:
        """Zero-shot scores of an image against candidate findings (MedSigLIP).

        image: path of a PNG, JPEG or DICOM file. labels: 2-20 short descriptions to score,
        e.g. ['chest x-ray with pneumonia', 'normal chest x-ray']. Each label gets its own
        probability (sigmoid, so they need not sum to 1), highest first. A screening aid, not
        a diagnosis.
        """
        labels = [str(x).strip() for x in labels if str(x).strip()]
        if not labels:
            raise ValueError("give at least one label to score")
        path = Path(image).expanduser()
        img_vec = self.encoder.encode_images([read_image(path)])[0]
        probs = self.encoder.zero_shot(img_vec, self.encoder.encode_texts(labels))
        ranked = sorted(zip(labels, probs), key=lambda x: -x[1])
        rows = [{"label": label, "probability": f"{p:.3f}"} for label, p in ranked]
        ids = []
        if self.index.exists:  # cite the image when it is an indexed one
            sha = sha256_file(path)
            ids = [Hit(0.0, r).citation_id for r in self.index.rows("sha256 = ?", (sha,))][:1]
        text = f"Zero-shot scores for {path.name} ({self.encoder.name}, sigmoid per label):\n"
        return ToolResult(text=text + table(rows, columns=("label", "probability")), ids=ids,
                          resources=[{"label": label, "probability": p} for label, p in ranked])


def image_tools(index_path: str | Path | None, encoder_path: str | Path | None, encoder: ImageEncoder | None = None,
                patient_id: str | None = None) -> list[Callable[..., ToolResult]]:
    """[search_images, classify_image] when an encoder folder is configured and the index exists, else [].

    Pass the bound patient's id as ``patient_id`` in an agent session (see ``ImageTools``)."""
    if not encoder_path or not Path(encoder_path).expanduser().joinpath("config.json").is_file():
        return []
    if not index_path or not ImageIndex(index_path).exists:
        return []
    return ImageTools(index_path, encoder_path, encoder, patient_id).tools()


def unavailable_reason(index_path: str | Path | None, encoder_path: str | Path | None) -> str | None:
    """Why ``image_tools`` returns nothing (for the CLI and the planner's notes); None when usable."""
    if not encoder_path:
        return CONFIGURE_HINT
    if not Path(encoder_path).expanduser().joinpath("config.json").is_file():
        return f"the image encoder folder {encoder_path} has no config.json. {CONFIGURE_HINT}"
    if not index_path or not ImageIndex(index_path).exists:
        return f"no image index at {index_path}: build one with `medagent images index DIR`"
    return None
