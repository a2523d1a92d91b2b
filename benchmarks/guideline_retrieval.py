"""Guideline retrieval on the starter corpus: BM25 vs dense (MiniLM) vs fused, side by side.

    python benchmarks/guideline_retrieval.py [--questions evals/data/guideline_questions.jsonl]
        [--index DIR] [--embedder PATH] [--repeat 3] [--json benchmarks/out/guideline_retrieval.json]

Each labelled question names the note that answers it. recall@5: the note is among the top 5
passages (what ``search_guidelines`` returns by default); MRR@10: 1 / rank of its first passage
in the top 10. Latency: wall time of one ``search`` call (query embedding included, model load
excluded: one warm-up query first), median and p95 over the questions, each the median of
``--repeat`` runs; and the process CPU time of the call, which a machine shared with other
busy processes inflates far less than wall time. Targets (issue 11): recall@5 >= 0.95, < 20 ms a query. Prints figures only;
nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.guidelines import (CORPUS_DIR, MODES, GuidelineIndex, GuidelineRetriever, SentenceEmbedder,  # noqa: E402
                              read_document)

QUESTIONS = ROOT / "evals" / "data" / "guideline_questions.jsonl"
OUT = ROOT / "benchmarks" / "out"
K = 5
MRR_DEPTH = 10


def load_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def copied_phrases(questions: list[dict], n: int = 5) -> list[str]:
    """Questions that share an n-word sequence with the note that answers them (a check that
    the set is phrased as clinicians ask, not lifted from the notes)."""
    words = lambda text: re.findall(r"[a-z0-9]+", text.lower())  # noqa: E731
    notes = {}
    for path in CORPUS_DIR.glob("*.md"):
        doc = read_document(path, CORPUS_DIR)
        notes[doc.note_id] = words(" ".join(p for s in doc.sections for p in s.paragraphs))
    out = []
    for q in questions:
        body = notes.get(q["note"], [])
        grams = {tuple(body[i:i + n]) for i in range(len(body) - n + 1)}
        qw = words(q["question"])
        if any(tuple(qw[i:i + n]) in grams for i in range(len(qw) - n + 1)):
            out.append(q["id"])
    return out


def evaluate(retriever: GuidelineRetriever, questions: list[dict], mode: str, repeat: int) -> dict:
    retriever.search("warm-up query for the embedder", K, mode=mode)     # model load is not query time
    hits5, rr, times, cpu, misses = 0, 0.0, [], [], []
    for q in questions:
        runs, cpu_runs = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            hits = retriever.search(q["question"], MRR_DEPTH, mode=mode)
            runs.append(time.perf_counter() - t0)
            cpu_runs.append(time.process_time() - c0)
        times.append(statistics.median(runs) * 1000)
        cpu.append(statistics.median(cpu_runs) * 1000)
        notes = [h.passage.note_id for h in hits]
        wanted = {q["note"], *q.get("also", [])}
        first = next((i for i, n in enumerate(notes, start=1) if n in wanted), None)
        if first is not None and first <= K:
            hits5 += 1
        else:
            misses.append(f"{q['id']} {q['question']!r} -> {notes[:3]}")
        rr += 1.0 / first if first else 0.0
    times.sort()
    return {"mode": mode, "questions": len(questions), "recall@5": hits5 / len(questions),
            "mrr@10": rr / len(questions), "ms_median": statistics.median(times),
            "ms_p95": times[min(len(times) - 1, int(0.95 * len(times)))], "cpu_ms_median": statistics.median(cpu),
            "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--index", type=Path, default=OUT / "guideline_index",
                    help="index folder for the starter corpus (built or updated here first)")
    ap.add_argument("--embedder", type=Path, default=None, help="sentence-transformers folder (default MiniLM)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per query for the latency median")
    ap.add_argument("--json", type=Path, default=OUT / "guideline_retrieval.json")
    ap.add_argument("--show-misses", action="store_true")
    args = ap.parse_args()

    questions = load_questions(args.questions)
    embedder = SentenceEmbedder(args.embedder)
    t0 = time.perf_counter()
    index, report = GuidelineIndex.build(CORPUS_DIR, args.index, embedder,
                                         str(args.embedder.resolve()) if args.embedder else None)
    build_s = time.perf_counter() - t0
    notes = len({p.note_id for p in index.passages})
    print(f"corpus: {notes} notes, {len(index)} passages; index {args.index} "
          f"({report.embedded} passages embedded in {build_s:.1f} s); embedder {index.embedder_name} ({index.dim}-d)")
    copied = copied_phrases(questions)
    print(f"questions: {len(questions)} over {len({q['note'] for q in questions})} notes; "
          f"{len(copied)} share a 5-word sequence with their note {copied if copied else ''}")
    retriever = GuidelineRetriever(index, embedder)
    rows = [evaluate(retriever, questions, mode, args.repeat) for mode in MODES]
    print()
    print(f"| ranking | recall@{K} | MRR@{MRR_DEPTH} | ms/query median (wall) | p95 (wall) | CPU ms/query median |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['recall@5']:.3f} | {r['mrr@10']:.3f} | {r['ms_median']:.1f} | {r['ms_p95']:.1f} "
              f"| {r['cpu_ms_median']:.1f} |")
    print(f"\ntargets: recall@5 >= 0.95, < 20 ms a query (model load excluded); "
          f"machine: {platform.processor() or platform.machine()}, load average {_load()}")
    if args.show_misses:
        for r in rows:
            for m in r["misses"]:
                print(f"miss [{r['mode']}] {m}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"notes": notes, "passages": len(index), "embedder": index.embedder_name,
                                     "questions": len(questions), "results": rows}, indent=1))
    print(f"wrote {args.json}")


def _load() -> str:
    try:
        import os

        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
