"""The bench harness over a benchmark made up here: run folder, run.json, results flushed per
case, resume after an interruption or a torn last line, refusing a mixed folder, reports,
statistics, compare's paired test, and the CLI's show/compare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli.main import app
from evals.bench.compare import compare_runs, write_compare
from evals.bench.report import load_rows, write_reports
from evals.bench.runner import RunMismatch, RunOptions, effective_concurrency, run_benchmark
from evals.bench.stats import by_category, mcnemar_exact, wilson
from evals.bench.types import BenchCase, CaseContext, CaseResult


class CountingBenchmark:
    """Case i is right when i is even; ``interrupt_at`` raises KeyboardInterrupt there (a Ctrl-C
    mid-case); ``crash_at`` raises a bug there."""
    name = "counting"

    def __init__(self, n: int = 5, interrupt_at: str | None = None, crash_at: str | None = None):
        self.n, self.interrupt_at, self.crash_at = n, interrupt_at, crash_at
        self.ran: list[str] = []

    def cases(self) -> list[BenchCase]:
        return [BenchCase(id=f"c{i}", category="even" if i % 2 == 0 else "odd", data={"i": i}) for i in range(self.n)]

    def run_case(self, case: BenchCase, ctx: CaseContext) -> CaseResult:
        if case.id == self.interrupt_at:
            raise KeyboardInterrupt
        if case.id == self.crash_at:
            raise RuntimeError("a bug in one case")
        self.ran.append(case.id)
        (ctx.trace_dir / f"{case.id}.jsonl").write_text('{"type": "run_header"}\n')
        i = case.data["i"]
        return CaseResult(id=case.id, category=case.category, correct=i % 2 == 0, status="completed", answer=str(i),
                          gold=0, steps=i + 1, model_calls=i + 1, input_tokens=100 * i, output_tokens=10, seconds=0.5)

    def describe(self) -> dict:
        return {"data": {"cases.jsonl": "ab" * 32}, "roles": {"grader": "parity"}}

    def published(self) -> list[dict]:
        return [{"model": "Someone 27B", "score": 55.0, "source": "a paper", "note": "other roles"}]


def run(bench, out: Path, label: str = "scripted", report: bool = False, **kw):
    """Reports (matplotlib) only where a test looks at them: they cost seconds on a busy machine."""
    return run_benchmark(bench, model=None, backend=None, opts=RunOptions(model_label=label, out=out, **kw),
                         report=report)


def test_a_run_writes_results_traces_run_json_and_reports(tmp_path):
    out = tmp_path / "run"
    config = run(CountingBenchmark(), out, seed=7, report=True)
    rows = load_rows(out / "results.jsonl")
    assert [r["id"] for r in rows] == ["c0", "c1", "c2", "c3", "c4"]
    assert [r["correct"] for r in rows] == [True, False, True, False, True]
    assert all(Path(r["trace_path"]).exists() for r in rows)
    saved = json.loads((out / "run.json").read_text())
    assert saved == json.loads(json.dumps(config, default=str))
    assert saved["benchmark"] == "counting" and saved["model"] == "scripted" and saved["seed"] == 7
    assert saved["status"] == "complete" and saved["cases_done"] == 5 and saved["ended"]
    assert saved["data"] == {"cases.jsonl": "ab" * 32} and saved["roles"] == {"agent": "scripted", "grader": "parity"}
    assert saved["prompts"]["planner"] and "python" in saved["versions"] and saved["host"]["cpus"]
    assert saved["model_params"] == {}                   # model=None here; a real model names its weights
    md = (out / "report.md").read_text()
    assert "| overall | 5 | 5 | 3 | 60.0% |" in md
    assert "Someone 27B" in md and "comparable only if" in md and "role: grader | parity" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5
    assert not re.search(r"""(src|href)=["']?https?:""", html), "the report must be self-contained"


