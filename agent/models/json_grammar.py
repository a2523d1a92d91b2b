"""JSON schema -> llguidance grammar, for constrained decoding (the embedded and hf backends).

``generation_schema`` narrows a schema to what decoding can enforce while accepting only outputs
the original schema accepts (objects closed, ``propertyNames`` turned into bounded patterns,
keywords llguidance lacks dropped with a warning); ``schema_grammar`` compiles it, cached.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = ("items", "additionalItems", "contains", "not", "if", "then", "else",
                  "propertyNames", "unevaluatedItems")


def generation_schema(schema: Any, *, _in_all_of: bool = False) -> Any:
    """The schema constrained decoding uses: a copy of ``schema`` that accepts a subset of what
    ``schema`` accepts, so every output still validates against the original.

    - Objects without ``additionalProperties`` get ``false``: the JSON-schema default lets an
      object carry any extra key, and a small model takes that chance (``{"tool": ..., "args":
      {...}, "code_id": ...}`` until the budget runs out). Members of ``allOf`` stay open
      (closing them would contradict each other).
    - ``propertyNames`` (which llguidance does not implement) becomes ``patternProperties``
      (a ``pattern`` with its ``maxLength``/``minLength`` folded into the regex, see
      ``bound_pattern``) or ``properties`` (an ``enum``/``const`` of names), with
      ``additionalProperties: false``.
    """
    if isinstance(schema, list):
        return [generation_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: generation_schema(v) for k, v in out[key].items()}
    for key in _SUBSCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [generation_schema(v) for v in out[key]]
    for key in _SUBSCHEMA_ONE:
        if isinstance(out.get(key), (dict, list)):
            out[key] = generation_schema(out[key])
    if isinstance(out.get("allOf"), list):
        out["allOf"] = [generation_schema(v, _in_all_of=True) for v in out["allOf"]]
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = generation_schema(out["additionalProperties"])
    if "propertyNames" in out:
        out = _property_names(out)
    is_object = out.get("type") == "object" or (
        isinstance(out.get("type"), list) and "object" in out["type"]) or "properties" in out
    if is_object and "additionalProperties" not in out and "unevaluatedProperties" not in out \
            and "patternProperties" not in out and not _in_all_of and "allOf" not in out:
        out["additionalProperties"] = False
    return out


close_objects = generation_schema  # the name the first callers used


def _property_names(node: dict[str, Any]) -> dict[str, Any]:
    names_schema = node.pop("propertyNames")
    extra = node.get("additionalProperties", True)
    if not isinstance(names_schema, dict) or extra is False or "patternProperties" in node:
        return node  # nothing to add (or a combination left to the output check)
    value_schema = extra if isinstance(extra, dict) else {}
    if "enum" in names_schema or "const" in names_schema:
        names = names_schema.get("enum", [names_schema.get("const")])
        props = dict(node.get("properties") or {})
        required = set(node.get("required") or [])
        for name in names:
            if isinstance(name, str) and name not in props:
                props[name] = value_schema
        node["properties"] = {k: v for k, v in props.items() if k in names or k in required}
    else:
        pattern = names_schema.get("pattern")
        lo, hi = names_schema.get("minLength"), names_schema.get("maxLength")
        if pattern is None and lo is None and hi is None:
            return node
        regex = bound_pattern(pattern if pattern is not None else ".*", lo, hi)
        if regex is None:  # a pattern too complex to bound: keep it, the length goes unchecked
            regex = pattern if pattern is not None else ".*"
        node["patternProperties"] = {regex: value_schema}
    node["additionalProperties"] = False
    return node


_ATOM = re.compile(r"""
    \[\^?\]?(?:\\.|[^\]\\])*\]   # character class
  | \\.                          # escape: \d \w \- ...
  | \.                           # any character
  | [^\\\[\](){}|?*+^$]          # literal
