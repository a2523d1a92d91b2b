"""The HTML reports opened in a real headless browser (Debian's chromium driven by Playwright):
their tables show, their plots decode and have a size, nothing is fetched from elsewhere.
Skips cleanly where chromium or Playwright is absent (.ci/run installs chromium)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evals.bench.compare import compare_runs, write_compare
from evals.bench.report import write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def make_run(folder: Path, model: str, right: set[int]) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({
        "benchmark": "agentclinic", "model": model, "strategy": "doctor", "seed": 0, "status": "complete",
        "roles": {"doctor": model, "patient": "case", "measurement": "deterministic"},
        "published": [{"model": "MedGemma 27B", "score": 56.2, "source": "report", "note": "GPT-4o roles"}]}))
    rows = [{"id": f"case-{i}", "category": "cardio" if i % 2 else "neuro", "correct": i in right,
             "status": "completed" if i != 5 else "max_steps", "answer": f"diagnosis {i}", "gold": "x",
             "steps": i + 1, "input_tokens": 300 * i, "output_tokens": 20, "seconds": 1.5 * i,
             "details": {"decided_by": "string_match", "string_match": i in right, "llm_judge": None}}
            for i in range(8)]
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def open_page(browser, path: Path):
    page = browser.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, outside


def plot_sizes(page) -> list[list[int]]:
    return page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => [i.complete ? 1 : 0, i.naturalWidth, i.naturalHeight])")


def test_run_report_shows_tables_and_plots(browser, tmp_path):
    run = make_run(tmp_path / "a", "embedded", {0, 1, 2, 4})
    _, html = write_reports(run)
    page, outside = open_page(browser, html)
    assert page.title() == "agentclinic · embedded · doctor"
    headings = page.locator("h2").all_inner_texts()
    assert {"Configuration", "Accuracy by category", "Published figures beside ours", "Statuses", "Per case",
            "Cases"} <= set(headings)
    assert page.locator("table").count() >= 6
    accuracy = page.locator("table.accuracy-by-category")
    assert "Wilson 95% CI" in accuracy.locator("th").all_inner_texts()
    overall = accuracy.locator("tr.total td").all_inner_texts()
    assert overall[:5] == ["overall", "8", "8", "4", "50.0%"]
    assert page.locator("table.cases tbody tr").count() == 8
    assert "comparable only if" in page.locator("p.caveat").inner_text()
    sizes = plot_sizes(page)
    assert len(sizes) >= 5 and all(ok == 1 and w > 100 and h > 50 for ok, w, h in sizes), sizes
    assert page.locator("img.plot").first.bounding_box()["width"] > 100     # laid out, not just decoded
    assert outside == []
    page.close()


def test_compare_report_shows_its_tables_and_plot(browser, tmp_path):
    a = make_run(tmp_path / "a", "model-a", {0, 1, 2, 3, 4, 5})
    b = make_run(tmp_path / "b", "model-b", {0, 1})
    _, html = write_compare(compare_runs(a, b), tmp_path / "cmp")
    page, outside = open_page(browser, html)
    assert page.locator("table.compare tr.total td").all_inner_texts()[-1] == "-50.0 pt"
    assert "McNemar exact p" in page.locator("table.paired").inner_text()
    sizes = plot_sizes(page)
    assert len(sizes) == 1 and sizes[0][1] > 100
    assert outside == []
    page.close()
