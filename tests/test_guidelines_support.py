"""Helpers for the guideline tests (no tests here): a counting hash embedder and a tiny text PDF writer."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np


class HashEmbedder:
    """Bag of hashed words, L2-normalised: deterministic, instant, and texts that share words are
    close, so dense ranking is meaningful. ``calls`` records every text it was asked to embed."""

    name = "hash-embedder-64"
    dim = 64

    def __init__(self, path=None):
        self.calls: list[str] = []

    def encode(self, texts):
        self.calls += list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def write_text_pdf(path: Path, lines: list[str], title: str, outline: tuple[str, ...] = (),
                   source: str = "Test agency", date: str = "2024-01") -> Path:
    """A one-page PDF with real (extractable) Helvetica text, metadata and an optional outline."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({escaped}) Tj T*" if line else "T*")
    ops.append("ET")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(ops).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    writer.add_metadata({"/Title": title, "/Source": source, "/Date": date})
    for heading in outline:
        writer.add_outline_item(title=heading, page_number=0)
    with open(path, "wb") as fh:
        writer.write(fh)
    return path
