"""The guideline index on disk (incremental re-index), ranking and fusion, the tool, the starter corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_guidelines_support import HashEmbedder

from tools.guidelines import (CORPUS_DIR, GuidelineIndex, GuidelineRetriever, GuidelineTools, read_document,
                              reciprocal_rank_fusion)
from tools.guidelines.lexical import tokenize

ROOT = Path(__file__).resolve().parents[1]


def _note(folder: Path, name: str, title: str, sections: dict[str, str]) -> Path:
    body = "".join(f"## {h}\n\n{t}\n\n" for h, t in sections.items())
    path = folder / name
    path.write_text(f"---\ntitle: {title}\nsource: Test agency\ndate: 2024-01\nurl: https://example.gov/{name}\n---\n"
                    f"# {title}\n\n{body}")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    _note(folder, "zoster.md", "Shingles vaccine", {"Who": "Adults 50 and older get two doses of recombinant zoster vaccine.",
                                                    "Timing": "The second dose follows 2 to 6 months after the first."})
    _note(folder, "lung.md", "Lung cancer screening", {"Eligible": "Annual low-dose CT for ages 50 to 80 with 20 pack-years."})
    _note(folder, "a1c.md", "HbA1c goals", {"Goal": "Below 7 percent for many adults with diabetes.",
                                            "Interval": "Test twice a year when stable, quarterly after a change."})
    return folder


def test_index_round_trip(corpus: Path, tmp_path: Path):
    built, report = GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())
    assert sorted(report.added) == ["a1c.md", "lung.md", "zoster.md"] and report.embedded == len(built) == 5
    loaded = GuidelineIndex.load(tmp_path / "idx")
    assert [p.citation for p in loaded.passages] == [p.citation for p in built.passages]
    assert loaded.embedder_name == "hash-embedder-64" and loaded.dim == 64 and loaded.dense.ntotal == 5
    meta = json.loads((tmp_path / "idx" / "meta.json").read_text())
    assert set(meta["files"]) == {"a1c.md", "lung.md", "zoster.md"} and all(len(f["sha256"]) == 64 for f in meta["files"].values())
    np.testing.assert_allclose(np.linalg.norm(loaded.vectors(), axis=1), 1.0, rtol=1e-5)


def test_reindex_embeds_only_changed_files(corpus: Path, tmp_path: Path):
    first = HashEmbedder()
    before, _ = GuidelineIndex.build(corpus, tmp_path / "idx", first)
    kept_vectors = {p.key: v for p, v in zip(before.passages, before.vectors()) if p.note_id == "zoster"}

    untouched = HashEmbedder()
    _, report = GuidelineIndex.build(corpus, tmp_path / "idx", untouched)
    assert untouched.calls == [] and not report.updated and len(report.unchanged) == 3

    _note(corpus, "a1c.md", "HbA1c goals", {"Goal": "Below 8 percent for frail older adults."})        # changed
    (corpus / "lung.md").unlink()                                                                        # removed
    _note(corpus, "sepsis.md", "Sepsis", {"Signs": "Confusion, fast breathing, low blood pressure."})   # added
    second = HashEmbedder()
    after, report = GuidelineIndex.build(corpus, tmp_path / "idx", second)
    assert (report.added, report.changed, report.removed, report.unchanged) == (
        ["sepsis.md"], ["a1c.md"], ["lung.md"], ["zoster.md"])
    assert report.embedded == 2 and len(second.calls) == 2
    assert all("Shingles" not in text for text in second.calls)                 # the unchanged note was not embedded
    assert {p.note_id for p in after.passages} == {"a1c", "sepsis", "zoster"}
    reloaded = GuidelineIndex.load(tmp_path / "idx")
    for p, v in zip(reloaded.passages, reloaded.vectors()):
        if p.note_id == "zoster":
            np.testing.assert_array_equal(v, kept_vectors[p.key])              # carried over, not recomputed
    hits = GuidelineRetriever(reloaded, HashEmbedder()).search("frail older adults HbA1c", 1)
    assert hits[0].passage.citation == "Guideline/a1c#goal" and "Below 8 percent" in hits[0].passage.text


def test_other_embedder_reembeds_everything_and_query_embedder_must_match(corpus: Path, tmp_path: Path):
    GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())

    class Other(HashEmbedder):
        name = "other-embedder"

    other = Other()
    index, report = GuidelineIndex.build(corpus, tmp_path / "idx", other)
    assert report.embedded == len(index) == len(other.calls) == 5
    with pytest.raises(ValueError, match="re-index"):
        GuidelineRetriever(index, HashEmbedder())


def test_unreadable_file_is_skipped_not_fatal(corpus: Path, tmp_path: Path):
    (corpus / "broken.pdf").write_bytes(b"not a pdf at all")
    index, report = GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())
    assert "broken.pdf" in report.skipped and len(index) == 5


def test_reciprocal_rank_fusion_arithmetic():
    fused = reciprocal_rank_fusion({"bm25": [3, 1, 2], "dense": [1, 4]}, k=60)
    rows = [r for r, _, _ in fused]
    assert rows == [1, 3, 4, 2]                           # 1 is found by both sides
    scores = {r: s for r, s, _ in fused}
    assert scores[1] == pytest.approx(1 / 62 + 1 / 61)
    assert scores[3] == pytest.approx(1 / 61) and scores[4] == pytest.approx(1 / 62)
    assert dict((r, ranks) for r, _, ranks in fused)[1] == {"bm25": 2, "dense": 1}


def test_modes_rank_and_fused_combines_both(corpus: Path, tmp_path: Path):
    index, _ = GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())
    retriever = GuidelineRetriever(index, HashEmbedder())
    for mode in ("bm25", "dense", "fused"):
        hits = retriever.search("when is the second shingles dose given", 2, mode=mode)
        assert hits and hits[0].passage.note_id == "zoster", mode
    fused = retriever.search("second dose of zoster vaccine", 3)
    assert set(fused[0].ranks) == {"bm25", "dense"}
    assert retriever.search("   ", 5) == [] and retriever.search("zzzz qqqq", 5, mode="bm25") == []


def test_tokenizer_meets_clinical_spellings():
    assert tokenize("A1C") == tokenize("HbA1c") == ["hba1c"]
    assert tokenize("vaccines")[0] == tokenize("vaccination")[0] == tokenize("vaccinated")[0]
    assert "cha2ds2" in tokenize("CHA2DS2-VASc score") and "influenza" in tokenize("flu shot")


def test_search_guidelines_tool_cites_sections(corpus: Path, tmp_path: Path):
    index, _ = GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())
    tools = GuidelineTools(retriever=GuidelineRetriever(index, HashEmbedder()))
    result = tools.search_guidelines("HbA1c goal for adults with diabetes", k=2)
    assert result.ok and result.ids and len(result.ids) <= 2
    assert all(re.fullmatch(r"Guideline/[a-z0-9-]+#[a-z0-9-]+", i) for i in result.ids)
    assert result.ids[0] == "Guideline/a1c#goal"
    assert "Guideline/a1c#goal | HbA1c goals | Goal | Test agency; 2024-01" in result.text
    assert "Below 7 percent" in result.text and len(result.resources) == 2
    assert {i for i in result.ids} <= {p.citation for p in index.passages}
    assert tools.describe("Guideline/a1c#goal") == (
        "Guideline/a1c#goal: HbA1c goals — Goal (Test agency, 2024-01) https://example.gov/a1c.md")
    assert tools.describe("Guideline/a1c#nothing") is None


def test_search_guidelines_failures_are_results(tmp_path: Path, corpus: Path):
    index, _ = GuidelineIndex.build(corpus, tmp_path / "idx", HashEmbedder())
    tools = GuidelineTools(retriever=GuidelineRetriever(index, HashEmbedder()))
    assert tools.search_guidelines("  ").error and tools.search_guidelines("flu", k="many").error  # type: ignore[arg-type]
    assert len(tools.search_guidelines("vaccine dose", k=99).resources) <= 10
    missing = GuidelineTools(index_path=tmp_path / "nowhere").search_guidelines("statins")
    assert missing.error and "no guideline index" in missing.error and missing.ids == []


def test_tool_schema_for_the_agent_registry():
    from agent.protocol.schema import tool_schemas
    from tools.guidelines import guideline_tools

    [schema] = tool_schemas(guideline_tools())            # nothing loads until the first call
    assert schema["name"] == "search_guidelines" and "Guideline/<note>#<section>" in schema["description"]
    assert schema["parameters"]["required"] == ["query"]
    assert schema["parameters"]["properties"]["k"] == {"type": "integer", "default": 5}


def test_starter_corpus_has_40_sourced_notes():
    notes = [read_document(p, CORPUS_DIR) for p in sorted(CORPUS_DIR.glob("*.md"))]
    assert len(notes) >= 40 and len({n.note_id for n in notes}) == len(notes)
    for note in notes:
        assert note.source and note.url.startswith("https://") and re.fullmatch(r"\d{4}-\d{2}", note.date), note.path
        # US federal works only (the USPSTF is convened by AHRQ; its site is .org)
        assert re.match(r"https://([a-z.]+\.gov|www\.uspreventiveservicestaskforce\.org)/", note.url), note.url
        assert re.search(r"\b(USPSTF|CDC|ACIP|NIH|NIDDK|NHLBI|AHRQ|FDA|HHS|CMS)\b", note.source), note.source
        assert not re.search(r"\b(NICE|WHO|ADA)\b", note.source), note.source
        assert len(note.sections) >= 3 and "Starter-corpus summary" in note.sections[0].paragraphs[0], note.path


def test_guideline_questions_label_existing_notes():
    ids = {read_document(p, CORPUS_DIR).note_id for p in CORPUS_DIR.glob("*.md")}
    rows = [json.loads(line) for line in (ROOT / "evals" / "data" / "guideline_questions.jsonl").read_text().splitlines()]
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert {r["note"] for r in rows} <= ids


def test_starter_corpus_ships_in_the_wheel():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "tools" in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert CORPUS_DIR == ROOT / "tools" / "guidelines" / "corpus"
