"""Two run folders side by side: per-category accuracy and its difference, and an exact
McNemar test on the cases both runs finished (paired by case id). Writes compare.md and a
self-contained compare.html; the CLI prints the same table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from . import plots
from .report import html_table, img, load_run, md_table, page, pct
from .stats import by_category, paired

NOTE = ("p: exact two-sided McNemar test (scipy.stats.binomtest on the discordant pairs) over the shared cases. "
        "Per-category differences are over each run's own cases; only the paired test controls for case mix.")


def label(config: dict[str, Any], run_dir: Path) -> str:
    return f"{config.get('model', '?')} · {config.get('strategy', '?')} ({Path(run_dir).name})"


def compare_runs(dir_a: Path, dir_b: Path) -> dict[str, Any]:
    conf_a, rows_a = load_run(dir_a)
    conf_b, rows_b = load_run(dir_b)
    cats_a, cats_b = by_category(rows_a), by_category(rows_b)
    a = {c["category"]: c for c in cats_a}
    b = {c["category"]: c for c in cats_b}
    table = []
    for name in dict.fromkeys([*a, *b]):
        ra, rb = a.get(name), b.get(name)
        table.append({"category": name, "n_a": ra["n"] if ra else 0, "acc_a": ra["accuracy"] if ra else None,
                      "n_b": rb["n"] if rb else 0, "acc_b": rb["accuracy"] if rb else None,
                      "diff": (rb["accuracy"] - ra["accuracy"]) if ra and rb else None})
    for row in table:  # keep "overall" last
        if row["category"] == "overall":
            table.remove(row)
            table.append(row)
            break
    warnings = []
    if conf_a.get("benchmark") != conf_b.get("benchmark"):
        warnings.append(f"different benchmarks: {conf_a.get('benchmark')} vs {conf_b.get('benchmark')}")
    if conf_a.get("data") != conf_b.get("data"):
        warnings.append("the data files differ (sha256): the runs did not see the same cases")
    roles_a, roles_b = conf_a.get("roles") or {}, conf_b.get("roles") or {}
    for role in sorted((roles_a.keys() | roles_b.keys()) - {"agent", "doctor"}):
        if roles_a.get(role) != roles_b.get(role):
            warnings.append(f"role {role} differs: {roles_a.get(role)} vs {roles_b.get(role)}")
    return {"a": {"dir": str(dir_a), "label": label(conf_a, dir_a), "config": conf_a, "categories": cats_a},
            "b": {"dir": str(dir_b), "label": label(conf_b, dir_b), "config": conf_b, "categories": cats_b},
            "table": table, "paired": paired(rows_a, rows_b), "warnings": warnings}


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:+.1f} pt" if signed else pct(x)


def rows_for_table(result: dict[str, Any]) -> list[list[str]]:
    return [[r["category"], str(r["n_a"]), _fmt(r["acc_a"]), str(r["n_b"]), _fmt(r["acc_b"]), _fmt(r["diff"], True)]
            for r in result["table"]]


def paired_rows(p: dict[str, Any]) -> list[list[str]]:
    return [["shared cases", str(p["shared"])], ["A right, B wrong", str(p["a_only_right"])],
            ["A wrong, B right", str(p["b_only_right"])], ["both right", str(p["both_right"])],
            ["both wrong", str(p["both_wrong"])], ["accuracy on shared (A / B)",
                                                   f"{pct(p['a_accuracy'])} / {pct(p['b_accuracy'])}"],
            ["McNemar exact p", f"{p['p_value']:.4g}"], ["only in A / only in B", f"{p['only_in_a']} / {p['only_in_b']}"]]


HEADER = ["category", "n A", "accuracy A", "n B", "accuracy B", "B - A"]


def write_compare(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    a, b = result["a"], result["b"]
    title = f"compare: A = {a['label']} vs B = {b['label']}"
    warn_md = "".join(f"> warning: {w}\n" for w in result["warnings"])
    md = (f"# {title}\n\nA: `{a['dir']}`  \nB: `{b['dir']}`\n\n{warn_md}\n## Accuracy by category\n\n"
          + md_table(HEADER, rows_for_table(result))
          + "\n## Paired test on shared cases\n\n" + md_table(["", "value"], paired_rows(result["paired"]))
          + f"\n_{NOTE}_\n")
    plot = plots.paired_categories(a["categories"], b["categories"], "A: " + a["label"], "B: " + b["label"])
    warn_html = "".join(f'<p class="caveat">warning: {html.escape(w)}</p>' for w in result["warnings"])
    body = (f"<p>A: <code>{html.escape(a['dir'])}</code><br>B: <code>{html.escape(b['dir'])}</code></p>{warn_html}"
            f"<h2>Accuracy by category</h2><div class=\"plots\">{img(plot, 'accuracy by category, A and B')}</div>"
            + html_table(HEADER, rows_for_table(result), "compare")
            + "<h2>Paired test on shared cases</h2>" + html_table(["", "value"], paired_rows(result["paired"]), "paired")
            + f'<p class="muted">{html.escape(NOTE)}</p>')
    md_path, html_path = out_dir / "compare.md", out_dir / "compare.html"
    md_path.write_text(md, encoding="utf-8")
    html_path.write_text(page(title, body), encoding="utf-8")
    return md_path, html_path


def default_compare_dir(dir_a: Path, dir_b: Path) -> Path:
    return Path(dir_b).parent / f"compare-{Path(dir_a).name}-vs-{Path(dir_b).name}"
