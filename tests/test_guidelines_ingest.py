"""Guideline ingestion: Markdown, text, HTML and PDF become passages by the document's own sections."""

from __future__ import annotations

import re
from pathlib import Path

from test_guidelines_support import write_text_pdf

from tools.guidelines import chunk_document, pack_paragraphs, read_document, slug
from tools.guidelines.chunking import MAX_CHARS

MD = """---
id: Statin Note
title: Statins for prevention
source: USPSTF
date: 2022-08
url: https://example.gov/statins
---
# Statins for prevention

Opening summary paragraph.

## Who should take one

Adults 40 to 75 with a risk factor.

- first item of a list
- second item of a list

## Dose

Moderate intensity.

## Dose

A second section with the same heading.
"""


def test_markdown_front_matter_and_sections(tmp_path: Path):
    path = tmp_path / "statins.md"
    path.write_text(MD)
    doc = read_document(path, tmp_path)
    assert (doc.note_id, doc.title, doc.source, doc.date, doc.url) == (
        "statin-note", "Statins for prevention", "USPSTF", "2022-08", "https://example.gov/statins")
    assert [s.heading for s in doc.sections] == ["Summary", "Who should take one", "Dose", "Dose"]
    assert doc.sections[1].paragraphs == ["Adults 40 to 75 with a risk factor.", "- first item of a list",
                                          "- second item of a list"]
    passages = chunk_document(doc)
    assert [p.citation for p in passages] == [
        "Guideline/statin-note#summary", "Guideline/statin-note#who-should-take-one",
        "Guideline/statin-note#dose", "Guideline/statin-note#dose-2"]
    assert all(p.source == "USPSTF" and p.date == "2022-08" and p.url.endswith("/statins") for p in passages)
    # MedRAG-style: the dense side embeds title and section with the text
    assert passages[2].embedding_text() == "Statins for prevention — Dose: Moderate intensity."


def test_markdown_without_front_matter_uses_h1_and_file_name(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "My Note.md"
    path.write_text("# Asthma care\n\nIntro.\n\n## Steps\n\nStep text.\n")
    doc = read_document(path, tmp_path)
    assert doc.note_id == "sub-my-note" and doc.title == "Asthma care" and doc.path == "sub/My Note.md"
    assert [s.heading for s in doc.sections] == ["Summary", "Steps"]


def test_plain_text_headings_underlined_and_all_caps(tmp_path: Path):
    path = tmp_path / "copd.txt"
    path.write_text("---\ntitle: COPD basics\nsource: NHLBI\ndate: 2022-05\n---\nIntro line.\n\n"
                    "Diagnosis\n=========\nSpirometry confirms it.\nSecond line of the same paragraph.\n\n"
                    "Another paragraph.\n\nTREATMENT\nStop smoking.\n")
    doc = read_document(path, tmp_path)
    assert doc.title == "COPD basics" and doc.source == "NHLBI"
    assert [(s.heading, s.paragraphs) for s in doc.sections] == [
        ("Summary", ["Intro line."]),
        ("Diagnosis", ["Spirometry confirms it. Second line of the same paragraph.", "Another paragraph."]),
        ("TREATMENT", ["Stop smoking."])]


def test_html_metadata_blocks_and_headings(tmp_path: Path):
    path = tmp_path / "flu.html"
    path.write_text("""<html><head><title>Flu vaccine</title><meta name="source" content="CDC/ACIP">
        <meta name="date" content="2024-08"><link rel="canonical" href="https://www.cdc.gov/flu"></head>
        <body><nav>Menu Home About</nav><script>var x = 1;</script>
        <h1>Flu vaccine</h1><p>Everyone 6 months and older.</p>
        <h2>Children</h2><ul><li><p>Two doses</p> in the first season</li><li>One dose later</li></ul>
        <h2>Older adults</h2><div><p>High-dose preferred at <b>65+</b>.</p></div></body></html>""")
    doc = read_document(path, tmp_path)
    assert (doc.title, doc.source, doc.date, doc.url) == ("Flu vaccine", "CDC/ACIP", "2024-08", "https://www.cdc.gov/flu")
    assert [(s.heading, s.paragraphs) for s in doc.sections] == [
        ("Summary", ["Everyone 6 months and older."]),
        ("Children", ["Two doses in the first season", "One dose later"]),
        ("Older adults", ["High-dose preferred at 65+."])]
    assert not any("Menu" in p or "var x" in p for s in doc.sections for p in s.paragraphs)


def test_pdf_sections_from_outline_and_caps_headings(tmp_path: Path):
    path = write_text_pdf(tmp_path / "metformin.pdf",
                          ["Metformin is first line.", "", "DOSING", "Start 500 mg with meals.", "Titrate weekly.",
                           "", "Kidney limits", "Contraindicated below eGFR 30."],
                          title="Metformin guide", outline=("Kidney limits",), date="2016-04")
    doc = read_document(path, tmp_path)
    assert (doc.title, doc.source, doc.date) == ("Metformin guide", "Test agency", "2016-04")
    assert [s.heading for s in doc.sections] == ["Summary", "DOSING", "Kidney limits"]
    cites = [p.citation for p in chunk_document(doc)]
    assert cites == ["Guideline/metformin#summary", "Guideline/metformin#dosing", "Guideline/metformin#kidney-limits"]
    assert "Titrate weekly." in chunk_document(doc)[1].text


def test_long_section_splits_at_paragraph_boundaries():
    paras = [f"Paragraph {i} " + "word " * 60 + "end." for i in range(8)]          # ~320 characters each
    chunks = pack_paragraphs(paras)
    assert len(chunks) > 1 and all(len(c) <= MAX_CHARS for c in chunks)
    # no paragraph is cut: every chunk is whole paragraphs, in order
    assert [p for c in chunks for p in c.split("\n")] == paras


def test_one_huge_paragraph_is_cut_at_sentence_ends():
    sentences = [f"Sentence number {i} says something useful about dosing." for i in range(60)]
    chunks = pack_paragraphs([" ".join(sentences)])
    assert len(chunks) > 1 and all(len(c) <= MAX_CHARS for c in chunks)
    assert all(re.search(r"dosing\.$", c) for c in chunks)


def test_slug():
    assert slug("Ages 21 to 29") == "ages-21-to-29"
    assert slug("First hours (SEP-1 bundle)") == "first-hours-sep-1-bundle"
    assert slug("Résumé & ça") == "resume-ca"
