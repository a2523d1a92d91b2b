"""How ``search_records`` reads a planner's arguments, forgivingly, and explains an empty result.

A planner writes what a clinician says: a category in ``code`` ("labs"), a name for the whole
type ("visits"), a condition's name for a medication ("what was prescribed for sinusitis"), a
category the type does not define, its own patient's id in ``filters``. Each step here turns one
such habit into the search it meant, and says so in the result's header (``said``), so the trace
and the planner see what was searched. Refusals (another patient's id) raise ``Refused``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

import orjson

from tools.fhir.backend import FhirBackend
from tools.fhir.search_params import CODE_PARAM, DATE_PARAM, lookup

from .categories import CATEGORY_CODES, category_named, category_value, names_whole_type
from .resolve import Candidate, resolve_codes
from .results import resource_date

DATE_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)\d")


class Refused(Exception):
    """An argument the session must not run (another patient's id)."""


@dataclass
class CodeReading:
    """What ``code`` (and a category it may stand for) asks to search."""
    category: str | None
    params: list[tuple[str, str]] = field(default_factory=list)   # the code parameter, when there is one
    said: list[str] = field(default_factory=list)
    reasons: set[str] | None = None     # a condition's name for a medication: those Conditions' references
    unknown_code: bool = False          # a code given verbatim that the record does not hold
    miss: str | None = None             # nothing the name reaches: the message


def category_param(rtype: str) -> str:
    return "class" if rtype == "Encounter" else "category"


def read_code(rtype: str, code: str | None, category: str | None,
              candidates: Callable[[str], list[Candidate]],
              conditions_named: Callable[[str], tuple[set[str], str]]) -> CodeReading:
    """The code filter ``code`` means for ``rtype``, after the forgiving steps above."""
    reading = CodeReading(category=category)
    cparam = category_param(rtype)
    named = category_named(rtype, str(code)) if code and not category and lookup(rtype, cparam) else None
    if named:
        reading.said.append(f"'{code}' is a category: searched as one")
        reading.category, code = named, None
    if code and names_whole_type(rtype, str(code)):
        reading.said.append(f"'{code}' names every {rtype}: no code filter")
        code = None
    if not (code and str(code).strip()):
        return reading
    res = resolve_codes(str(code), candidates(rtype))
    if res.ok:
        reading.unknown_code = res.verbatim and "not among the codes" in res.message
        name = "combo-code" if rtype == "Observation" and reading.unknown_code else CODE_PARAM[rtype]
        reading.params.append((name, res.param_value()))
        reading.said.append(res.brief())
        return reading
    if rtype == "MedicationRequest":
        reasons, why = conditions_named(str(code))
        if reasons:
            reading.reasons = reasons
            reading.said.append(f"prescribed for {why}")
            return reading
    reading.miss = f"No {rtype} in this patient's record matches '{code}' ({res.message})."
    return reading


def date_params(rtype: str, date_from: str | None, date_to: str | None) -> list[tuple[str, str]]:
    """date_from / date_to as the type's date parameter with ge / le (a prefix given is kept)."""
    params = []
    for value, prefix in ((date_from, "ge"), (date_to, "le")):
        if value and str(value).strip():
            v = str(value).strip()
            params.append((DATE_PARAM[rtype], v if DATE_PREFIX.match(v) else prefix + v))
    return params


def read_category(rtype: str, category: str) -> tuple[tuple[str, str] | None, str | None]:
    """The category parameter, and a note when (part of) it is ignored. A category the type lacks
    or does not define is ignored and said: refusing the whole search over it cost small models
    the turn, and they then answered 'none'."""
    cparam = category_param(rtype)
    value, unknown = category_value(rtype, category) if lookup(rtype, cparam) else (None, [category])
    note = None
    if unknown:
        defined = CATEGORY_CODES.get(rtype, "").replace(" ", ", ")
        note = f"{cparam} {', '.join(unknown)} ignored: " + (
            f"{rtype} categories are {defined}" if defined and lookup(rtype, cparam) else f"{rtype} has no category")
    return ((cparam, value) if value else None), note


def read_filters(filters: dict[str, str] | str | None, patient_id: str
                 ) -> tuple[list[tuple[str, str]], list[str], str | None, str | None]:
    """Free-form FHIR parameters: (params, notes, _count, _sort). The bound patient's own id is
    redundant and dropped; another patient's raises ``Refused``."""
    if isinstance(filters, str):  # a model may send 'a=b&c=d' or JSON text
        filters = orjson.loads(filters) if filters.strip().startswith("{") else dict(parse_qsl(filters))
    params, said, count, sort = [], [], None, None
    for key, value in (filters or {}).items():
        key = str(key).strip()
        if re.split(r"[:.]", key)[0] in ("patient", "subject"):
            if str(value).strip().removeprefix("Patient/") == patient_id:
                continue
            raise Refused(f"filter '{key}' is not allowed: this session is bound to one patient and adds "
                          "patient itself; remove it")
        if key == "_count":
            count = value
        elif key == "_sort":
            sort = value
        else:
            params.append((key, str(value)))
            said.append(f"{key}={value}")
    return params, said, count, sort


def explain_empty(backend: FhirBackend, rtype: str, params: list[tuple[str, str]], criteria: str, total: int,
                  narrowing: set[str], keep: tuple[str, str] | None = None) -> str:
    """Explain an empty result: how many records the same search holds without the date,
    status or category filters, and their dates, so a planner widens the search instead of
    answering 'none' (small models add a status or category nobody asked for)."""
    text = f"{rtype}: {total} found{criteria}." if total else f"No {rtype} found{criteria}."
    wider = [(k, v) for k, v in params if k not in narrowing or (k, v) == keep]
    if len(wider) == len(params):
        return text
    newest = backend.search(rtype, [*wider, ("_sort", f"-{DATE_PARAM[rtype]}"), ("_count", "1")])
    count = newest.get("total", len(newest.get("entry", [])))
    if not count:
        return text + " There are none outside these filters either."
    oldest = backend.search(rtype, [*wider, ("_sort", DATE_PARAM[rtype]), ("_count", "1")])
    dates = [resource_date(b["entry"][0]["resource"]) for b in (newest, oldest) if b.get("entry")]
    span = f", the newest {dates[0]}, the oldest {dates[-1]}" if dates else ""
    return (text + f" Outside these filters the record holds {count}{span}: drop or widen "
            "date_from/date_to/status/category to see them.")


def prescribed_sentence(first: dict[str, Any], reference: str) -> str:
    """The newest prescription for a condition as a sentence (small models answered 'none'
    below the row that held it)."""
    by = f" by {first['by']}" if first.get("by") else ""
    return (f"{first['display']} was prescribed on {first['date']}{by} "
            f"for {first.get('reason') or 'that condition'} ({reference}).")
