"""An image given with a question (``ask --image``, chat ``/image``): one content block for a
multimodal MedGemma backend, and a note in the question for the image tools.

PNG and JPEG go as they are; DICOM is windowed and converted to PNG by the image tools' reader,
so a multimodal model sees what a radiologist's viewer would show.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Backends that can be a multimodal MedGemma (the embedded llama.cpp models read text only).
MULTIMODAL_KINDS = ("openai", "hf")

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


@dataclass(frozen=True)
class QuestionImage:
    path: str
    sha256: str
    block: dict[str, Any]       # {"type": "image", "base64": ..., "mime_type": ...}


def load_question_image(path: str | Path) -> QuestionImage:
    """Read ``path`` (PNG, JPEG or DICOM); raises ValueError with a clear message otherwise."""
    from tools.images.readers import ImageReadError, read_image

    p = Path(path).expanduser()
    if not p.is_file():
        raise ValueError(f"image {p} does not exist")
    raw = p.read_bytes()
    mime = MIME.get(p.suffix.lower())
    if mime is None:  # DICOM or another format: windowed and re-encoded as PNG
        try:
            img = read_image(p)
        except (ImageReadError, OSError) as exc:
            raise ValueError(f"cannot read image {p}: {exc}") from exc
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    else:
        data = raw
    return QuestionImage(path=str(p.resolve()), sha256=hashlib.sha256(raw).hexdigest(),
                         block={"type": "image", "base64": base64.b64encode(data).decode(), "mime_type": mime})


def image_note(image: QuestionImage, to_model: bool, image_search: bool) -> str:
    """What the question says about its image: seen by the model, and/or a query for the tools."""
    parts = ["An image is attached" + (" (shown to you)" if to_model else "")]
    if image_search:
        parts.append(f'search_images(query_image="{image.path}") finds similar indexed cases')
    return "(" + "; ".join(parts) + ".)"