""", re.X)
_QUANT = re.compile(r"\*|\+|\?|\{(\d+)\}|\{(\d+),(\d*)\}")


def bound_pattern(pattern: str, min_length: int | None, max_length: int | None) -> str | None:
    r"""An anchored regex whose matches all match ``pattern`` and have ``min_length`` to
    ``max_length`` characters, or None when ``pattern`` is more than a sequence of single-character
    atoms (literals, escapes, ``.``, classes) with quantifiers.

    ``^[A-Za-z_][A-Za-z0-9_:.\-]*$`` with maxLength 40 gives ``^[A-Za-z_][A-Za-z0-9_:.\-]{0,39}$``:
    the unbounded repeats share what the bounded atoms leave of ``max_length``.
    """
    body = pattern[1:] if pattern.startswith("^") else pattern
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    atoms: list[list[Any]] = []  # [atom, lo, hi or None]
    pos = 0
    while pos < len(body):
        m = _ATOM.match(body, pos)
        if not m:
            return None
        pos = m.end()
        lo, hi = 1, 1
        q = _QUANT.match(body, pos)
        if q:
            pos = q.end()
            t = q.group(0)
            if t == "*":
                lo, hi = 0, None
            elif t == "+":
                lo, hi = 1, None
            elif t == "?":
                lo, hi = 0, 1
            elif q.group(1) is not None:
                lo = hi = int(q.group(1))
            else:
                lo, hi = int(q.group(2)), (int(q.group(3)) if q.group(3) else None)
            if body.startswith(("?", "+"), pos):  # lazy / possessive
                return None
        atoms.append([m.group(0), lo, hi])
    if not atoms:
        return None
    unbounded = [a for a in atoms if a[2] is None]
    if max_length is not None:
        spare = max_length - sum(a[2] for a in atoms if a[2] is not None) - sum(a[1] for a in unbounded)
        if spare < 0:
            return None
        for a in unbounded:
            a[2] = a[1] + spare // len(unbounded)
    elif unbounded and min_length is None:
        return "^" + body + "$"
    if min_length is not None:
        deficit = min_length - sum(a[1] for a in atoms)
        for a in atoms:
            if deficit <= 0:
                break
            room = (a[2] - a[1]) if a[2] is not None else deficit
            take = min(room, deficit)
            a[1] += take
            deficit -= take
        if deficit > 0:
            return None

    def quant(lo: int, hi: int | None) -> str:
        if hi is None:
            return "*" if lo == 0 else "+" if lo == 1 else f"{{{lo},}}"
        return "" if lo == hi == 1 else f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"

    return "^" + "".join(a[0] + quant(a[1], a[2]) for a in atoms) + "$"


_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[([^\]]*)\]")


def _drop_keys(schema: Any, keys: set[str]) -> Any:
    """``schema`` without the keywords ``keys`` anywhere (property names are not keywords)."""
    if isinstance(schema, list):
        return [_drop_keys(s, keys) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k in keys:
            continue
        if k in _SUBSCHEMA_MAPS and isinstance(v, dict):
            out[k] = {name: _drop_keys(sub, keys) for name, sub in v.items()}
        else:
            out[k] = _drop_keys(v, keys)
    return out


@lru_cache(maxsize=64)
def _grammar_for(schema_json: str) -> str:
    import llguidance

    schema = generation_schema(json.loads(schema_json))
    return llguidance.LLMatcher.grammar_from_json_schema(
        schema, defaults={"whitespace_flexible": False})


def schema_grammar(schema: dict[str, Any] | str) -> str:
    """The llguidance grammar for a JSON schema (dict or JSON text), compact JSON output."""
    if isinstance(schema, str):
        schema = json.loads(schema)
    if not isinstance(schema, dict):
        raise ValueError("json_schema must be a JSON object (a dict)")
    # Key order is kept: llguidance emits properties in the schema's order.
    return _grammar_for(json.dumps(schema))


# -- the loaded model ----------------------------------------------------------------------------
