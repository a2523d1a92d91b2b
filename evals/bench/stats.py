"""Numbers a report shows: accuracy by category with Wilson intervals, statuses, per-case
distributions, and the exact McNemar test on paired cases. Pure functions over result rows
(the dicts of ``results.jsonl``), so ``show`` and ``compare`` need nothing but the files."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from typing import Any, Iterable, Mapping

Row = Mapping[str, Any]
Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion: sane at 0/n, n/n and small n (unlike the normal one)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if correct == 0 else max(0.0, centre - half)     # exact at the ends, no rounding past them
    high = 1.0 if correct == n else min(1.0, centre + half)
    return (low, high)


def accuracy_row(label: str, rows: list[Row]) -> dict[str, Any]:
    """``n`` cases, ``graded`` (correct is not None), ``correct``; accuracy over ALL cases
    (an ungraded case counts as wrong: a run that fails must not look better), and its CI."""
    n = len(rows)
    graded = sum(1 for r in rows if r.get("correct") is not None)
    correct = sum(1 for r in rows if r.get("correct") is True)
    lo, hi = wilson(correct, n)
    return {"category": label, "n": n, "graded": graded, "correct": correct,
            "accuracy": correct / n if n else 0.0, "ci_low": lo, "ci_high": hi}


def by_category(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """One accuracy row per category (sorted by name), then ``overall``."""
    rows = list(rows)
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(str(r.get("category") or "(none)"), []).append(r)
    return [accuracy_row(c, groups[c]) for c in sorted(groups, key=natural)] + [accuracy_row("overall", rows)]


def natural(name: str) -> list[Any]:
    """task2 before task10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def distribution(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "median": 0.0, "p90": 0.0, "max": 0.0, "total": 0.0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return {"mean": statistics.fmean(values), "median": statistics.median(values), "p90": p90,
            "max": ordered[-1], "total": sum(values)}


PER_CASE = ("steps", "model_calls", "tool_calls", "input_tokens", "output_tokens", "seconds")


def summarise(rows: Iterable[Row]) -> dict[str, Any]:
    """Everything the report tables show, from result rows alone."""
    rows = list(rows)
    decided = Counter(str((r.get("details") or {}).get("decided_by")) for r in rows
                      if (r.get("details") or {}).get("decided_by"))
    return {
        "cases": len(rows),
        "categories": by_category(rows),
        "statuses": dict(Counter(str(r.get("status")) for r in rows).most_common()),
        "per_case": {k: distribution([float(r.get(k) or 0) for r in rows]) for k in PER_CASE},
        "decided_by": dict(decided),
        "judges": judge_agreement(rows),
    }


def judge_agreement(rows: Iterable[Row]) -> dict[str, int] | None:
    """When cases carry both an LLM judge's and a string match's verdict: how often they agree."""
    both = [(d.get("llm_judge"), d.get("string_match")) for d in ((r.get("details") or {}) for r in rows)
            if isinstance(d.get("llm_judge"), bool) and isinstance(d.get("string_match"), bool)]
    if not both:
        return None
    return {"both_judged": len(both), "agree": sum(a == b for a, b in both),
            "llm_only_yes": sum(a and not b for a, b in both), "string_only_yes": sum(b and not a for a, b in both)}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: the discordant pairs under H0 are Binomial(n, 1/2)."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(a_only, n, 0.5, alternative="two-sided").pvalue)


def paired(rows_a: Iterable[Row], rows_b: Iterable[Row]) -> dict[str, Any]:
    """The cases both runs finished, paired by id: the 2x2 table and the exact McNemar test."""
    a = {r["id"]: r for r in rows_a}
    b = {r["id"]: r for r in rows_b}
    shared = sorted(a.keys() & b.keys())
    table = Counter((a[i].get("correct") is True, b[i].get("correct") is True) for i in shared)
    a_only, b_only = table[(True, False)], table[(False, True)]
    return {"shared": len(shared), "only_in_a": len(a.keys() - b.keys()), "only_in_b": len(b.keys() - a.keys()),
            "both_right": table[(True, True)], "both_wrong": table[(False, False)],
            "a_only_right": a_only, "b_only_right": b_only, "p_value": mcnemar_exact(a_only, b_only),
            "a_accuracy": sum(a[i].get("correct") is True for i in shared) / len(shared) if shared else 0.0,
            "b_accuracy": sum(b[i].get("correct") is True for i in shared) / len(shared) if shared else 0.0}
