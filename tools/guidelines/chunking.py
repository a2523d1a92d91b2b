"""``Document`` -> ``Passage``s: one per section, a long section split at paragraph boundaries.

As MedRAG does for StatPearls, each passage keeps its title and section so that the dense side
embeds ``title — section: text`` (a bare paragraph often does not say what it is about), and
the citation id names the section: ``Guideline/<note-id>#<section-slug>``. The parts of a long
section share that citation id; ``part`` tells them apart.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from .readers import Document, slug

MAX_CHARS = 900          # MiniLM reads 256 word pieces; ~900 characters of prose stays inside that
MIN_CHARS = 200          # a trailing fragment shorter than this joins the part before it


@dataclass
class Passage:
    citation: str        # Guideline/<note-id>#<section-slug>
    note_id: str
    title: str
    section: str
    source: str
    date: str
    url: str
    path: str
    part: int
    text: str

    @property
    def key(self) -> str:
        """Unique within an index (citation plus part)."""
        return f"{self.citation}:{self.part}"

    def embedding_text(self) -> str:
        return f"{self.title} — {self.section}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Passage":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def chunk_document(doc: Document, max_chars: int = MAX_CHARS) -> list[Passage]:
    passages: list[Passage] = []
    seen: dict[str, int] = {}
    for section in doc.sections:
        base = slug(section.heading)
        seen[base] = seen.get(base, 0) + 1
        section_slug = base if seen[base] == 1 else f"{base}-{seen[base]}"
        citation = f"Guideline/{doc.note_id}#{section_slug}"
        for part, text in enumerate(pack_paragraphs(section.paragraphs, max_chars), start=1):
            passages.append(Passage(citation=citation, note_id=doc.note_id, title=doc.title, section=section.heading,
                                    source=doc.source, date=doc.date, url=doc.url, path=doc.path, part=part, text=text))
    return passages


def pack_paragraphs(paragraphs: list[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Whole paragraphs packed greedily up to ``max_chars``; only a paragraph longer than that is
    cut, at sentence ends (a fixed window is the last resort, for one endless sentence)."""
    pieces: list[str] = []
    for para in paragraphs:
        pieces += [para] if len(para) <= max_chars else _split_long(para, max_chars)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > max_chars:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n{piece}" if current else piece
    if current:
        if chunks and len(current) < MIN_CHARS and len(chunks[-1]) + len(current) <= max_chars * 1.25:
            chunks[-1] = f"{chunks[-1]}\n{current}"
        else:
            chunks.append(current)
    return chunks


def _split_long(paragraph: str, max_chars: int) -> list[str]:
    sentences = re.split(r"(?<=[.!?;])\s+(?=[A-Z0-9(])", paragraph)
    out: list[str] = []
    current = ""
    for sentence in sentences:
        while len(sentence) > max_chars:                    # one endless sentence: cut at a space
            cut = sentence.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if current:
                out.append(current)
                current = ""
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if current and len(current) + 1 + len(sentence) > max_chars:
            out.append(current)
            current = sentence
        else:
            current = f"{current} {sentence}".strip()
    if current:
        out.append(current)
    return out
