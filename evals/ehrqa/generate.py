"""Generate the EHRQA-style question set from any loaded store.

    python -m evals.ehrqa.generate --store sqlite:///benchmarks/out/synthea.db --out questions.jsonl
    medagent ehrqa generate --out questions.jsonl [--seed S] [--per-category N] [--patients ID ...]

Deterministic for a seed: every random choice comes from a ``Random`` seeded by the seed,
the category and the patient id, and candidates are sampled in a fixed order.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

from tools.fhir.backend import FhirBackend

from . import questions_clinical as clinical
from . import questions_observations as observations
from .records import PatientRecord, Question, load_records
from .world import World

Maker = Callable[[PatientRecord, World, random.Random], list[Question]]

#: The report's ten EHRQA categories, then the project's four.
CATEGORIES: dict[str, Maker] = {
    "condition_existence": clinical.condition_existence,
    "transitive_condition_existence": clinical.transitive_condition_existence,
    "immunization_date": clinical.immunization_date,
    "medication_current": clinical.medication_current,
    "medication_existence": clinical.medication_existence,
    "medication_prescriber": clinical.medication_prescriber,
    "medication_prescription_date": clinical.medication_prescription_date,
    "medication_for_condition": clinical.medication_for_condition,
    "dependent_observation": observations.dependent_observation,
    "observation_value": observations.observation_value,
    "count_period": observations.count_period,
    "encounter_count": observations.encounter_count,
    "age": observations.age,
    "patient_lookup": observations.patient_lookup,
}
DEFAULT_PER_CATEGORY = 20


def _spread(questions: list[Question]) -> list[Question]:
    """Each patient's first question, then each one's second, ... (stable within a round)."""
    seen: dict[str, int] = defaultdict(int)
    ranked = []
    for q in questions:
        ranked.append((seen[q.patient_id or str(q.gold)], q))
        seen[q.patient_id or str(q.gold)] += 1
    return [q for _, q in sorted(ranked, key=lambda rq: rq[0])]


def _select(candidates: list[Question], n: int | None, rng: random.Random) -> list[Question]:
    """Up to n, spread over patients first and, for yes/no, alternating yes and no."""
    rng.shuffle(candidates)
    if candidates and candidates[0].answer_type == "yesno":
        yes = _spread([q for q in candidates if q.gold == "yes"])
        no = _spread([q for q in candidates if q.gold != "yes"])
        ordered = [q for pair in zip(yes, no) for q in pair] + yes[len(no):] + no[len(yes):]
    else:
        ordered = _spread(candidates)
    return ordered if n is None else ordered[:n]


def generate(backend: FhirBackend, *, seed: int = 0, per_category: int | None = DEFAULT_PER_CATEGORY,
             patient_ids: Iterable[str] | None = None, categories: Iterable[str] | None = None) -> list[Question]:
    """Questions with golds computed from ``backend``'s records, ``per_category`` at most each."""
    records = load_records(backend, list(patient_ids) if patient_ids else None)
    world = World(backend, records)
    out: list[Question] = []
    for category in categories or CATEGORIES:
        maker = CATEGORIES[category]
        candidates = []
        for rec in records:
            candidates += maker(rec, world, random.Random(f"{seed}:{category}:{rec.id}"))
        chosen = _select(candidates, per_category, random.Random(f"{seed}:{category}"))
        for i, q in enumerate(chosen, 1):
            q.id = f"{category}-{i:03d}"
        out += chosen
    return out


def write_jsonl(questions: Iterable[Question], path: str | Path) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for q in questions:
            f.write(json.dumps(q.to_json(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[Question]:
    with open(path, encoding="utf-8") as f:
        return [Question.from_json(json.loads(line)) for line in f if line.strip()]


def main(argv: list[str] | None = None) -> None:
    from tools.fhir import open_backend

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-category", type=int, default=DEFAULT_PER_CATEGORY)
    ap.add_argument("--patients", nargs="*")
    args = ap.parse_args(argv)
    backend = open_backend(args.store, None)
    n = write_jsonl(generate(backend, seed=args.seed, per_category=args.per_category, patient_ids=args.patients), args.out)
    print(f"{n} questions -> {args.out}")


if __name__ == "__main__":
    main()
