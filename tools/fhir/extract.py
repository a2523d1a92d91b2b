"""Turn one resource into the index rows its search parameters need.

Pure functions over raw dicts: the loader calls them once per resource, the store writes
the rows. The element's JSON shape decides how it is indexed (CodeableConcept, Coding,
Identifier, plain code; HumanName, Address, string; date, dateTime, Period; Reference).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator

from .dates import date_range, period_range
from .search_params import COMPARTMENT_PATHS, PARAMS


@dataclass
class IndexRows:
    tokens: list[tuple[str, str | None, str | None, str | None]] = field(default_factory=list)  # param, system, code, display
    refs: list[tuple[str, str | None, str]] = field(default_factory=list)  # param, target type, target id
    dates: list[tuple[str, int, int]] = field(default_factory=list)  # param, lo, hi
    strings: list[tuple[str, str, str]] = field(default_factory=list)  # param, normalised, raw


def normalise(text: str) -> str:
    """Case- and accent-insensitive form for string search (the spec's default matching)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


_PARTS: dict[str, tuple[str, ...]] = {}


def _collect(value: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect(item, parts, i, out)
    elif i == len(parts):
        out.append(value)
    elif isinstance(value, dict):
        key = parts[i]
        if key.endswith("[x]"):
            stem = key[:-3]
            for k, v in value.items():
                if k.startswith(stem) and k[len(stem):len(stem) + 1].isupper():
                    _collect(v, parts, i + 1, out)
        elif key in value:
            _collect(value[key], parts, i + 1, out)


def walk(node: Any, path: str) -> list[Any]:
    """Every value at ``path`` (dotted; lists walked through; ``x[x]`` = any choice type)."""
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS[path] = tuple(path.split("."))
    out: list[Any] = []
    _collect(node, parts, 0, out)
    return out


def split_reference(ref: str) -> tuple[str | None, str] | None:
    """``Patient/123`` or ``http://x/fhir/Patient/123[/_history/2]`` -> ("Patient", "123")."""
    if not ref or ref.startswith(("#", "urn:")) or "?" in ref:
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return parts[-2], parts[-1]
    if len(parts) == 1:
        return None, parts[0]
    return None


def _tokens(value: Any) -> Iterator[tuple[str | None, str | None, str | None]]:
    if isinstance(value, str):
        yield None, value, None
    elif isinstance(value, bool):
        yield None, "true" if value else "false", None
    elif isinstance(value, dict):
        if "coding" in value or "text" in value and "system" not in value and "value" not in value:
            for coding in value.get("coding", []) or []:
                yield from _tokens(coding)
            if value.get("text") and not value.get("coding"):
                yield None, None, value["text"]
        elif "code" in value or "system" in value and "value" not in value:
            yield value.get("system"), value.get("code"), value.get("display")
        elif "value" in value:  # Identifier (ContactPoint too)
            yield value.get("system"), value.get("value"), None


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):  # HumanName, Address: every textual part
        for key in ("text", "family", "given", "prefix", "suffix", "line", "city", "district",
                    "state", "postalCode", "country"):
            part = value.get(key)
            if isinstance(part, str):
                yield part
            elif isinstance(part, list):
                yield from (p for p in part if isinstance(p, str))


_cached_date_range = lru_cache(maxsize=65536)(date_range)  # Synthea repeats timestamps a lot


def _date_ranges(value: Any) -> Iterator[tuple[int, int]]:
    if isinstance(value, str):
        yield _cached_date_range(value)
    elif isinstance(value, dict) and ("start" in value or "end" in value):
        yield period_range(value.get("start"), value.get("end"))


def index_resource(resource: dict[str, Any]) -> IndexRows:
    """Index rows for every search parameter of the resource's type.

    Raises ``DateFormatError`` for a malformed date in an indexed element, so the loader
    can name the entry; nothing half-indexed is ever written.
    """
    rows = IndexRows()
    for param in PARAMS.get(resource.get("resourceType", ""), {}).values():
        for path in param.paths:
            for value in walk(resource, path):
                if param.kind == "token":
                    for system, code, display in _tokens(value):
                        rows.tokens.append((param.name, system, code, display))
                elif param.kind == "string":
                    for text in _strings(value):
                        rows.strings.append((param.name, normalise(text), text))
                elif param.kind == "date":
                    for lo, hi in _date_ranges(value):
                        rows.dates.append((param.name, lo, hi))
                elif param.kind == "reference" and isinstance(value, dict):
                    target = split_reference(value.get("reference", ""))
                    if target and (not param.targets or target[0] in param.targets or target[0] is None):
                        rows.refs.append((param.name, target[0], target[1]))
    return rows


def compartment_patient(resource: dict[str, Any]) -> str | None:
    """The id of the Patient this resource belongs to (itself for a Patient), if any."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    for key in COMPARTMENT_PATHS:
        value = resource.get(key)
        if isinstance(value, dict):
            target = split_reference(value.get("reference", ""))
            if target and target[0] == "Patient":
                return target[1]
    return None
