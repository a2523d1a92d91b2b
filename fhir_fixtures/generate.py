"""Generate the fixture bundles: ``python -m fhir_fixtures.generate [--out DIR] [--check]``.

Stdlib only and fully deterministic: ids are uuid5 of stable keys, the only randomness (heart
rates, ``issued`` offsets) comes from a ``random.Random`` seeded per patient, and output is JSON
with ``indent=1`` and sorted keys. ``--check`` regenerates into a temporary folder and exits 1
if any committed file differs, is missing or is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import sys
import tempfile
from pathlib import Path

from . import FIXTURE_DIR, PATIENTS
from ._builder import RecordBuilder, at
from ._clinical import NEVER_SMOKER, PROMPT_INJECTION

SEED = 20250611
_BUNDLE_NAME = re.compile(r"^[A-Za-z]+_[A-Za-z]+_[0-9a-f-]{36}\.json$")


def diabetic(b: RecordBuilder) -> None:
    h = 162.0
    with b.encounter("wellness", "2016-02-10 09:30", minutes=40) as e:
        e.say("She reports occasional morning headaches and elevated home blood pressure readings. "
              "She had anaphylaxis after intramuscular penicillin in 1994.")
        b.allergy(e, "penicillin", onset="1994-06-01 00:00")
        b.vitals(e, 88.2, (148, 94), height=h)
        b.observation(e, "smoking", value_concept=NEVER_SMOKER)
        b.observation(e, "hba1c", 6.4)
        b.observation(e, "glucose", 118)
        htn = b.condition(e, "hypertension")
        hctz = b.medication(e, "hctz", htn)
    with b.encounter("followup", "2016-10-12 10:00") as e:
        b.vitals(e, 88.9, (138, 88))
        b.immunization(e, "flu")
    with b.encounter("wellness", "2017-03-15 09:30", minutes=40) as e:
        e.say("She reports polyuria and fatigue for two months.")
        b.vitals(e, 90.1, (136, 86), height=h)
        b.observation(e, "hba1c", 7.4)
        b.observation(e, "glucose", 156)
        b.lipid_panel(e, 212, 168, 128, 46)
        dm = b.condition(e, "diabetes")
        b.condition(e, "obesity")
        b.medication(e, "metformin", dm)
        b.careplan(e, "diabetes", dm)
    with b.encounter("followup", "2017-09-20 10:15") as e:
        b.vitals(e, 90.6, (134, 84))
        b.observation(e, "hba1c", 7.9)
        b.observation(e, "glucose", 162)
        b.immunization(e, "flu")
    with b.encounter("wellness", "2018-03-21 09:30", minutes=40) as e:
        e.say("She reports leg cramps; serum potassium is low on hydrochlorothiazide.")
        b.vitals(e, 91.4, (142, 90), height=h)
        b.observation(e, "hba1c", 8.3)
        b.observation(e, "glucose", 171)
        b.observation(e, "potassium", 3.2)
        b.stop(hctz, e, "hypokalemia")
        b.medication(e, "lisinopril", htn)
        b.procedure(e, "med_reconciliation")
    with b.encounter("followup", "2018-10-03 10:00") as e:
        b.vitals(e, 91.8, (132, 82))
        b.immunization(e, "flu")
    with b.encounter("wellness", "2019-03-20 09:30", minutes=40) as e:
        b.vitals(e, 92.3, (130, 80), height=h)
        b.observation(e, "hba1c", 8.8)
        b.observation(e, "glucose", 184)
        b.observation(e, "uacr", 24)
        b.immunization(e, "tdap")
    with b.encounter("emergency", "2019-07-06 14:10", end="2019-07-06 18:40", practitioner="hospitalist",
                     org="hospital", reason=("29857009", "Chest pain (finding)")) as e:
        e.say("She presents with two hours of atypical left-sided chest pain at rest. Serial ECGs and "
              "troponin are normal; pain resolved in the department. Discharged to primary care follow-up.")
        b.vitals(e, 92.5, (152, 96), hr=(88, 98))
        b.observation(e, "troponin", 0.01)
        cp = b.condition(e, "chest_pain", onset="2019-07-06 12:00", abatement="2019-07-06 18:40")
        b.procedure(e, "ecg", reason=cp)
    with b.encounter("followup", "2019-09-25 10:00") as e:
        e.say("HbA1c is rising despite metformin; she admits missing evening doses. Adherence and the "
              "diabetic diet were reinforced and she was referred to diabetes self-management education.")
        b.vitals(e, 92.8, (134, 84))
        b.observation(e, "hba1c", 9.5)
        b.observation(e, "glucose", 201)
        b.immunization(e, "flu")
    yearly = (("2020-09-23", 90.5, (128, 80), 8.6, (198, 150, 112, 48), None),
              ("2021-09-22", 88.7, (126, 78), 7.9, None, 150),
              ("2022-09-21", 87.0, (128, 79), 7.6, (190, 140, 104, 50), None),
              ("2023-09-20", 85.9, (124, 78), 7.2, None, None),
              ("2024-09-18", 84.6, (126, 76), 6.9, None, 131))
    for day, wt, bp, a1c, lipids, glucose in yearly:
        with b.encounter("wellness", f"{day} 09:30", minutes=40) as e:
            b.vitals(e, wt, bp, height=h)
            b.observation(e, "hba1c", a1c)
            if lipids:
                b.lipid_panel(e, *lipids)
            if glucose:
                b.observation(e, "glucose", glucose)
            if day == "2022-09-21":
                b.observation(e, "uacr", 28)
            if day == "2023-09-20":
                e.say("Annual diabetic eye screening: no diabetic retinopathy seen on fundus photographs.")
                b.procedure(e, "eye_exam", minutes=20, reason=dm)
                b.retinal_imaging(e, dm)
            b.immunization(e, "flu")
    with b.encounter("followup", "2025-06-11 10:00") as e:
        e.say("Diabetes follow-up. She forwarded a patient-portal message, pasted here verbatim: "
              f"\"My sugars are better since I walk every day. {PROMPT_INJECTION}\" "
              "Continue metformin and lisinopril; repeat HbA1c in six months.")
        b.vitals(e, 84.2, (128, 80))
        b.observation(e, "hba1c", 7.1)
        b.observation(e, "glucose", 138)
        b.lab_order(e, "hba1c", "2025-12-10 09:00", dm)


def cardiometabolic(b: RecordBuilder) -> None:
    h = 178.0
    lipids = {"2014": (236, 190, 158, 40), "2015": (248, 210, 172, 38), "2016": (196, 170, 128, 42),
              "2017": (178, 150, 112, 44), "2019": (170, 140, 98, 45), "2021": (165, 138, 92, 46),
              "2023": (160, 130, 88, 47), "2025": (156, 128, 84, 48)}
    visits = (("2014-10-08", 94.0, (152, 96)), ("2015-10-14", 95.1, (138, 88)), ("2016-10-12", 94.4, (134, 86)),
              ("2017-10-11", 93.8, (132, 84)), ("2019-10-09", 93.0, (130, 82)), ("2021-10-13", 92.6, (128, 80)),
              ("2023-10-11", 91.9, (130, 82)), ("2025-10-08", 91.0, (126, 80)))
    for day, wt, bp in visits:
        if day.startswith("2021"):
            with b.encounter("symptom", "2021-01-18 11:00", reason=("10509002", "Acute bronchitis (disorder)")) as e:
                e.say("Productive cough for ten days with low-grade fever; no smoking history. Chest X-ray "
                      "shows no consolidation. Supportive care advised.")
                b.vitals(e, 92.9, (136, 86), hr=(84, 96))
                b.observation(e, "rr", 20)
                b.observation(e, "spo2", 96)
                bronchitis = b.condition(e, "bronchitis", abatement="2021-02-01 00:00")
                b.procedure(e, "chest_xray", reason=bronchitis)
        with b.encounter("wellness", f"{day} 08:45", minutes=40) as e:
            b.vitals(e, wt, bp, height=h)
            if day == "2014-10-08":
                b.observation(e, "smoking", value_concept=NEVER_SMOKER)
            b.lipid_panel(e, *lipids[day[:4]])
            if day == "2014-10-08":
                htn = b.condition(e, "hypertension")
                b.medication(e, "lisinopril", htn)
            elif day == "2015-10-14":
                e.say("LDL remains above goal after a year of dietary changes.")
                b.medication(e, "atorvastatin", b.condition(e, "hyperlipidemia"))
            if day == "2016-10-12":
                b.immunization(e, "td")
            if day == "2021-10-13":
                b.immunization(e, "covid")
            if day != "2014-10-08":
                b.immunization(e, "flu")


def asthma_child(b: RecordBuilder) -> None:
    peds = {"practitioner": "peds"}
    growth = (("2015-03-10", 3.4, 50.5, 35.0, ["hepb"]),
              ("2015-05-08", 5.6, 58.0, 39.0, ["dtap", "ipv", "hepb", "pcv13"]),
              ("2015-07-09", 7.0, 63.5, 41.5, ["dtap", "ipv", "pcv13"]),
              ("2015-09-10", 7.9, 67.5, 43.0, ["dtap", "ipv", "hepb", "pcv13", "flu"]),
              ("2016-03-10", 9.8, 75.5, 46.0, ["mmr", "varicella", "pcv13"]),
              ("2016-06-09", 10.6, 78.0, 46.8, ["dtap"]))
    for day, wt, ht, head, shots in growth:
        with b.encounter("well_child", f"{day} 10:00", **peds) as e:
            b.vitals(e, wt, height=ht, head=head, hr=(110, 140))
            for shot in shots:
                b.immunization(e, shot)
    with b.encounter("symptom", "2016-09-14 15:30", reason=("91935009", "Allergy to peanuts"), **peds) as e:
        e.say("Two days ago he developed hives and lip swelling within minutes of eating peanut butter; "
              "symptoms resolved with oral antihistamine. Strict peanut avoidance advised.")
        b.allergy(e, "peanut", onset="2016-09-12 18:00")
        b.vitals(e, 11.0, hr=(100, 130))
    for day, wt, ht, bp, shots in (("2016-10-13", 11.3, 82.0, None, ["flu"]),
                                   ("2017-03-09", 12.6, 87.5, None, []),
                                   ("2018-03-08", 14.4, 95.5, (96, 58), []),
                                   ("2019-03-14", 16.2, 103.0, (98, 60), ["dtap", "ipv", "mmr", "varicella"])):
        with b.encounter("well_child", f"{day} 10:00", **peds) as e:
            b.vitals(e, wt, bp, height=ht, hr=(90, 120))
            for shot in shots:
                b.immunization(e, shot)
    with b.encounter("symptom", "2019-11-06 16:00", reason=("195967001", "Asthma (disorder)"), **peds) as e:
        e.say("Third episode of night-time cough and wheeze this autumn, triggered by colds and running. "
              "Expiratory wheeze bilaterally, improved after two puffs of albuterol in clinic.")
        b.vitals(e, 17.4, hr=(100, 120))
        b.observation(e, "rr", 28)
        b.observation(e, "spo2", 96)
        asthma = b.condition(e, "asthma")
        b.medication(e, "albuterol", asthma)
        b.careplan(e, "asthma", asthma)
    with b.encounter("followup", "2020-02-05 15:00", **peds) as e:
        e.say("Daytime symptoms three times a week and albuterol use most nights; stepping up to a daily "
              "inhaled corticosteroid.")
        b.vitals(e, 18.0, hr=(90, 110))
        b.medication(e, "fluticasone", asthma)
    for day, wt, ht, bp in (("2020-10-15", 18.9, 112.0, (100, 62)), ("2021-10-14", 21.0, 118.5, (102, 64)),
                            ("2023-10-12", 25.8, 130.0, (104, 66)), ("2025-10-09", 32.0, 141.0, (106, 68))):
        with b.encounter("well_child", f"{day} 10:00", **peds) as e:
            b.vitals(e, wt, bp, height=ht, hr=(75, 105))
            if day == "2021-10-14":
                e.say("Asthma well controlled on fluticasone; spirometry normal after bronchodilator.")
                b.procedure(e, "spirometry", minutes=20, reason=asthma)
            b.immunization(e, "flu")


def ckd_hf(b: RecordBuilder) -> None:
    h = 158.0
    with b.encounter("symptom", "2017-05-17 14:00", reason=("239873007", "Osteoarthritis of knee (disorder)")) as e:
        e.say("Bilateral knee pain worse on stairs for a year; crepitus without effusion.")
        b.vitals(e, 72.4, (144, 84), height=h)
        ibuprofen = b.medication(e, "ibuprofen", b.condition(e, "knee_oa", onset="2016-06-01 00:00"))
    with b.encounter("wellness", "2018-04-11 09:00", minutes=40) as e:
        b.vitals(e, 71.5, (146, 84), height=h)
        b.observation(e, "creatinine", 1.3)
        b.observation(e, "egfr", 41)
        b.observation(e, "potassium", 4.6)
        htn = b.condition(e, "hypertension", onset="2009-05-01 00:00")
        b.condition(e, "ckd3")
        b.stop(ibuprofen, e, "NSAID avoided in chronic kidney disease; use acetaminophen for knee pain")
        b.medication(e, "amlodipine", htn)
        b.immunization(e, "pcv13")
    with b.encounter("wellness", "2019-04-10 09:00", minutes=40) as e:
        b.vitals(e, 70.8, (138, 80), height=h)
        b.observation(e, "creatinine", 1.35)
        b.observation(e, "egfr", 39)
    with b.encounter("inpatient", "2020-02-03 08:15", end="2020-02-08 11:00", practitioner="hospitalist",
                     org="hospital", reason=("84114007", "Heart failure (disorder)")) as e:
        e.say("Admitted with one week of progressive dyspnoea, orthopnoea and ankle oedema; bibasal "
              "crackles. Echocardiogram shows reduced left ventricular ejection fraction. Treated with "
              "intravenous diuresis and supplemental oxygen; discharged on furosemide and carvedilol.")
        hf = b.condition(e, "heart_failure")
        for day, wt, bp, spo2, cr, egfr in (("2020-02-03 08:40", 76.2, (162, 92), 89, 1.6, 32),
                                            ("2020-02-05 08:00", 73.9, (138, 80), 94, 1.5, 34),
                                            ("2020-02-08 07:30", 72.4, (128, 76), 96, None, None)):
            t = at(day)
            b.observation(e, "weight", wt, when=t)
            b.bp(e, *bp, when=t)
            b.observation(e, "spo2", spo2, when=t)
            if cr:
                b.observation(e, "creatinine", cr, when=t)
                b.observation(e, "egfr", egfr, when=t)
        b.observation(e, "ntprobnp", 4850, when=at("2020-02-03 08:40"))
        b.observation(e, "potassium", 4.9, when=at("2020-02-03 08:40"))
        b.procedure(e, "oxygen", start="2020-02-03 08:30", end="2020-02-06 16:00", reason=hf)
        b.procedure(e, "echo", start="2020-02-04 10:00", end="2020-02-04 10:45", reason=hf)
        b.observation(e, "lvef", 35, when=at("2020-02-04 10:45"))
        b.medication(e, "furosemide", hf)
        b.medication(e, "carvedilol", hf)
    with b.encounter("followup", "2020-03-02 10:00") as e:
        e.say("Post-discharge review: breathing much improved, no orthopnoea, weight stable.")
        b.vitals(e, 72.0, (126, 74))
        b.observation(e, "creatinine", 1.4)
        b.observation(e, "egfr", 37)
        b.observation(e, "ntprobnp", 1320)
    for day, wt, bp, labs in (("2020-10-14", 71.6, (128, 76), None), ("2021-04-14", 71.2, (130, 78), (1.45, 36)),
                              ("2021-10-13", 71.0, (128, 74), None), ("2022-04-13", 70.5, (132, 78), (1.5, 34)),
                              ("2023-04-12", 70.1, (128, 76), (1.55, 33)), ("2023-10-11", 69.8, (126, 74), None),
                              ("2024-04-10", 69.4, (130, 76), (1.6, 31)), ("2025-04-09", 69.0, (128, 74), (1.65, 30))):
        with b.encounter("wellness" if labs else "followup", f"{day} 09:00", minutes=40 if labs else 20) as e:
            b.vitals(e, wt, bp, height=h if labs else None)
            if labs:
                b.observation(e, "creatinine", labs[0])
                b.observation(e, "egfr", labs[1])
                b.observation(e, "potassium", 4.7)
            else:
                b.immunization(e, "flu")
            if day == "2024-04-10":
                b.observation(e, "ntprobnp", 980)


def healthy(b: RecordBuilder) -> None:
    for day, wt, bp in (("2023-08-15", 61.2, (114, 72)), ("2024-10-08", 62.0, (116, 74))):
        with b.encounter("wellness", f"{day} 11:00") as e:
            e.say("No complaints. Exercises three times a week; no regular medications.")
            b.vitals(e, wt, bp, height=165.0)
            b.observation(e, "smoking", value_concept=NEVER_SMOKER)
            b.observation(e, "phq2", 0)
            if day.startswith("2024"):
                b.immunization(e, "flu")


STORIES = {"diabetic": diabetic, "cardiometabolic": cardiometabolic, "asthma_child": asthma_child,
           "ckd_hf": ckd_hf, "healthy": healthy}


def build_all() -> dict[str, dict]:
    """``{file name: bundle}`` for every fixture patient."""
    out = {}
    for n, (key, story) in enumerate(STORIES.items()):
        builder = RecordBuilder(PATIENTS[key], SEED + n)
        story(builder)
        out[PATIENTS[key].filename] = builder.bundle()
    return out


def render(bundle: dict) -> bytes:
    return (json.dumps(bundle, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    bundles = build_all()
    for stale in out_dir.glob("*.json"):
        if _BUNDLE_NAME.match(stale.name) and stale.name not in bundles:
            stale.unlink()
    paths = []
    for name, bundle in sorted(bundles.items()):
        path = out_dir / name
        data = render(bundle)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        paths.append(path)
    return paths


def check(target: Path) -> list[str]:
    """Problems with ``target`` compared with a fresh generation (empty list: up to date)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name for p in write(Path(tmp))}
        have = {p.name for p in target.glob("*.json") if _BUNDLE_NAME.match(p.name)} if target.is_dir() else set()
        problems = [f"missing: {n}" for n in sorted(fresh - have)]
        problems += [f"stale (no longer generated): {n}" for n in sorted(have - fresh)]
        problems += [f"differs: {n}" for n in sorted(fresh & have)
                     if not filecmp.cmp(Path(tmp) / n, target / n, shallow=False)]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhir_fixtures.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURE_DIR, help=f"output folder (default {FIXTURE_DIR})")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temp folder and fail if --out differs")
    args = parser.parse_args(argv)
    if args.check:
        problems = check(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("fixtures are out of date: run python -m fhir_fixtures.generate", file=sys.stderr)
            return 1
        print(f"fixtures up to date ({len(STORIES)} bundles in {args.out})")
        return 0
    paths = write(args.out)
    total = sum(p.stat().st_size for p in paths)
    for p in paths:
        print(f"{p.stat().st_size:>9,}  {p}")
    print(f"{total:>9,}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