def test_an_interrupted_run_keeps_finished_cases_and_resumes_the_rest(tmp_path):
    out = tmp_path / "run"
    first = CountingBenchmark(interrupt_at="c2")
    with pytest.raises(KeyboardInterrupt):
        run(first, out)
    assert first.ran == ["c0", "c1"]
    assert [r["id"] for r in load_rows(out / "results.jsonl")] == ["c0", "c1"]
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    (out / "traces" / "c2.jsonl").write_text('{"stale": true}\n')   # what the killed case left
    second = CountingBenchmark()
    run(second, out)
    assert second.ran == ["c2", "c3", "c4"]                     # finished cases are not redone
    assert [r["id"] for r in load_rows(out / "results.jsonl")] == ["c0", "c1", "c2", "c3", "c4"]
    assert "stale" not in (out / "traces" / "c2.jsonl").read_text()
    saved = json.loads((out / "run.json").read_text())
    assert saved["status"] == "complete" and len(saved["sessions"]) == 2


def test_a_torn_last_line_is_dropped_and_that_case_runs_again(tmp_path):
    out = tmp_path / "run"
    run(CountingBenchmark(n=3), out)
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:2]) + lines[2][:25])   # killed mid-write
    again = CountingBenchmark(n=3)
    run(again, out)
    assert again.ran == ["c2"]
    assert [json.loads(x)["id"] for x in (out / "results.jsonl").read_text().splitlines()] == ["c0", "c1", "c2"]


def test_a_folder_of_another_configuration_is_refused(tmp_path):
    out = tmp_path / "run"
    run(CountingBenchmark(n=2), out)
    with pytest.raises(RunMismatch, match="model"):
        run(CountingBenchmark(n=2), out, label="embedded")


def test_a_case_that_raises_becomes_an_error_row_and_the_run_goes_on(tmp_path):
    out = tmp_path / "run"
    run(CountingBenchmark(n=3, crash_at="c1"), out)
    rows = {r["id"]: r for r in load_rows(out / "results.jsonl")}
    assert rows["c1"]["status"] == "error" and rows["c1"]["correct"] is None and "a bug" in rows["c1"]["error"]
    assert rows["c2"]["status"] == "completed"


def test_limit_and_threads_for_served_models_only(tmp_path):
    assert effective_concurrency("openai:m@http://x/v1", 4) == 4
    assert effective_concurrency("embedded", 4) == 1 and effective_concurrency("scripted:f", 3) == 1
    out = tmp_path / "run"
    config = run(CountingBenchmark(n=6), out, label="openai:m@http://127.0.0.1:9/v1", concurrency=3, limit=4)
    assert config["concurrency_used"] == 3 and config["cases_selected"] == 4
    assert sorted(r["id"] for r in load_rows(out / "results.jsonl")) == ["c0", "c1", "c2", "c3"]


def test_wilson_interval_and_exact_mcnemar():
    lo, hi = wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson(0, 10)[0] == 0.0 and round(wilson(0, 10)[1], 4) == 0.2775
    assert wilson(0, 0) == (0.0, 1.0)
    assert mcnemar_exact(10, 0) == pytest.approx(2 * 0.5 ** 10)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0) and mcnemar_exact(0, 0) == 1.0
    cats = by_category([{"category": "a", "correct": True}, {"category": "a", "correct": None},
                        {"category": "b", "correct": False}])
    assert [(c["category"], c["n"], c["graded"], c["correct"]) for c in cats] == \
        [("a", 2, 1, 1), ("b", 1, 1, 0), ("overall", 3, 2, 1)]
    assert [c["category"] for c in by_category([{"category": k} for k in ("task10", "task2", "task1")])] == \
        ["task1", "task2", "task10", "overall"]


def test_plots_draw_categories_at_0_and_100_percent():
    from evals.bench import plots

    rows = [{"category": "none", "correct": False}] * 3 + [{"category": "all", "correct": True}] * 7
    assert wilson(3, 3)[1] == 1.0 and wilson(0, 3)[0] == 0.0
    assert len(plots.accuracy_by_category(by_category(rows))) > 1000
    assert len(plots.paired_categories(by_category(rows), by_category(rows[:4]), "a", "b")) > 1000


