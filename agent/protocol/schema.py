"""JSON schemas for the planner: one per tool, and one for a whole planner turn.

``tool_schemas(session.tools())`` -> ``[{"name", "description", "parameters"}]`` (the OpenAI
"function" shape, built by langchain-core from the type hints; Optional arguments are plain
types and not required; the description is the tool's whole docstring).

``action_schema(schemas)`` -> ONE schema for a planner turn, for constrained decoding:
``{"tool": NAME, "args": {...}}`` for each tool, or ``{"answer": "..."}``. Argument strings are
bounded (a short ``maxLength``, dates by ``pattern``) and every object closed, so a
grammar-constrained model cannot run on inside a value. ``narrow`` turns chosen arguments into
enums of what this patient's record holds (``{"search_records.code": ["HbA1c", ...]}``).

The schema keeps to what serving engines compile (see ``PORTABLE_KEYWORDS``):
- llama-cpp-python's server (0.3.36) expands ``maxLength: N`` into N nested optional rules; at
  ``maxLength`` 2000 its grammar parser gives up ("number of rules ... exceeds sane defaults")
  and the server process dies. So argument strings stay short (``MAX_STRING``) and the free-text
  answer has NO ``maxLength``: its length is capped by the backend's token budget instead.
- vLLM's xgrammar lacks ``propertyNames``/``patternProperties``/``maxProperties``/``format``
  (vLLM then switches engine or refuses): none of them is used; a free map's keys (``filters``)
  are plain strings, checked by the tool schema after parsing.
- a ``pattern`` is not combined with ``maxLength`` (engines handle the pair unevenly; the date
  pattern bounds the length by itself).
The tool schemas (``tool_schemas``) stay the full check: ``validate_calls`` applies them.

``schema_errors(instance, schema)`` checks a value against a schema: with ``jsonschema`` when
it is installed, else with the small checker below (the subset these schemas use).
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from typing import Any, Callable, Iterable, Mapping, Sequence

# YYYY, YYYY-MM or YYYY-MM-DD (what the tools take); [0-9] rather than \d for grammar engines.
DATE_PATTERN = r"^(19|20)[0-9]{2}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$"
MAX_INT = 1000
MAX_ITEMS = 10
# Argument strings: names ("Hemoglobin A1c/Hemoglobin.total in Blood" is 40), codes
# ("http://loinc.org|4548-4"), references ("MedicationRequest/<uuid>" is 54).
MAX_STRING = 80
# The JSON-schema keywords action_schema may emit: the subset llama.cpp's GBNF converter,
# llguidance and vLLM's xgrammar all compile (tests/test_protocol_schema.py checks it).
PORTABLE_KEYWORDS = frozenset({
    "title", "type", "properties", "required", "additionalProperties", "anyOf", "enum", "const",
    "minLength", "maxLength", "pattern", "minimum", "maximum", "items", "minItems", "maxItems"})


# -- one schema per tool ----------------------------------------------------------------------

def tool_schemas(tools: Iterable[Callable[..., Any]]) -> list[dict[str, Any]]:
    """Each tool's JSON schema: ``{"name", "description", "parameters"}``.

    Parameters come from the type hints (``Literal`` -> ``enum``, ``X | None`` -> ``X``, not
    required); the description is the cleaned docstring (langchain-core mangles its line
    breaks, and the per-argument notes in it are what a small model needs).
    """
    from langchain_core.utils.function_calling import convert_to_openai_tool

    out: list[dict[str, Any]] = []
    for tool in tools:
        spec = convert_to_openai_tool(tool)
        spec = spec.get("function", spec)
        doc = inspect.getdoc(tool) if (inspect.isfunction(tool) or inspect.ismethod(tool)) else None
        out.append({"name": spec["name"],
                    "description": (doc or spec.get("description") or "").strip(),
                    "parameters": _clean_parameters(spec.get("parameters") or {})})
    names = [s["name"] for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate tool names: {names}")
    return out


def _clean_parameters(params: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    required = list(params.get("required", []))
    for name, prop in (params.get("properties") or {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        options = prop.get("anyOf")
        if isinstance(options, list) and any(o.get("type") == "null" for o in options):
            rest = [o for o in options if o.get("type") != "null"]
            del prop["anyOf"]
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
            if name in required:
                required.remove(name)
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        props[name] = prop
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    return out


def by_name(schemas: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: schema}`` from a list of tool schemas (OpenAI ``{"type": "function"}`` wrappers
    accepted) or from such a mapping already."""
    if isinstance(schemas, Mapping) and "name" not in schemas:
        items: Iterable[Any] = schemas.values()
    else:
        items = schemas
    out: dict[str, dict[str, Any]] = {}
    for s in items:
        s = s.get("function", s) if isinstance(s, Mapping) else s
        out[s["name"]] = dict(s)
    return out


