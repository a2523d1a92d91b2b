"""The report's plots, drawn with matplotlib (Agg, no display) and returned as base64 PNG so
report.html stays one self-contained file."""

from __future__ import annotations

import base64
import io
import threading
from typing import Any, Mapping, Sequence

_LOCK = threading.Lock()   # pyplot's state is global: one figure at a time
OURS, PUBLISHED, BAD = "#2f6db5", "#b5552f", "#c0392b"


def _err(fraction: float) -> float:
    """An error bar in points; Wilson bounds at 0/n or n/n sit a rounding error past the value."""
    return max(0.0, 100 * fraction)


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float = 6.4, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def accuracy_by_category(categories: Sequence[Mapping[str, Any]], published: Sequence[Mapping[str, Any]] = ()) -> str:
    """Horizontal bars with Wilson 95% intervals; published overall scores as dashed lines."""
    with _LOCK:
        rows = list(categories)
        fig, ax = _figure(6.4, 0.45 * len(rows) + 1.4)
        labels = [f"{r['category']} (n={r['n']})" for r in rows]
        acc = [100 * r["accuracy"] for r in rows]
        lo = [_err(r["accuracy"] - r["ci_low"]) for r in rows]
        hi = [_err(r["ci_high"] - r["accuracy"]) for r in rows]
        colors = ["#1d3f6e" if r["category"] == "overall" else OURS for r in rows]
        y = list(range(len(rows)))[::-1]
        ax.barh(y, acc, xerr=[lo, hi], color=colors, capsize=3, ecolor="#444")
        ax.set_yticks(y, labels)
        for i, p in enumerate(published):
            if isinstance(p.get("score"), (int, float)):
                ax.axvline(float(p["score"]), ls="--", lw=1, color=PUBLISHED, alpha=0.8)
                ax.text(float(p["score"]), len(rows) - 0.4 + 0.35 * i, f" {p['model']} {p['score']}%",
                        fontsize=7, color=PUBLISHED, va="bottom")
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy, % (bars: Wilson 95% CI)")
        return _png(fig)


def histogram(values: Sequence[float], xlabel: str, bins: int = 12) -> str:
    from matplotlib.ticker import MaxNLocator

    with _LOCK:
        fig, ax = _figure(4.6, 2.6)
        values = list(values) or [0]
        if all(float(v).is_integer() for v in values):   # counts (steps): one bar per value
            low, high = int(min(values)), int(max(values))
            bins = [x - 0.5 for x in range(low, high + 2)]  # type: ignore[assignment]
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.hist(values, bins=bins, color=OURS, edgecolor="white")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("cases")
        return _png(fig)


def status_counts(statuses: Mapping[str, int]) -> str:
    with _LOCK:
        fig, ax = _figure(4.6, 0.35 * max(1, len(statuses)) + 1.2)
        names = list(statuses)
        ax.barh(names[::-1], [statuses[n] for n in names][::-1],
                color=[OURS if n == "completed" else BAD for n in names][::-1])
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("cases")
        return _png(fig)


def steps_vs_tokens(rows: Sequence[Mapping[str, Any]]) -> str:
    """One dot per case: right answers blue, wrong red, ungraded grey."""
    with _LOCK:
        fig, ax = _figure(4.6, 2.8)
        for verdict, color, label in ((True, OURS, "right"), (False, BAD, "wrong"), (None, "#999", "ungraded")):
            pts = [(r.get("steps") or 0, (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0))
                   for r in rows if r.get("correct") is verdict]
            if pts:
                ax.scatter(*zip(*pts), s=18, color=color, label=label, alpha=0.8)
        ax.set_xlabel("steps")
        ax.set_ylabel("tokens (in + out)")
        if rows:
            ax.legend(fontsize=7, frameon=False)
        return _png(fig)


def paired_categories(cats_a: Sequence[Mapping[str, Any]], cats_b: Sequence[Mapping[str, Any]],
                      label_a: str, label_b: str) -> str:
    """Side-by-side accuracy per category for two runs, with their intervals."""
    with _LOCK:
        a = {r["category"]: r for r in cats_a}
        b = {r["category"]: r for r in cats_b}
        names = [c for c in dict.fromkeys([*a, *b])]
        fig, ax = _figure(6.4, 0.55 * len(names) + 1.4)
        y = list(range(len(names)))[::-1]
        for offset, runs, color, label in ((0.2, a, OURS, label_a), (-0.2, b, PUBLISHED, label_b)):
            acc = [100 * runs[n]["accuracy"] if n in runs else 0 for n in names]
            err = [[_err(runs[n]["accuracy"] - runs[n]["ci_low"]) if n in runs else 0 for n in names],
                   [_err(runs[n]["ci_high"] - runs[n]["accuracy"]) if n in runs else 0 for n in names]]
            ax.barh([v + offset for v in y], acc, height=0.38, xerr=err, color=color, label=label, capsize=2,
                    ecolor="#444")
        ax.set_yticks(y, names)
        ax.set_xlim(0, 100)
        ax.set_xlabel("accuracy, % (Wilson 95% CI)")
        ax.legend(fontsize=7, frameon=False, loc="lower right")
        return _png(fig)
