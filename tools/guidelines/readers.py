"""Guideline files -> ``Document``: metadata plus the document's own sections and paragraphs.

Markdown and plain text may open with front matter between ``---`` lines (``key: value``; the
keys used are id, title, source, date, url). HTML takes its metadata from ``<title>``,
``<meta name=...>`` and ``<link rel="canonical">``; PDF from its info dictionary. Sections come
from the document's headings (Markdown ``#``, underlined or all-caps lines in text, ``<h1>``-
``<h6>`` in HTML, the outline or heading-like lines in PDF); paragraphs from blank lines or
block elements, so a passage never starts mid-sentence because of a fixed window.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
            ".html": "html", ".htm": "html", ".pdf": "pdf"}
INTRO = "Summary"       # the section name for text that comes before the first heading
META_KEYS = ("id", "title", "source", "date", "url")


@dataclass
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)


@dataclass
class Document:
    note_id: str
    title: str
    path: str                       # relative to the indexed folder
    source: str = ""
    date: str = ""
    url: str = ""
    sections: list[Section] = field(default_factory=list)


def slug(text: str) -> str:
    """'A1C goals & testing' -> 'a1c-goals-testing' (ASCII, lower case, hyphens)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def read_document(path: Path, root: Path | None = None) -> Document:
    """Read one guideline file; raises ValueError for a type it cannot read."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path.name}: not a guideline file type ({', '.join(sorted(SUFFIXES))})")
    rel = path.relative_to(root).as_posix() if root else path.name
    if kind == "pdf":
        meta, sections = _read_pdf(path)
    else:
        raw = path.read_text(encoding="utf-8", errors="replace")
        if kind == "html":
            meta, sections = _read_html(raw)
        else:
            meta, body = split_front_matter(raw)
            sections = _markdown_sections(body) if kind == "markdown" else _text_sections(body.splitlines())
    sections = [s for s in sections if s.paragraphs]
    title = meta.get("title") or _title_from(sections) or path.stem.replace("_", " ").replace("-", " ")
    for section in sections:             # text under a heading that repeats the title is its summary
        if section.heading == title:
            section.heading = INTRO
    note_id = slug(meta.get("id") or str(Path(rel).with_suffix("")).replace("/", "-"))
    return Document(note_id=note_id, title=title, path=rel, source=meta.get("source", ""),
                    date=str(meta.get("date", "")), url=meta.get("url", ""), sections=sections)


# -- front matter -------------------------------------------------------------------------------

def split_front_matter(raw: str) -> tuple[dict[str, str], str]:
    """``---\\nkey: value\\n---\\nbody`` -> ({key: value}, body); no front matter -> ({}, raw)."""
    lines = raw.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, raw
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            meta = {}
            for line in lines[1:end]:
                key, sep, value = line.partition(":")
                if sep and key.strip():
                    meta[key.strip().lower()] = value.strip().strip('"').strip("'")
            return meta, "\n".join(lines[end + 1:])
    return {}, raw


# -- Markdown and plain text ----------------------------------------------------------------------

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^\s*(=+|-+)\s*$")


def _markdown_sections(body: str) -> list[Section]:
    sections: list[Section] = [Section(INTRO)]
    para: list[str] = []
    in_fence = False

    def flush() -> None:
        text = " ".join(x.strip() for x in para).strip()
        if text:
            sections[-1].paragraphs.append(text)
        para.clear()

    for line in body.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        match = None if in_fence else _MD_HEADING.match(line)
        if match:
            flush()
            sections.append(Section(_strip_inline(match.group(2))))
        elif not line.strip():
            flush()
        elif re.match(r"^\s*([-*+]|\d+[.)])\s+", line) and para:
            flush()                        # each list item is its own paragraph
            para.append(_strip_inline(line))
        else:
            para.append(_strip_inline(line))
    flush()
    return sections


def _strip_inline(text: str) -> str:
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)       # [label](url) -> label
    return re.sub(r"(\*\*|__|`)", "", text)


def _is_text_heading(line: str, next_line: str) -> bool:
    stripped = line.strip()
    if not stripped or len(stripped) > 80:
        return False
    if _UNDERLINE.match(next_line) and not _UNDERLINE.match(line):
        return True
    letters = [c for c in stripped if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters) and not stripped.endswith(".")


def _text_sections(lines: list[str], headings: set[str] | None = None) -> list[Section]:
    """Plain text (and PDF text): headings are underlined lines, ALL-CAPS lines or, for PDF, the
    outline's titles; paragraphs end at blank lines."""
    sections: list[Section] = [Section(INTRO)]
    para: list[str] = []
    known = {_norm(h) for h in headings or ()}

    def flush() -> None:
        text = " ".join(x.strip() for x in para).strip()
        if text:
            sections[-1].paragraphs.append(text)
        para.clear()

    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if _UNDERLINE.match(line) and i > 0 and sections[-1].heading == lines[i - 1].strip():
            continue                                    # the underline of the heading just seen
        if _norm(line) in known or _is_text_heading(line, nxt):
            flush()
            sections.append(Section(line.strip().rstrip(":")))
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    return sections


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _title_from(sections: list[Section]) -> str:
    return sections[0].heading if sections and sections[0].heading != INTRO else ""