# -- one schema for a planner turn --------------------------------------------------------------

def action_schema(schemas: Iterable[Mapping[str, Any]], max_string: int = MAX_STRING, allow_answer: bool = True,
                  narrow: Mapping[str, Sequence[Any]] | None = None, max_answer: int | None = None,
                  omit: Iterable[str] = ()) -> dict[str, Any]:
    """The schema of one planner turn: ``anyOf`` one branch per tool plus the answer branch.

    ``max_answer``: a ``maxLength`` for the answer; None (the default) leaves it unbounded,
    because long bounds break llama.cpp's grammar compiler (module doc): cap the answer with
    the backend's token budget.

    ``narrow``: ``{"tool.argument": [allowed values]}`` turns that argument into an enum (a
    subset of its enum when it has one). An unknown tool or argument, an empty list or a value
    outside the argument's enum raises ``ValueError``: a narrowing that silently did nothing
    would hide the grounding it was meant to give.

    ``omit``: ``"tool.argument"`` names of optional arguments this turn may not give (a filter
    the question does not ask for); a required argument is never omitted.
    """
    tools = by_name(schemas)
    narrowed = _narrowings(tools, narrow or {})
    dropped = {tuple(key.split(".", 1)) for key in omit}
    branches: list[dict[str, Any]] = []
    for name, spec in tools.items():
        params = copy.deepcopy(spec.get("parameters") or {"type": "object", "properties": {}})
        props = params.setdefault("properties", {})
        for arg, prop in list(props.items()):
            if (name, arg) in dropped and arg not in params.get("required", []):
                del props[arg]
                continue
            props[arg] = narrowed.get((name, arg)) or _bound(prop, arg, max_string)
        params["type"] = "object"
        params["additionalProperties"] = False
        params.pop("title", None)
        params.pop("description", None)
        branches.append({"type": "object",
                         "properties": {"tool": {"const": name}, "args": params},
                         "required": ["tool", "args"], "additionalProperties": False})
    if allow_answer:
        answer: dict[str, Any] = {"type": "string", "minLength": 1}
        if max_answer is not None:
            answer["maxLength"] = max_answer
        branches.append({"type": "object", "properties": {"answer": answer},
                         "required": ["answer"], "additionalProperties": False})
    if not branches:
        raise ValueError("action_schema needs at least one tool or allow_answer=True")
    return {"title": "planner_turn", "anyOf": branches}


