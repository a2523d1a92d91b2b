"""Compile a FHIR search (type + parameters) into a parameterised SQLAlchemy query.

Semantics follow the FHIR R4 search specification: repeated parameters AND, commas OR;
token ``code`` / ``system|code`` / ``|code`` / ``system|``; dates as ranges with the
prefixes eq ne gt lt ge le sa eb at any precision; strings match case- and
accent-insensitively from the start (``:exact``, ``:contains``). Values reach SQL only as
bound parameters. Anything not understood raises ``FhirError`` (HTTP 400 semantics) rather
than being ignored, because a silently dropped filter returns a wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, not_, or_, select
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import BinaryExpression

from .backend import FhirError, Params
from .dates import DateFormatError, date_range
from .extract import normalise, split_reference
from .schema import idx_date, idx_ref, idx_string, idx_token, resources
from .search_params import COMPARTMENT_PATHS, PARAMS, SEARCHABLE_TYPES, SearchParam

DEFAULT_COUNT = 50
MAX_COUNT = 1000
DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb")
_RESULT_PARAMS = {"_count", "_offset", "_sort", "_summary", "_include", "_revinclude", "_total", "_format"}
_MODIFIERS = {
    "token": {"not", "text", "missing"},
    "reference": {"missing"},  # plus a resource type, e.g. subject:Patient
    "date": {"missing"},
    "string": {"exact", "contains", "missing"},
}


@dataclass
class Include:
    source_type: str
    param: str
    target_type: str | None
    reverse: bool = False


@dataclass
class CompiledSearch:
    resource_type: str
    where: list = field(default_factory=list)  # ColumnElement, or IndexFilter until compiled
    order_by: list = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    summary_count: bool = False
    includes: list[Include] = field(default_factory=list)
    # the caller's parameters without _offset, to build self/next links
    link_params: Params = field(default_factory=list)


def bad(message: str) -> FhirError:
    return FhirError(message, status=400, code="invalid")


def split_or(value: str) -> list[str]:
    """Split on commas not escaped as ``\\,`` and unescape ``\\,`` ``\\|`` ``\\$`` ``\\\\``."""
    parts, current, i = [], [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            current.append(value[i:i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _split_pipe(value: str) -> tuple[str | None, str]:
    m = re.search(r"(?<!\\)\|", value)
    if not m:
        return None, _unescape(value)
    return _unescape(value[:m.start()]), _unescape(value[m.end():])


def _unescape(value: str) -> str:
    return re.sub(r"\\([,|$\\])", r"\1", value)


@dataclass
class IndexFilter:
    """'The resource has an index row of ``param`` meeting ``conds``' (or has none: negate)."""
    table: Any
    rtype: str
    param: str
    conds: tuple[ColumnElement, ...]
    negate: bool = False

    def sql(self, correlated: bool) -> ColumnElement:
        t = self.table
        if correlated:
            # Per candidate row, through the (res_pk) index: best once the patient has
            # narrowed the rows to a few hundred.
            clause = exists().where(t.c.res_pk == resources.c.pk, t.c.param == self.param, *self.conds)
        else:
            # One pass over the (type, param, value) index: best when nothing narrows first.
            clause = resources.c.pk.in_(select(t.c.res_pk).where(t.c.type == self.rtype, t.c.param == self.param, *self.conds))
        return not_(clause) if self.negate else clause


def _in_index(table, rtype: str, param: str, *conds: ColumnElement) -> IndexFilter:
    return IndexFilter(table, rtype, param, conds)


def _token_clause(rtype: str, p: SearchParam, modifier: str | None, value: str) -> IndexFilter:
    options = []
    for part in split_or(value):
        if modifier == "text":
            options.append(func.lower(idx_token.c.display).contains(_unescape(part).lower(), autoescape=True))
            continue
        system, code = _split_pipe(part)
        if system is None:
            options.append(idx_token.c.code == code)
        elif system == "":
            options.append(and_(idx_token.c.system.is_(None), idx_token.c.code == code))
        elif code == "":
            options.append(idx_token.c.system == system)
        else:
            options.append(and_(idx_token.c.system == system, idx_token.c.code == code))
    clause = _in_index(idx_token, rtype, p.name, or_(*options))
    clause.negate = modifier == "not"
    return clause


def _reference_clause(rtype: str, p: SearchParam, type_modifier: str | None, value: str) -> ColumnElement:
    parts = split_or(value)
    if p.name == "patient" and len(parts) == 1 and p.paths[0] in COMPARTMENT_PATHS:
        # The resource row carries the patient its subject/patient reference names (the
        # compartment), indexed with the type: the hot path of every agent query.
        target = split_reference(_unescape(parts[0]))
        if target and target[0] in (None, "Patient") and type_modifier in (None, "Patient"):
            return resources.c.patient_id == target[1]
    options = []
    for part in split_or(value):
        part = _unescape(part)
        target = split_reference(part)
        if target is None:
            raise bad(f"'{part}' is not a reference (expected 'id', 'Type/id' or an absolute URL) for '{p.name}'")
        ttype, tid = target
        ttype = ttype or type_modifier or (p.targets[0] if len(p.targets) == 1 else None)
        if ttype and p.targets and ttype not in p.targets:
            raise bad(f"'{p.name}' of {rtype} refers to {', '.join(p.targets)}, not {ttype}")
        cond = idx_ref.c.target_id == tid
        if ttype:
            cond = and_(cond, or_(idx_ref.c.target_type == ttype, idx_ref.c.target_type.is_(None)))
        options.append(cond)
    return _in_index(idx_ref, rtype, p.name, or_(*options))


def date_condition(prefix: str, lo: int, hi: int) -> ColumnElement:
    """The specification's prefix semantics for search range [lo, hi) vs target [t.lo, t.hi)."""
    t_lo, t_hi = idx_date.c.lo, idx_date.c.hi
    contained = and_(t_lo >= lo, t_hi <= hi)
    return {
        "eq": contained,
        "ne": not_(contained),
        "gt": t_hi > hi,                 # some of the target lies after the search range
        "lt": t_lo < lo,                 # some of the target lies before it
        "ge": or_(t_hi > hi, contained),
        "le": or_(t_lo < lo, contained),
        "sa": t_lo >= hi,                # starts after the search range ends
        "eb": t_hi <= lo,                # ends before the search range starts
    }[prefix]


