"""A run folder's report, from ``run.json`` and ``results.jsonl`` alone: ``report.md`` and a
self-contained ``report.html`` (inline CSS, plots as base64 PNG). ``medagent bench show``
re-renders it; the runner writes it at the end of every session."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from . import plots
from .stats import summarise

CAVEAT = ("Published figures come from their authors' runs, not ours: comparable only if the same cases, "
          "the same roles played by the same models, the same turn limits and the same grading were used.")
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}tr.total td{font-weight:bold}
.caveat{background:#fff7e6;border-left:4px solid #e0a030;padding:.5em 1em}.muted{color:#777}
.plots{display:flex;flex-wrap:wrap;gap:1em}img.plot{max-width:100%;border:1px solid #eee}
td.ok{color:#1d6e2f}td.bad{color:#b03a2e}code{font-size:12px}"""


def load_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a results.jsonl; a torn last line (a run killed mid-write) is skipped."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "id" in row:
            rows.append(row)
    latest = {r["id"]: r for r in rows}     # a case written twice: the last write wins
    return list(latest.values())


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run_dir = Path(run_dir)
    if not (run_dir / "results.jsonl").exists():
        raise FileNotFoundError(f"{run_dir} has no results.jsonl (not a bench run folder)")
    config = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    return config, load_rows(run_dir / "results.jsonl")


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def short(text: Any, n: int = 140) -> str:
    text = "" if text is None else (text if isinstance(text, str) else json.dumps(text, ensure_ascii=False))
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def sections(config: dict[str, Any], rows: list[dict[str, Any]]) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) for each table: markdown and HTML render the same tables."""
    s = summarise(rows)
    out: list[tuple[str, list[str], list[list[str]], str]] = []
    params = ", ".join(f"{k}={v}" for k, v in (config.get("model_params") or {}).items())
    conf = [["benchmark", str(config.get("benchmark", "?"))],
            ["model", str(config.get("model", "?")) + (f" ({params})" if params else "")],
            ["strategy", str(config.get("strategy", "?"))], ["seed", str(config.get("seed"))],
            ["cases", f"{len(rows)} done of {config.get('cases_selected', '?')} selected (limit {config.get('limit')})"],
            ["status", str(config.get("status", "?"))],
            ["started / ended", f"{config.get('started', '?')} / {config.get('ended', '?')}"],
            ["sessions", str(len(config.get("sessions") or []))],
            ["concurrency", f"{config.get('concurrency_used', '?')} (asked {config.get('concurrency', '?')})"]]
    conf += [[f"role: {k}", str(v)] for k, v in (config.get("roles") or {}).items()]
    conf += [[f"data: {k}", f"sha256 {str(v)[:16]}…" if isinstance(v, str) and len(v) == 64 else short(v, 200)]
             for k, v in (config.get("data") or {}).items()]
    conf += [[f"prompt: {k}", str(v)[:16] + "…"] for k, v in (config.get("prompts") or {}).items()]
    conf += [["versions", ", ".join(f"{k} {v}" for k, v in (config.get("versions") or {}).items())],
             ["host", short(config.get("host"), 200)]]
    out.append(("Configuration", ["setting", "value"], conf, "Every role's backend is listed: a number is "
                "only comparable to another run's when the roles match."))
    out.append(("Accuracy by category", ["category", "n", "graded", "correct", "accuracy", "Wilson 95% CI"],
                [[c["category"], str(c["n"]), str(c["graded"]), str(c["correct"]), pct(c["accuracy"]),
                  f"{pct(c['ci_low'])} – {pct(c['ci_high'])}"] for c in s["categories"]],
                "Accuracy counts every selected, finished case; an ungraded case (error, bad case) counts as wrong."))
    published = config.get("published") or []
    overall = s["categories"][-1]
    out.append(("Published figures beside ours", ["model", "score", "source", "note"],
                [[f"ours: {config.get('model')}", pct(overall["accuracy"]), "this run", f"n={overall['n']}"]]
                + [[str(p.get("model")), f"{p.get('score')}%", str(p.get("source", "")), str(p.get("note", ""))]
                   for p in published], (config.get("describe") or {}).get("comparability") or CAVEAT))
    if s["decided_by"]:
        judges = [[k, str(v)] for k, v in s["decided_by"].items()]
        if s["judges"]:
            judges += [[f"judges: {k}", str(v)] for k, v in s["judges"].items()]
        out.append(("What decided each verdict", ["decided by", "cases"], judges,
                    "Both verdicts are recorded per case (details.llm_judge, details.string_match)." if s["judges"]
                    else "As the benchmark's grader recorded it (details.decided_by)."))
    out.append(("Statuses", ["status", "cases"], [[k, str(v)] for k, v in s["statuses"].items()], ""))
    out.append(("Per case", ["measure", "mean", "median", "p90", "max", "total"],
                [[k, *(f"{d[m]:,.1f}" if k == "seconds" else f"{d[m]:,.0f}" if m == "total" else f"{d[m]:,.1f}"
                       for m in ("mean", "median", "p90", "max", "total"))] for k, d in s["per_case"].items()], ""))
    out.append(("Cases", ["id", "category", "correct", "status", "answer", "gold", "steps", "tokens", "s", "note"],
                [[str(r["id"]), str(r.get("category")), {True: "yes", False: "no"}.get(r.get("correct"), "–"),
                  str(r.get("status")), short(r.get("answer")), short(r.get("gold"), 80), str(r.get("steps", 0)),
                  f"{(r.get('input_tokens') or 0) + (r.get('output_tokens') or 0):,}", f"{r.get('seconds') or 0:.1f}",
                  short(r.get("error") or (r.get("details") or {}).get("decided_by") or "", 80)]
                 for r in rows], "Each case's trace: traces/<id>.jsonl (medagent trace show FILE)."))
    return out


def title_of(config: dict[str, Any]) -> str:
    return f"{config.get('benchmark', 'bench')} · {config.get('model', '?')} · {config.get('strategy', '?')}"


def markdown(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    parts = [f"# {title_of(config)}\n"]
    for title, header, body, note in sections(config, rows):
        parts.append(f"## {title}\n")
        parts.append(md_table(header, body))
        if note:
            parts.append(f"\n_{note}_\n")
    return "\n".join(parts) + "\n"


def md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    def cell(x: str) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def html_table(header: Sequence[str], body: Iterable[Sequence[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = []
    for row in body:
        cls = ' class="total"' if row and row[0] in ("overall",) else ""
        tds = "".join(f'<td class="{_cell_class(c)}">{html.escape(str(c))}</td>' for c in row)
        trs.append(f"<tr{cls}>{tds}</tr>")
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table>'


def _cell_class(value: str) -> str:
    value = str(value)
    if value in ("yes",):
        return "ok"
    if value in ("no",):
        return "bad"
    return "num" if value.replace(",", "").replace(".", "").replace("%", "").strip().isdigit() else ""


def img(data: str, alt: str) -> str:
    return f'<img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def html_report(config: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    s = summarise(rows)
    figures = {
        "Accuracy by category": [img(plots.accuracy_by_category(s["categories"], config.get("published") or []),
                                     "accuracy by category with Wilson 95% intervals")],
        "Statuses": [img(plots.status_counts(s["statuses"]), "status counts")],
        "Per case": [img(plots.steps_vs_tokens(rows), "steps and tokens per case"),
                     img(plots.histogram([r.get("seconds") or 0 for r in rows], "seconds per case"), "latency"),
                     img(plots.histogram([r.get("steps") or 0 for r in rows], "steps per case"), "steps per case")],
    }
    body = []
    for title, header, table_rows, note in sections(config, rows):
        body.append(f"<h2>{html.escape(title)}</h2>")
        if title in figures:
            body.append(f'<div class="plots">{"".join(figures[title])}</div>')
        body.append(html_table(header, table_rows, css_class=title.lower().replace(" ", "-")))
        if note:
            css = "caveat" if title.startswith("Published") else "muted"
            body.append(f'<p class="{css}">{html.escape(note)}</p>')
    return page(title_of(config), "".join(body))


def write_reports(run_dir: Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    config, rows = load_run(run_dir)
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    md_path.write_text(markdown(config, rows), encoding="utf-8")
    html_path.write_text(html_report(config, rows), encoding="utf-8")
    return md_path, html_path