def _narrowings(tools: Mapping[str, Mapping[str, Any]], narrow: Mapping[str, Sequence[Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for key, values in narrow.items():
        tool, _, arg = key.partition(".")
        if tool not in tools:
            raise ValueError(f"narrow '{key}': no tool '{tool}' (tools: {', '.join(tools)})")
        props = (tools[tool].get("parameters") or {}).get("properties", {})
        if arg not in props:
            raise ValueError(f"narrow '{key}': {tool} has no argument '{arg}' (arguments: {', '.join(props)})")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"narrow '{key}': give a list of values")
        values = list(dict.fromkeys(values))
        if not values:
            raise ValueError(f"narrow '{key}': the list of values is empty")
        prop = props[arg]
        allowed = _enum_of(prop)
        if allowed is not None:
            outside = [v for v in values if v not in allowed]
            if outside:
                raise ValueError(f"narrow '{key}': {outside} not among {allowed}")
        elif _types_of(prop) & {"object", "array"}:
            raise ValueError(f"narrow '{key}': cannot narrow an object/array argument")
        out[(tool, arg)] = ({"type": "string", "enum": values} if all(isinstance(v, str) for v in values)
                            else {"enum": values})
    return out


def _enum_of(prop: Mapping[str, Any]) -> list[Any] | None:
    if "enum" in prop:
        return list(prop["enum"])
    for option in prop.get("anyOf", []):
        if "enum" in option:
            return list(option["enum"])
    return None


def _types_of(prop: Mapping[str, Any]) -> set[str]:
    t = prop.get("type")
    found = {t} if isinstance(t, str) else set(t or [])
    for option in prop.get("anyOf", []):
        found |= _types_of(option)
    return found


def _bound(prop: Mapping[str, Any], name: str, max_string: int) -> dict[str, Any]:
    """A copy of ``prop`` where every string, number of items and integer is bounded."""
    prop = {k: v for k, v in prop.items() if k not in ("title", "default", "description")}
    if "anyOf" in prop:
        prop["anyOf"] = [_bound(o, name, max_string) for o in prop["anyOf"]]
    types = {prop["type"]} if isinstance(prop.get("type"), str) else set(prop.get("type") or [])
    if "string" in types and "enum" not in prop and "const" not in prop:
        if "date" in name.lower():
            prop["pattern"] = DATE_PATTERN   # at most 10 characters by itself: no maxLength beside it
            prop.pop("maxLength", None)
        else:
            prop["maxLength"] = min(prop.get("maxLength", max_string), max_string)
    if "integer" in types:
        prop.setdefault("minimum", 0)
        prop.setdefault("maximum", MAX_INT)
    if "array" in types:
        prop["maxItems"] = min(prop.get("maxItems", MAX_ITEMS), MAX_ITEMS)
        if isinstance(prop.get("items"), Mapping):
            prop["items"] = _bound(prop["items"], name, max_string)
    if "object" in types:
        sub = prop.get("properties")
        if sub:
            prop["properties"] = {k: _bound(v, k, max_string) for k, v in sub.items()}
        extra = prop.get("additionalProperties")
        if isinstance(extra, Mapping):  # a free map such as search_records.filters: values bounded;
            # its keys cannot be (propertyNames/maxProperties are not portable), the tool schema checks them
            prop["additionalProperties"] = _bound(extra, name, max_string)
            for key in ("propertyNames", "maxProperties", "minProperties", "patternProperties"):
                prop.pop(key, None)
        else:
            prop["additionalProperties"] = False
    return prop


# -- checking a value against a schema ----------------------------------------------------------

def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Messages for every way ``instance`` breaks ``schema`` (empty: valid)."""
    try:
        import jsonschema
    except ImportError:
        return _check(instance, schema, "")
    validator = jsonschema.Draft202012Validator(schema)
    return [(("/".join(map(str, e.absolute_path)) + ": ") if e.absolute_path else "") + e.message
            for e in validator.iter_errors(instance)]


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and math.isfinite(v) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def _check(v: Any, s: Mapping[str, Any], at: str) -> list[str]:
    """A small JSON-schema checker: type, enum, const, anyOf/oneOf/allOf, object, array,
    string and number bounds. Enough for the schemas built here."""
    where = f"{at}: " if at else ""
    if s is True or s == {}:
        return []
    if s is False:
        return [f"{where}not allowed"]
    t = s.get("type")
    if t is not None:
        types = [t] if isinstance(t, str) else list(t)
        if not any(_TYPES[x](v) for x in types):
            return [f"{where}{v!r} is not of type {' or '.join(types)}"]
    errs: list[str] = []
    if "const" in s and v != s["const"]:
        errs.append(f"{where}{v!r} is not {s['const']!r}")
    if "enum" in s and v not in s["enum"]:
        errs.append(f"{where}{v!r} is not one of {', '.join(map(str, s['enum']))}")
    if "anyOf" in s and not any(not _check(v, o, at) for o in s["anyOf"]):
        errs.append(f"{where}{_short(v)} matches none of the allowed forms")
    if "oneOf" in s and sum(not _check(v, o, at) for o in s["oneOf"]) != 1:
        errs.append(f"{where}{_short(v)} does not match exactly one allowed form")
    for sub in s.get("allOf", []):
        errs += _check(v, sub, at)
    if isinstance(v, str):
        if len(v) > s.get("maxLength", math.inf):
            errs.append(f"{where}longer than {s['maxLength']} characters")
        if len(v) < s.get("minLength", 0):
            errs.append(f"{where}shorter than {s['minLength']} characters")
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append(f"{where}{v!r} does not match {s['pattern']}")
    if _TYPES["number"](v):
        if v > s.get("maximum", math.inf) or v < s.get("minimum", -math.inf):
            errs.append(f"{where}{v!r} is outside {s.get('minimum', '')}..{s.get('maximum', '')}")
    if isinstance(v, list):
        if len(v) > s.get("maxItems", math.inf) or len(v) < s.get("minItems", 0):
            errs.append(f"{where}has {len(v)} items")
        if isinstance(s.get("items"), Mapping):
            for i, item in enumerate(v):
                errs += _check(item, s["items"], f"{at}[{i}]")
    if isinstance(v, dict):
        props = s.get("properties", {})
        for key in s.get("required", []):
            if key not in v:
                errs.append(f"{where}missing required property '{key}'")
        if len(v) > s.get("maxProperties", math.inf) or len(v) < s.get("minProperties", 0):
            errs.append(f"{where}has {len(v)} properties")
        extra = s.get("additionalProperties", True)
        for key, item in v.items():
            sub_at = f"{at}.{key}" if at else str(key)
            if "propertyNames" in s:
                errs += [f"{sub_at}: key {e}" for e in _check(key, s["propertyNames"], "")]
            if key in props:
                errs += _check(item, props[key], sub_at)
            elif extra is False:
                errs.append(f"{where}unexpected property '{key}'")
            elif isinstance(extra, Mapping):
                errs += _check(item, extra, sub_at)
    return errs


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."