def _date_clause(rtype: str, p: SearchParam, value: str) -> ColumnElement:
    options = []
    for part in split_or(value):
        prefix = "eq"
        # An unencoded '+' in a query string decodes to a space; a date never holds one.
        part = part.strip().replace(" ", "+")
        if part[:2] in DATE_PREFIXES:
            prefix, part = part[:2], part[2:]
        elif part[:2] == "ap":
            raise bad(f"the 'ap' (approximately) prefix is not supported for '{p.name}'")
        try:
            lo, hi = date_range(part)
        except DateFormatError as exc:
            raise bad(f"bad value for date parameter '{p.name}': {exc}") from exc
        options.append(date_condition(prefix, lo, hi))
    return _in_index(idx_date, rtype, p.name, or_(*options))


def _string_clause(rtype: str, p: SearchParam, modifier: str | None, value: str) -> ColumnElement:
    options = []
    for part in split_or(value):
        part = _unescape(part)
        if modifier == "exact":
            options.append(idx_string.c.raw == part)
        elif modifier == "contains":
            options.append(idx_string.c.value.contains(normalise(part), autoescape=True))
        else:
            options.append(idx_string.c.value.startswith(normalise(part), autoescape=True))
    return _in_index(idx_string, rtype, p.name, or_(*options))


_TABLE = {"token": idx_token, "reference": idx_ref, "date": idx_date, "string": idx_string}


def _filter(rtype: str, name: str, value: str) -> ColumnElement | IndexFilter:
    base, _, modifier = name.partition(":")
    modifier = modifier or None
    if base == "_id":
        if modifier:
            raise bad(f"modifier ':{modifier}' is not supported on _id")
        return resources.c.id.in_([_unescape(v) for v in split_or(value)])
    if "." in base:
        raise bad(f"chained parameter '{name}' is not supported; search the referenced type first")
    p = PARAMS[rtype].get(base)
    if p is None:
        known = ", ".join(sorted(["_id", *PARAMS[rtype]]))
        raise bad(f"unknown search parameter '{base}' for {rtype} (supported: {known})")
    type_modifier = None
    if modifier and modifier not in _MODIFIERS[p.kind]:
        if p.kind == "reference" and modifier[:1].isupper():
            type_modifier = modifier
        else:
            raise bad(f"modifier ':{modifier}' is not supported on {p.kind} parameter '{base}'")
    if value == "":
        raise bad(f"parameter '{name}' has an empty value")
    if modifier == "missing":
        if value not in ("true", "false"):
            raise bad(f"':missing' takes true or false, not '{value}'")
        has = _in_index(_TABLE[p.kind], rtype, p.name)
        has.negate = value == "true"
        return has
    if p.kind == "token":
        return _token_clause(rtype, p, modifier, value)
    if p.kind == "reference":
        return _reference_clause(rtype, p, type_modifier, value)
    if p.kind == "date":
        if modifier:
            raise bad(f"modifier ':{modifier}' is not supported on date parameter '{base}'")
        return _date_clause(rtype, p, value)
    return _string_clause(rtype, p, modifier, value)


