"""Tasks of MedAgentBench's ten kinds over OUR store's patients, with golds computed from the data.

Their patients live only in their server image, so these tasks reuse their wording and rules over
whatever patients a store holds (the 40 shared Synthea patients, the 5 fixture patients). Patients
are named by their FHIR id (it is what ``patient=`` takes; their server used the MRN as the id).
Labs are LOINC codes the record holds (Synthea has no magnesium and no bedside glucose, so
potassium, glucose, creatinine... stand in). Each task gets its own reference time, chosen from a
record's dates so that the answers vary: a value inside the last 24 hours or not, an HbA1c older
than a year or not, a low potassium or not (low values are rare in Synthea: the generator uses
every one the store has). Each task carries ``rules``: the reference time, the code, the dosing
rules, and the facts (birth date, values) its gold was computed from.

Task5 uses their magnesium text when the record holds magnesium; otherwise IV potassium with
tiers 3.0-3.4 mmol/L: 20 mEq over 2 h, 2.5-<3.0: 40 mEq over 4 h, <2.5: 60 mEq over 6 h (10 mEq
an hour) and a placeholder NDC, 99999-0001-01 (not a real product code: the model copies it).

    python -m evals.medagentbench.generate --store sqlite:///store.db --per-kind 5 --seed 0 --out tasks.json
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

from tools.fhir.backend import FhirBackend

from .facts import facts_from_backend, observations
from .grade import MAGNESIUM, parse_time
from .tasks import Task

LABS = [("potassium", "6298-4", "mmol/L"), ("potassium", "2823-3", "mmol/L"), ("glucose", "2339-0", "mg/dL"),
        ("creatinine", "38483-4", "mg/dL"), ("sodium", "2947-0", "mmol/L"), ("calcium", "49765-1", "mg/dL"),
        ("hemoglobin", "718-7", "g/dL")]
MAGNESIUM_CODES = ("19123-9", "2601-3")
POTASSIUM_CODES = ("6298-4", "2823-3")
HBA1C = "4548-4"
POTASSIUM_IV = {"low_max": 3.4, "tiers": [[2.5, 60, 6], [3.0, 40, 4], [None, 20, 2]], "dose_unit": "mEq",
                "rate_unit": "h", "route": "IV", "ndc": "99999-0001-01"}
REFERRALS = [
    "Situation: acute left knee injury, Background: radiology report indicates ACL tear. Assessment: ACL tear "
    "grade II. Recommendation: request for Orthopedic service to evaluate and provide management recommendations.",
    "Situation: right hip pain for 3 months, Background: X-ray shows moderate osteoarthritis. Assessment: hip "
    "osteoarthritis limiting walking. Recommendation: request for Orthopedic service to evaluate for joint replacement.",
    "Situation: fall with wrist pain, Background: X-ray shows a non-displaced distal radius fracture. Assessment: "
    "stable fracture. Recommendation: request for Orthopedic service to evaluate and provide management recommendations.",
]
MG_CONTEXT = ('The code for magnesium is "{code}". The NDC for replacement IV magnesium is 0338-1715-40. Dosing '
              'instructions: (1) Mild deficiency (eg, serum magnesium 1.5 to 1.9 mg/dL):\nIV: 1 g over 1 hour.\n(2) '
              'Moderate deficiency (eg, serum magnesium 1 to <1.5 mg/dL):\nIV: 2 g over 2 hours.\n(3) Severe '
              'deficiency (eg, serum magnesium <1 mg/dL):\nIV: 4 g over 4 hours.\n')
K_IV_CONTEXT = ('The code for potassium is "{code}". The NDC for replacement IV potassium is 99999-0001-01. Dosing '
                'instructions: (1) Mild deficiency (eg, serum potassium 3.0 to 3.4 mmol/L):\nIV: 20 mEq over 2 '
                'hours.\n(2) Moderate deficiency (eg, serum potassium 2.5 to <3.0 mmol/L):\nIV: 40 mEq over 4 hours.'
                '\n(3) Severe deficiency (eg, serum potassium <2.5 mmol/L):\nIV: 60 mEq over 6 hours.\n')


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _name(patient: dict[str, Any]) -> str:
    n = (patient.get("name") or [{}])[0]
    return " ".join([*(n.get("given") or [])[:1], n.get("family", "")]).strip()


class Generator:
    def __init__(self, backend: FhirBackend, seed: int = 0):
        self.backend, self.rng = backend, random.Random(seed)
        self.patients = sorted(backend.resources("Patient", []), key=lambda p: p["id"])
        self._obs: dict[tuple[str, str], list[tuple[str, float]]] = {}

    def obs(self, pid: str, code: str) -> list[tuple[str, float]]:
        if (pid, code) not in self._obs:
            self._obs[(pid, code)] = observations(self.backend, pid, code)
        return self._obs[(pid, code)]

    def _task(self, kind: str, n: int, instruction: str, context: str, pid: str, now: str,
              sol: list[Any] | None = None, **rules: Any) -> Task:
        task = Task(id=f"{kind}_{n}", kind=kind, instruction=instruction, context=context, eval_mrn=pid, sol=sol,
                    rules={"source": "generated", "now": now, **rules})
        facts = facts_from_backend(task, self.backend)
        return Task(**{**task.__dict__, "rules": {**task.rules, "facts": facts.to_json()}})

    def _labs(self, codes=None) -> list[tuple[dict, str, str, str]]:
        """(patient, name, code, unit) pairs the store holds values for, in a fixed order."""
        out = []
        for p in self.patients:
            for name, code, unit in LABS:
                if (codes is None or code in codes) and self.obs(p["id"], code):
                    out.append((p, name, code, unit))
        return out

    def _pick(self, items: list, n: int) -> list:
        return self.rng.sample(items, max(0, min(n, len(items))))

    def generate(self, per_kind: int = 5) -> list[Task]:
        tasks: list[Task] = []
        for kind in range(1, 11):
            tasks += getattr(self, f"task{kind}")(per_kind)
        return tasks

    def _random_now(self) -> str:
        day = datetime(2018, 1, 1, 10, 15, tzinfo=timezone.utc) + timedelta(days=self.rng.randrange(0, 6 * 365))
        return iso(day)

    def task1(self, n: int) -> list[Task]:
        out = []
        for i, p in enumerate(self._pick(self.patients, n), 1):
            name, dob = _name(p), p.get("birthDate", "")
            if i % 4 == 0:  # a patient who is not there: same name, another birth date
                dob = f"{int(dob[:4]) - 1}{dob[4:]}"
            matches = [q for q in self.patients if _name(q) == name and q.get("birthDate") == dob]
            sol = [matches[0]["id"]] if matches else ["Patient not found"]
            out.append(self._task("task1", i, f"What's the patient ID of the patient with name {name} and DOB of "
                                  f"{dob}? If the patient does not exist, the answer should be \"Patient not found\"",
                                  "", p["id"], self._random_now(), sol=sol))
        return out

    def task2(self, n: int) -> list[Task]:
        out = []
        for i, p in enumerate(self._pick([p for p in self.patients if p.get("birthDate")], n), 1):
            now = self._random_now()
            if now[:10] <= p["birthDate"]:  # not born yet on that day: ask on a birthday-independent later date
                now = iso(parse_time(p["birthDate"]) + timedelta(days=self.rng.randrange(400, 4000), hours=10.25))
            out.append(self._task("task2", i, f"What's the age of the patient with ID {p['id']}?",
                                  f"It's {now} now, and the answer should be rounded down to an integer.", p["id"], now))
        return out

    def task3(self, n: int) -> list[Task]:
        out = []
        for i, p in enumerate(self._pick(self.patients, n), 1):
            now, bp = self._random_now(), f"{self.rng.randrange(100, 160)}/{self.rng.randrange(60, 100)} mmHg"
            out.append(self._task("task3", i, f"I just measured the blood pressure for patient with ID {p['id']}, "
                                  f"and it is \"{bp}\". Help me record it.",
                                  f"It's {now} now. The flowsheet ID for blood pressure is BP.", p["id"], now,
                                  flowsheet="BP"))
        return out

    def _near(self, when: str, inside: bool) -> str:
        """A reference time 1-23 hours after ``when`` (inside the window) or 2-30 days after."""
        hours = self.rng.uniform(1, 23) if inside else self.rng.uniform(48, 720)
        return iso(parse_time(when) + timedelta(hours=hours))

    def task4(self, n: int) -> list[Task]:
        out = []
        for i, (p, name, code, unit) in enumerate(self._pick(self._labs(), n), 1):
            when, _ = self.rng.choice(self.obs(p["id"], code))
            now = self._near(when, inside=i % 3 != 0)
            out.append(self._task("task4", i, f"What's the most recent {name} level of the patient {p['id']} within "
                                  "last 24 hours?",
                                  f"It's {now} now. The code for {name} is \"{code}\". The answer should be a single "
                                  f"number converted to a unit of {unit}, and it should be -1 if a measurement within "
                                  "last 24 hours is not available.", p["id"], now, code=code))
        return out

    def task5(self, n: int) -> list[Task]:
        mg = [(p, c) for p in self.patients for c in MAGNESIUM_CODES if self.obs(p["id"], c)]
        spec, items = (MAGNESIUM, mg) if mg else (POTASSIUM_IV, [(p, c) for p, _, c, _ in self._labs(POTASSIUM_CODES)])
        low = [(p, c, w) for p, c in items for w, v in self.obs(p["id"], c) if v <= spec["low_max"]]
        rest = [(p, c, self.rng.choice(self.obs(p["id"], c))[0]) for p, c in items]
        chosen = self._pick(low, max(1, n // 2)) if low else []
        chosen += self._pick(rest, n - len(chosen))
        out = []
        for i, (p, code, when) in enumerate(chosen, 1):
            now = self._near(when, inside=i % 4 != 0)
            what = "magnesium" if spec is MAGNESIUM else "potassium"
            template = MG_CONTEXT if spec is MAGNESIUM else K_IV_CONTEXT
            out.append(self._task("task5", i, f"Check patient {p['id']}'s last serum {what} level within last 24 "
                                  f"hours. If low, then order replacement IV {what} according to dosing instructions. "
                                  f"If no {what} level has been recorded in the last 24 hours, don't order anything.\n",
                                  f"It's {now} now. " + template.format(code=code), p["id"], now, code=code,
                                  **({} if spec is MAGNESIUM else spec)))
        return out

    def task6(self, n: int) -> list[Task]:
        out = []
        for i, (p, name, code, unit) in enumerate(self._pick(self._labs(), n), 1):
            when, _ = self.rng.choice(self.obs(p["id"], code))
            now = self._near(when, inside=i % 3 != 0)
            out.append(self._task("task6", i, f"What is the average {name} of the patient {p['id']} over the last 24 "
                                  "hours?",
                                  f"It's {now} now. The code for {name} is \"{code}\". The answer should be a single "
                                  f"number converted to a unit of {unit}, and it should be -1 if a measurement within "
                                  "last 24 hours is not available.", p["id"], now, code=code))
        return out

    def task7(self, n: int) -> list[Task]:
        out = []
        for i, (p, name, code, _unit) in enumerate(self._pick(self._labs(), n), 1):
            now = self._near(self.obs(p["id"], code)[-1][0], inside=False)
            out.append(self._task("task7", i, f"What is the most recent {name} of the patient {p['id']}?",
                                  f"It's {now} now. The code for {name} is \"{code}\"", p["id"], now, code=code))
        return out

    def task8(self, n: int) -> list[Task]:
        out = []
        for i, p in enumerate(self._pick(self.patients, n), 1):
            now, note = self._random_now(), self.rng.choice(REFERRALS)
            out.append(self._task("task8", i, f"Order orthopedic surgery referral for patient {p['id']}. Specify "
                                  f"within the free text of the referral, \"{note}\"",
                                  f"It's {now} now. The SNOMED code for orthopedic surgery referral is "
                                  "306181000000106.", p["id"], now, snomed="306181000000106"))
        return out

    def task9(self, n: int) -> list[Task]:
        have = [(p, c) for p, _, c, _ in self._labs(POTASSIUM_CODES)]
        low = [(p, c) for p, c in have if any(v < 3.5 for _, v in self.obs(p["id"], c))]
        without = [(p, "6298-4") for p in self.patients if not any(q["id"] == p["id"] for q, _ in have)]
        chosen = self._pick(low, max(1, n // 3)) + self._pick(without, 1)
        chosen += self._pick([x for x in have if x not in chosen], n - len(chosen))
        out = []
        for i, (p, code) in enumerate(chosen[:n], 1):
            values = self.obs(p["id"], code)
            lows = [w for w, v in values if v < 3.5]
            # a low value is made the most recent one by setting "now" just after it
            now = self._near(lows[-1], inside=True) if (p, code) in low and lows and i % 2 else \
                self._near(values[-1][0], False) if values else self._random_now()
            out.append(self._task("task9", i, f"Check patient {p['id']}'s most recent potassium level. If low, then "
                                  "order replacement potassium according to dosing instructions. Also pair this order "
                                  "with a morning serum potassium level to be completed the next day at 8am. \n",
                                  f"It's {now} now. The code for potassium is \"{code}\".The NDC for replacement "
                                  "potassium is 40032-917-01. Dosing instructions: for every 0.1 mEq/L (or mmol/L) below "
                                  "threshold, order 10 mEq potassium oral repletion) to reach a goal of 3.5 serum level. "
                                  "The LOINC code for serum potassium level is 2823-3.", p["id"], now, code=code))
        return out

    def task10(self, n: int) -> list[Task]:
        have = [p for p in self.patients if self.obs(p["id"], HBA1C)]
        without = [p for p in self.patients if p not in have]
        chosen = self._pick(have, n - min(1, len(without))) + self._pick(without, 1)
        out = []
        for i, p in enumerate(chosen[:n], 1):
            values = self.obs(p["id"], HBA1C)
            days = self.rng.uniform(30, 300) if i % 2 else self.rng.uniform(400, 900)
            now = iso(parse_time(values[-1][0]) + timedelta(days=days)) if values else self._random_now()
            out.append(self._task("task10", i, f"What's the last HbA1C (hemoglobin A1C) value in the chart for patient "
                                  f"{p['id']} and when was it recorded? If the lab value result date is greater than 1 "
                                  "year old, order a new HbA1C lab test. ",
                                  f"It's {now} now. The code for HbA1C is \"{HBA1C}\". The LOINC code for ordering "
                                  "HbA1C lab is: 4548-4. The answer should be [-1] if a measurement is not available.",
                                  p["id"], now, code=HBA1C))
        return out


def generate_tasks(backend: FhirBackend, per_kind: int = 5, seed: int = 0) -> list[Task]:
    """``per_kind`` tasks of each of the ten kinds (fewer where the store lacks the data), deterministic."""
    return Generator(backend, seed).generate(per_kind)


def main(argv: list[str] | None = None) -> None:
    from tools.fhir import open_backend

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store"), ap.add_argument("--fhir-url")
    ap.add_argument("--per-kind", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open_backend(args.store, args.fhir_url) as backend:
        tasks = generate_tasks(backend, args.per_kind, args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump([t.to_json() for t in tasks], f, indent=1)
    print(f"{len(tasks)} tasks written to {args.out}")


if __name__ == "__main__":
    main()
