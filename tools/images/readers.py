"""Read PNG/JPEG and DICOM files into 8-bit RGB images the encoder can take.

DICOM pixel values are not display values: the modality LUT (rescale slope/intercept) gives
physical units (Hounsfield units for CT), a window maps the clinically useful range to grey
levels (the file's WindowCenter/Width, else the 0.5-99.5 percentile range), and MONOCHROME1
stores bright as low. Multi-frame files give their middle frame, or every frame as its own
image when asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
FrameMode = Literal["middle", "each"]


class ImageReadError(Exception):
    """A file that is not an image we can read, or pixel data we cannot decode."""


@dataclass
class ImageEntry:
    """One image to encode: the picture, which frame it is, and what the file says about it."""

    image: Image.Image
    frame: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_image_file(path: Path) -> bool:
    return path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or is_dicom(path))


def iter_image_files(folder: Path) -> Iterator[Path]:
    """Image files under ``folder`` (recursively, sorted, hidden files skipped)."""
    for path in sorted(folder.rglob("*")):
        if not any(part.startswith(".") for part in path.relative_to(folder).parts) and is_image_file(path):
            yield path


def read_entries(path: str | Path, frames: FrameMode = "middle") -> list[ImageEntry]:
    """The images in a file: one for PNG/JPEG and single-frame DICOM, one per frame if asked."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"{path}: no such file")
    if is_dicom(path):
        return read_dicom(path, frames)
    try:
        with Image.open(path) as img:
            return [ImageEntry(to_rgb(img))]
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ImageReadError(f"{path}: not a readable PNG/JPEG image ({exc})") from exc


def read_image(path: str | Path) -> Image.Image:
    """The one picture a query stands for (a multi-frame DICOM gives its middle frame)."""
    return read_entries(path, "middle")[0].image


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I", "F"):  # 16-bit PNG: scale to 8 bits before RGB
        return Image.fromarray(window(np.asarray(img, dtype=np.float64), None, None)).convert("RGB")
    return img.convert("RGB")


# -- DICOM --------------------------------------------------------------------------------

WINDOWED_MODALITIES = frozenset({"CT", "CR", "DX", "MG", "RG", "XA", "RF", "PX", "IO"})


def _first(value: Any) -> float | None:
    """The first of a possibly multi-valued number (WindowCenter may hold several windows)."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def window(values: np.ndarray, center: float | None, width: float | None) -> np.ndarray:
    """Linear window (DICOM PS3.3 C.11.2.1.2) to uint8; no usable window: 0.5-99.5 percentiles."""
    if center is None or width is None or width <= 1:
        lo, hi = np.percentile(values, [0.5, 99.5])
        if hi <= lo:
            lo, hi = float(values.min()), float(values.max())
    else:
        lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return (np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def dicom_meta(ds: Any) -> dict[str, Any]:
    """What the header says that the index keeps."""
    def text(keyword: str) -> str:
        value = ds.get(keyword, "")
        return str(value).strip() if value is not None else ""

    return {"modality": text("Modality"), "body_part": text("BodyPartExamined"), "patient_id": text("PatientID"),
            "study_uid": text("StudyInstanceUID"), "series_uid": text("SeriesInstanceUID"),
            "sop_uid": text("SOPInstanceUID"), "description": text("StudyDescription") or text("SeriesDescription")}


def _pixels(ds: Any, path: Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError/NotImplementedError/ValueError by handler
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts is not None and ts.is_compressed:
            raise ImageReadError(
                f"{path}: pixel data is compressed as {ts.name} ({ts}) and no installed decoder reads it "
                f"({exc}). Install a decoder (e.g. `pip install pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg` "
                f"or `pyjpegls`) or convert the file to an uncompressed transfer syntax.") from exc
        raise ImageReadError(f"{path}: cannot read the pixel data ({type(exc).__name__}: {exc})") from exc


def _grey_frame(raw: np.ndarray, ds: Any) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(raw, ds).astype(np.float64)
    modality = str(ds.get("Modality", "")).upper()
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if modality in WINDOWED_MODALITIES and center is None and "VOILUTSequence" in ds:
        values = apply_voi_lut(values, ds).astype(np.float64)  # a LUT instead of a window
    out = window(values, center, width) if modality in WINDOWED_MODALITIES else window(values, None, None)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def _rgb_frame(raw: np.ndarray, ds: Any) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        raw = apply_color_lut(raw, ds)
    if raw.dtype != np.uint8:  # 16/32-bit colour: scale each file to 8 bits
        bits = int(ds.get("BitsStored", 8 * raw.dtype.itemsize))
        raw = (raw.astype(np.float64) / (2 ** bits - 1) * 255.0).clip(0, 255).astype(np.uint8)
    return raw


def read_dicom(path: str | Path, frames: FrameMode = "middle") -> list[ImageEntry]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        # force: some .dcm files lack the 128-byte preamble (older ACR-NEMA style); trust the suffix
        ds = pydicom.dcmread(path, force=path.suffix.lower() in DICOM_SUFFIXES)
    except (InvalidDicomError, OSError, ValueError, AttributeError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise ImageReadError(f"{path}: DICOM file has no pixel data (e.g. a structured report)")
    pixels = _pixels(ds, path)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    stack = pixels if n_frames > 1 else pixels[None, ...]
    chosen = range(n_frames) if frames == "each" else [n_frames // 2]
    meta = dicom_meta(ds)
    entries = []
    for i in chosen:
        raw = stack[i]
        colour = samples == 3 or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
        arr = _rgb_frame(raw, ds) if colour else _grey_frame(raw, ds)
        img = Image.fromarray(arr).convert("RGB")
        entries.append(ImageEntry(img, frame=i if n_frames > 1 else None, meta={**meta, "frames": n_frames}))
    return entries