def write_run(folder: Path, model: str, verdicts: dict[str, bool]) -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"benchmark": "hand", "model": model, "strategy": "react",
                                                 "data": {"f": "1"}, "roles": {"patient": "case"}}))
    with open(folder / "results.jsonl", "w") as fh:
        for case_id, ok in verdicts.items():
            fh.write(json.dumps({"id": case_id, "category": case_id[0], "correct": ok, "status": "completed"}) + "\n")
    return folder


def test_compare_pairs_shared_cases_and_tests_them_exactly(tmp_path):
    # 12 shared cases: A right & B wrong on 9, B right & A wrong on 1, both right on 2; one case only in A.
    a = {f"x{i}": i < 11 for i in range(12)} | {"y0": True}
    b = {f"x{i}": i >= 9 for i in range(12)}
    dir_a, dir_b = write_run(tmp_path / "a", "model-a", a), write_run(tmp_path / "b", "model-b", b)
    result = compare_runs(dir_a, dir_b)
    p = result["paired"]
    assert (p["shared"], p["a_only_right"], p["b_only_right"], p["both_right"], p["only_in_a"]) == (12, 9, 1, 2, 1)
    from scipy.stats import binomtest

    assert p["p_value"] == pytest.approx(binomtest(9, 10, 0.5).pvalue) and p["p_value"] < 0.05
    overall = result["table"][-1]
    assert overall["category"] == "overall" and overall["diff"] == pytest.approx(3 / 12 - 12 / 13)
    md, html = write_compare(result, tmp_path / "cmp")
    assert "McNemar exact p" in md.read_text() and "data:image/png;base64," in html.read_text()


def test_cli_show_rerenders_and_compare_prints(tmp_path):
    dir_a = write_run(tmp_path / "a", "model-a", {"x1": True, "x2": False})
    dir_b = write_run(tmp_path / "b", "model-b", {"x1": True, "x2": True})
    runner = CliRunner()
    shown = runner.invoke(app, ["bench", "show", str(dir_a)])
    assert shown.exit_code == 0, shown.output
    assert (dir_a / "report.html").exists() and "overall" in shown.output
    compared = runner.invoke(app, ["bench", "compare", str(dir_a), str(dir_b), "--out", str(tmp_path / "cmp")])
    assert compared.exit_code == 0, compared.output
    assert "+50.0 pt" in compared.output and (tmp_path / "cmp" / "compare.html").exists()
    missing = runner.invoke(app, ["bench", "show", str(tmp_path / "nothing")])
    assert missing.exit_code == 1


def test_reports_render_from_the_files_alone(tmp_path):
    out = tmp_path / "run"
    run(CountingBenchmark(n=2), out)            # report=False: no report yet
    assert not (out / "report.html").exists()
    md, html = write_reports(out)
    assert "| c1 | odd | no | completed |" in md.read_text() and "<table" in html.read_text()


KILLABLE = '''
import sys, time
from pathlib import Path
from evals.bench.runner import RunOptions, run_benchmark
from evals.bench.types import BenchCase, CaseResult

class Slow:
    name = "slow"
    def cases(self):
        return [BenchCase(id=f"s{i}", category="x") for i in range(6)]
    def run_case(self, case, ctx):
        time.sleep(float(sys.argv[2]))
        return CaseResult(id=case.id, category="x", correct=True, status="completed")
    def describe(self):
        return {}
    def published(self):
        return []

run_benchmark(Slow(), model=None, backend=None, report=False,
              opts=RunOptions(model_label="scripted", out=Path(sys.argv[1])))
'''


def test_a_killed_process_keeps_its_cases_and_the_same_command_finishes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    results = out / "results.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), str(out), "0.4"], cwd=Path(__file__).parents[1])
    deadline = time.time() + 120
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    kept = [json.loads(x)["id"] for x in results.read_text().splitlines()]
    assert 2 <= len(kept) < 6
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    done = subprocess.run([sys.executable, str(script), str(out), "0"], cwd=Path(__file__).parents[1], timeout=120)
    assert done.returncode == 0
    ids = [json.loads(x)["id"] for x in results.read_text().splitlines()]
    assert ids[: len(kept)] == kept and sorted(ids) == [f"s{i}" for i in range(6)]   # nothing redone
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