# -- HTML ------------------------------------------------------------------------------------------

_BLOCKS = {"p", "li", "pre", "blockquote", "dd", "dt", "td", "th", "figcaption"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


def _read_html(raw: str) -> tuple[dict[str, str], list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "noscript"]):
        tag.decompose()
    meta: dict[str, str] = {}
    if soup.title and soup.title.get_text(strip=True):
        meta["title"] = soup.title.get_text(" ", strip=True)
    for tag in soup.find_all("meta"):
        name = (tag.get("name") or tag.get("property") or "").lower().removeprefix("dc.").removeprefix("og:")
        key = {"source": "source", "publisher": "source", "author": "source", "date": "date",
               "dcterms.modified": "date", "url": "url", "id": "id"}.get(name)
        if key and tag.get("content") and key not in meta:
            meta[key] = tag["content"].strip()
    canonical = soup.find("link", rel="canonical")
    if canonical and canonical.get("href"):
        meta.setdefault("url", canonical["href"])
    sections: list[Section] = [Section(INTRO)]
    body = soup.body or soup
    for tag in body.find_all(list(_BLOCKS | _HEADINGS)):
        if tag.name in _HEADINGS:
            sections.append(Section(tag.get_text(" ", strip=True)))
        elif not any(parent.name in _BLOCKS for parent in tag.parents):   # outermost block only
            text = re.sub(r"\s+([.,;:!?)])", r"\1", " ".join(tag.get_text(" ", strip=True).split()))
            if text:
                sections[-1].paragraphs.append(text)
    h1 = body.find("h1")
    if h1 and "title" not in meta:
        meta["title"] = h1.get_text(" ", strip=True)
    return meta, sections


# -- PDF -------------------------------------------------------------------------------------------

def _read_pdf(path: Path) -> tuple[dict[str, str], list[Section]]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    info = reader.metadata or {}
    # custom /Source, /Date, /URL entries first (what our own tooling writes), then the standard ones
    meta = {k: next((str(info[n]).strip() for n in names if info.get(n)), "") for k, names in
            (("title", ("/Title",)), ("source", ("/Source", "/Author")), ("url", ("/URL",)), ("date", ("/Date",)))}
    meta = {k: v for k, v in meta.items() if v}
    created = str(info.get("/CreationDate") or "")
    if "date" not in meta and re.match(r"^D:\d{8}", created):
        meta["date"] = f"{created[2:6]}-{created[6:8]}-{created[8:10]}"
    lines: list[str] = []
    for page in reader.pages:
        lines += (page.extract_text() or "").splitlines() + [""]
    return meta, _text_sections(lines, set(_outline_titles(reader.outline)))


def _outline_titles(outline) -> list[str]:
    titles: list[str] = []
    for item in outline or []:
        if isinstance(item, list):
            titles += _outline_titles(item)
        elif getattr(item, "title", None):
            titles.append(str(item.title))
    return titles
