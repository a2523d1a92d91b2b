"""Question makers for conditions, medications and immunizations (the report's first eight kinds).

Each maker takes one patient's record, the store-wide ``World`` and a seeded ``Random`` and
returns candidate questions; generate.py samples them. Golds are computed as of ``now``
(only records on or before it); negatives name things other patients have.
"""

from __future__ import annotations

import random
from collections import defaultdict

from .records import PatientRecord, Question, concept_of, day, search, token
from .vocab import CONDITION_GROUPS, SNOMED, VACCINES, condition_name, drug_name, drug_variants, words
from .world import World, condition_groups, drug_groups, now_for

ANY_ROWS = {"kind": "any_rows"}
FIRST_DATE = {"kind": "first", "column": "date"}


def _q(rec: PatientRecord, category: str, question: str, now: str, answer_type: str, gold, ideal, extract,
       **extra) -> Question:
    return Question(id="", patient_id=rec.id, question=question, now=now, category=category,
                    answer_type=answer_type, gold=gold, ideal=ideal, extract=extract, **extra)


def _tokens(items) -> str:
    return ",".join(sorted({token(*concept_of(r)[:2]) for r in items}))


def _clashes(name: str, held: list[str]) -> bool:
    """True when a negative's name shares a content word with something the patient has
    ('diabetes' against 'neuropathy due to type 2 diabetes'): not a clean negative."""
    mine = words(name)
    return any(mine & words(h) for h in held)


# -- conditions --------------------------------------------------------------------------------------

CONDITION_PHRASES = ("Has the patient ever been diagnosed with {x}?", "Does the patient have a history of {x}?",
                     "Is there a diagnosis of {x} in the patient's record?",
                     "Has {x} ever been recorded as a condition for this patient?")