def _sort_key(rtype: str, key: str):
    desc = key.startswith("-")
    name = key.lstrip("-")
    if name == "_id":
        col = resources.c.id
        return col.desc() if desc else col.asc()
    p = PARAMS[rtype].get(name)
    if p is None or p.kind == "reference":
        raise bad(f"cannot sort {rtype} by '{name}' (sortable: _id and its date, token and string parameters)")
    table = _TABLE[p.kind]
    column = {"date": idx_date.c.lo, "token": idx_token.c.code, "string": idx_string.c.value}[p.kind]
    agg = func.max(column) if desc else func.min(column)
    # No condition on type here: it would lure SQLite onto the (type, param) index and a scan.
    value = select(agg).where(table.c.res_pk == resources.c.pk, table.c.param == name).scalar_subquery()
    return (value.desc() if desc else value.asc()).nulls_last()


def _int_param(name: str, value: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise bad(f"'{name}' must be an integer, got '{value}'") from None
    if not lo <= n <= hi:
        raise bad(f"'{name}' must be between {lo} and {hi}, got {n}")
    return n


def _include(rtype: str, value: str, reverse: bool) -> Include:
    if value.endswith(":iterate") or value == "*":
        raise bad(f"_include '{value}' is not supported (no :iterate, no wildcard)")
    parts = value.split(":")
    if len(parts) not in (2, 3):
        raise bad(f"_include/_revinclude takes 'SourceType:param[:TargetType]', got '{value}'")
    source, pname = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    p = PARAMS.get(source, {}).get(pname)
    if p is None or p.kind != "reference":
        raise bad(f"'{source}:{pname}' is not a reference search parameter")
    if not reverse and source != rtype:
        raise bad(f"_include source type must be {rtype}, got {source}")
    return Include(source, pname, target, reverse)


def compile_search(rtype: str, params: Params) -> CompiledSearch:
    if rtype not in PARAMS:
        raise FhirError(f"searching {rtype} is not supported by the embedded store (supported: {', '.join(SEARCHABLE_TYPES)})",
                        status=400, code="not-supported")
    cs = CompiledSearch(rtype)
    sorted_ = False
    for once in ("_count", "_offset", "_sort", "_summary", "_total", "_format"):
        if sum(1 for name, _ in params if name == once) > 1:
            raise bad(f"'{once}' may appear only once")
    for name, value in params:
        if name == "_offset":
            cs.offset = _int_param(name, value, 0, 10**9)
            continue
        cs.link_params.append((name, value))
        if name not in _RESULT_PARAMS and name.partition(":")[0] not in _RESULT_PARAMS:
            cs.where.append(_filter(rtype, name, value))
        elif name == "_count":
            cs.count = _int_param(name, value, 0, MAX_COUNT)
        elif name == "_sort":
            cs.order_by.extend(_sort_key(rtype, key.strip()) for key in value.split(",") if key.strip())
            sorted_ = True
        elif name == "_summary":
            if value not in ("count", "false"):
                raise bad(f"_summary={value} is not supported (use count or false)")
            cs.summary_count = value == "count"
        elif name in ("_include", "_revinclude"):
            cs.includes.append(_include(rtype, value, reverse=name == "_revinclude"))
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise bad(f"_total must be none, estimate or accurate, got '{value}'")
        elif name == "_format":
            if value not in ("json", "application/json", "application/fhir+json"):
                raise bad(f"_format={value} is not supported (JSON only)")
        else:
            raise bad(f"parameter '{name}' is not supported")
    narrowed = any(isinstance(w, BinaryExpression) and w.left is resources.c.patient_id for w in cs.where)
    cs.where = [w.sql(correlated=narrowed) if isinstance(w, IndexFilter) else w for w in cs.where]
    # Ties (and unsorted searches) fall back to the id, so pages never overlap or skip.
    cs.order_by.append(resources.c.id.asc() if sorted_ else resources.c.pk.asc())
    return cs
