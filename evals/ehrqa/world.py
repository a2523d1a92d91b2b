"""What the whole store holds (for real negatives) and small date helpers for choosing ``now``."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from tools.fhir.backend import FhirBackend, FhirError

from .records import PatientRecord, concept_of, person_name, token, when
from .vocab import SKIP_CONDITIONS, condition_name, drug_name


def shift(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def day_between(rng: random.Random, first: str, last: str) -> str:
    """A day in [first, last] (first when last is earlier)."""
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    span = (b - a).days
    return first if span <= 0 else (a + timedelta(days=rng.randint(0, span))).isoformat()


def now_for(rng: random.Random, rec: PatientRecord, start: str, next_day: str | None) -> str:
    """A reference day from ``start`` up to the day before ``next_day`` (or the record's end)."""
    end = shift(next_day, -1) if next_day else rec.last_day
    return day_between(rng, start, min(end, rec.last_day) if rec.last_day else end)


def condition_groups(rec: PatientRecord) -> dict[str, list[dict[str, Any]]]:
    """Plain condition name -> the patient's Conditions under it (skipped kinds left out)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in rec.of("Condition"):
        display = concept_of(c)[2]
        if display and not SKIP_CONDITIONS.search(display):
            out[condition_name(display)].append(c)
    return out


def drug_groups(rec: PatientRecord) -> dict[str, list[dict[str, Any]]]:
    """Plain drug name -> the patient's MedicationRequests holding it, oldest first.

    A request counts for every name whose ingredients it holds: asked when acetaminophen was
    last prescribed, an acetaminophen/oxycodone tablet is an acetaminophen prescription."""
    exact: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in rec.of("MedicationRequest"):
        display = concept_of(m)[2]
        if display:
            exact[drug_name(display)].append(m)
    out = {}
    for name in exact:
        wanted = set(name.split("/"))
        held = [m for other, items in exact.items() if wanted <= set(other.split("/")) for m in items]
        out[name] = sorted(held, key=lambda r: (when(r), r.get("id", "")))
    return out


@dataclass
class World:
    """Store-wide facts: which names exist at all (negatives must be real ones)."""

    backend: FhirBackend
    records: list[PatientRecord]
    conditions: dict[str, set[str]] = field(default_factory=dict)      # plain name -> code tokens
    drugs: dict[str, set[str]] = field(default_factory=dict)           # plain name -> code tokens
    condition_codes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        conds: dict[str, set[str]] = defaultdict(set)
        drugs: dict[str, set[str]] = defaultdict(set)
        for rec in self.records:
            for name, items in condition_groups(rec).items():
                conds[name] |= {token(*concept_of(c)[:2]) for c in items}
            for name, items in drug_groups(rec).items():
                drugs[name] |= {token(*concept_of(m)[:2]) for m in items}
            self.condition_codes |= rec.codes("Condition")
        self.conditions, self.drugs = dict(conds), dict(drugs)

    def practitioner(self, reference: dict[str, Any] | None) -> str:
        """The requester's name: the referenced Practitioner's own name, else the display."""
        if not isinstance(reference, dict):
            return ""
        ref = str(reference.get("reference") or "")
        if "/" in ref:
            name = _read_name(self.backend, *ref.rsplit("/", 2)[-2:])
            if name:
                return name
        return reference.get("display", "").removeprefix("Dr. ").strip()


@lru_cache(maxsize=4096)
def _read_name(backend: FhirBackend, rtype: str, rid: str) -> str:
    try:
        return person_name(backend.read(rtype, rid))
    except FhirError:
        return ""
