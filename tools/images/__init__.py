"""Image search over MedSigLIP embeddings: readers (PNG/JPEG/DICOM), the encoder, a FAISS +
SQLite index, the planner's tools (``search_images``, ``classify_image``) and the record side.

Heavy imports (torch, transformers, faiss) happen inside the functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from .encoder import CONFIGURE_HINT, EncoderError, ImageEncoder
from .index import AddReport, Hit, ImageIndex, ImageIndexError
from .readers import ImageReadError, read_entries, read_image
from .records import RecordImages, indexed_note, record_images
from .tools import ImageTools, image_tools, unavailable_reason


def default_index_path() -> str:
    """Where the index lives unless configured: <user data dir>/medagent/image-index."""
    from platformdirs import user_data_dir

    return str(Path(user_data_dir("medagent")) / "image-index")


__all__ = ["AddReport", "CONFIGURE_HINT", "EncoderError", "Hit", "ImageEncoder", "ImageIndex", "ImageIndexError",
           "ImageReadError", "ImageTools", "RecordImages", "default_index_path", "image_tools", "indexed_note",
           "read_entries", "read_image", "record_images", "unavailable_reason"]