def condition_existence(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    held = condition_groups(rec)
    for name, items in sorted(held.items()):
        onset = min(day(c) for c in items if day(c)) if any(day(c) for c in items) else rec.last_day
        now = now_for(rng, rec, onset, None)
        out.append(_q(rec, "condition_existence", rng.choice(CONDITION_PHRASES).format(x=name), now, "yesno", "yes",
                      [search("Condition", name, code=_tokens(items), date_to=now)], ANY_ROWS))
    names = [n for n in sorted(world.conditions) if n not in held and not _clashes(n, list(held))]
    for name in rng.sample(names, min(len(names), max(2, len(held)))):
        codes = ",".join(sorted(world.conditions[name]))
        out.append(_q(rec, "condition_existence", rng.choice(CONDITION_PHRASES).format(x=name), rec.last_day,
                      "yesno", "no", [search("Condition", name, code=codes, date_to=rec.last_day)], ANY_ROWS))
    return out


GROUP_PHRASES = ("Does the patient have {x}?", "Has the patient ever been diagnosed with {x}?",
                 "Is there {x} among the patient's diagnoses?")


def transitive_condition_existence(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    held_names = list(condition_groups(rec))
    mine = rec.codes("Condition")
    for group, members in sorted(CONDITION_GROUPS.items()):
        codes = ",".join(f"{SNOMED}|{c}" for c in sorted(members))
        found = [c for c in rec.of("Condition") if concept_of(c)[1] in members and day(c)]
        if found:
            now = now_for(rng, rec, min(day(c) for c in found), None)
            gold = "yes"
        elif members & world.condition_codes and not _group_clash(members, world, held_names) and not members & mine:
            now, gold = rec.last_day, "no"
        else:
            continue
        out.append(_q(rec, "transitive_condition_existence", rng.choice(GROUP_PHRASES).format(x=group), now,
                      "yesno", gold, [search("Condition", code=codes, date_to=now)], ANY_ROWS))
    return out


def _group_clash(members: frozenset[str], world: World, held_names: list[str]) -> bool:
    member_names = [n for n, toks in world.conditions.items() if any(t.rsplit("|", 1)[-1] in members for t in toks)]
    return any(_clashes(n, held_names) for n in member_names)


# -- immunizations -----------------------------------------------------------------------------------

LAST_VACCINE = ("When did the patient last receive the {x} vaccine?", "What was the date of the most recent {x} vaccination?",
                "When was the patient's latest {x} vaccine given?")
FIRST_VACCINE = ("When did the patient first receive the {x} vaccine?", "On what date was the first {x} vaccine given?")


def _series(items) -> list[str]:
    return sorted({day(r) for r in items if day(r)})


def immunization_date(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    groups = defaultdict(list)
    for imm in rec.of("Immunization"):
        code = concept_of(imm)[1]
        if code in VACCINES and imm.get("status", "completed") == "completed":
            groups[VACCINES[code]].append(imm)
    out = []
    for name, items in sorted(groups.items()):
        days = _series(items)
        codes = _tokens(items)
        i = rng.randrange(len(days))
        now = now_for(rng, rec, days[i], days[i + 1] if i + 1 < len(days) else None)
        out.append(_q(rec, "immunization_date", rng.choice(LAST_VACCINE).format(x=name), now, "date", days[i],
                      [search("Immunization", name, code=codes, date_to=now, limit=1)], FIRST_DATE))
        if len(days) > 1:
            now = now_for(rng, rec, days[-1], None)
            out.append(_q(rec, "immunization_date", rng.choice(FIRST_VACCINE).format(x=name), now, "date", days[0],
                          [search("Immunization", name, code=codes, date_to=now, sort="date", limit=1)], FIRST_DATE))
    return out


# -- medications -------------------------------------------------------------------------------------

CURRENT_PHRASES = ("Is the patient currently taking {x}?", "Is {x} on the patient's active medication list?",
                   "Does the patient have an active prescription for {x}?")
EVER_PHRASES = ("Has the patient ever been prescribed {x}?", "Is there any prescription of {x} in the record?",
                "Has {x} ever been ordered for this patient?")


def _negative_drugs(rec: PatientRecord, world: World, rng: random.Random, held: list[str], n: int) -> list[str]:
    names = [d for d in sorted(world.drugs) if d not in held and not _clashes(d, held)]
    return rng.sample(names, min(len(names), n))


def medication_current(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    """As of the record's last day, the one time a request's status describes."""
    out, now = [], rec.last_day
    held = drug_groups(rec)
    for name, items in sorted(held.items()):
        gold = "yes" if any(m.get("status") == "active" for m in items) else "no"
        out.append(_q(rec, "medication_current", rng.choice(CURRENT_PHRASES).format(x=name), now, "yesno", gold,
                      [search("MedicationRequest", name, code=_tokens(items), status="active", date_to=now)], ANY_ROWS))
    for name in _negative_drugs(rec, world, rng, list(held), 2):
        out.append(_q(rec, "medication_current", rng.choice(CURRENT_PHRASES).format(x=name), now, "yesno", "no",
                      [search("MedicationRequest", name, code=",".join(sorted(world.drugs[name])), status="active",
                              date_to=now)], ANY_ROWS))
    return out


def medication_existence(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    held = drug_groups(rec)
    for name, items in sorted(held.items()):
        now = now_for(rng, rec, day(items[0]), None)
        out.append(_q(rec, "medication_existence", rng.choice(EVER_PHRASES).format(x=name), now, "yesno", "yes",
                      [search("MedicationRequest", name, code=_tokens(items), date_to=now)], ANY_ROWS))
    for name in _negative_drugs(rec, world, rng, list(held), max(2, len(held))):
        out.append(_q(rec, "medication_existence", rng.choice(EVER_PHRASES).format(x=name), rec.last_day, "yesno",
                      "no", [search("MedicationRequest", name, code=",".join(sorted(world.drugs[name])),
                                    date_to=rec.last_day)], ANY_ROWS))
    return out


PRESCRIBER_PHRASES = ("Who last prescribed {x} for the patient?", "Which clinician wrote the most recent {x} prescription?",
                      "Who was the prescriber of the patient's latest {x} order?")
LAST_RX = ("When was {x} last prescribed?", "What is the date of the most recent {x} prescription?",
           "When did the patient last get a prescription for {x}?")
FIRST_RX = ("When was {x} first prescribed?", "On what date was {x} first ordered for the patient?")


def _latest_as_of(rng: random.Random, rec: PatientRecord, items):
    """A random prescription day, a ``now`` at which it is the newest of its kind, and the
    prescriptions on that day (several that disagree make 'the latest' ambiguous at day
    precision: the callers skip those)."""
    days = _series(items)
    i = rng.randrange(len(days))
    now = now_for(rng, rec, days[i], days[i + 1] if i + 1 < len(days) else None)
    same_day = [m for m in items if day(m) == days[i]]
    return days[i], now, same_day


def medication_prescriber(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    for name, items in sorted(drug_groups(rec).items()):
        items = [m for m in items if m.get("requester") and day(m)]
        if not items:
            continue
        _, now, same_day = _latest_as_of(rng, rec, items)
        names = {world.practitioner(m["requester"]) for m in same_day}
        if len(names) != 1 or not next(iter(names)):
            continue
        who = names.pop()
        out.append(_q(rec, "medication_prescriber", rng.choice(PRESCRIBER_PHRASES).format(x=name), now, "name", who,
                      [search("MedicationRequest", name, code=_tokens(items), date_to=now, limit=1)],
                      {"kind": "first", "column": "by"}, accept=[f"Dr. {who}", who.split()[-1]]))
    return out


def medication_prescription_date(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    out = []
    for name, items in sorted(drug_groups(rec).items()):
        items = [m for m in items if day(m)]
        if not items:
            continue
        when, now, _ = _latest_as_of(rng, rec, items)
        out.append(_q(rec, "medication_prescription_date", rng.choice(LAST_RX).format(x=name), now, "date", when,
                      [search("MedicationRequest", name, code=_tokens(items), date_to=now, limit=1)], FIRST_DATE))
        if len(_series(items)) > 1:
            first, now = day(items[0]), rec.last_day
            out.append(_q(rec, "medication_prescription_date", rng.choice(FIRST_RX).format(x=name), now, "date", first,
                          [search("MedicationRequest", name, code=_tokens(items), date_to=now, sort="date", limit=1)],
                          FIRST_DATE))
    return out


FOR_CONDITION = ("Which medication was most recently prescribed for the patient's {x}?",
                 "What drug was last ordered to treat the patient's {x}?", "What was the latest prescription for {x}?")


def medication_for_condition(rec: PatientRecord, world: World, rng: random.Random) -> list[Question]:
    conditions = {c["id"]: c for c in rec.of("Condition")}
    by_condition = defaultdict(list)
    for m in rec.of("MedicationRequest"):
        for ref in m.get("reasonReference") or []:
            cid = str(ref.get("reference", "")).rsplit("/", 1)[-1]
            if cid in conditions and day(m):
                by_condition[condition_name(concept_of(conditions[cid])[2])].append(m)
    out = []
    for cname, items in sorted(by_condition.items()):
        _, now, same_day = _latest_as_of(rng, rec, items)
        drugs = {drug_name(concept_of(m)[2]) for m in same_day}
        if len(drugs) != 1:
            continue
        drug = drugs.pop()
        display = concept_of(same_day[0])[2]
        out.append(_q(rec, "medication_for_condition", rng.choice(FOR_CONDITION).format(x=cname), now, "name", drug,
                      [search("MedicationRequest", date_to=now, limit=200)],
                      {"kind": "first_where", "column": "reason", "match": cname, "take": "display"},
                      accept=drug_variants(display)))
    return out
