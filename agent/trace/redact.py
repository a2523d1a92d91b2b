"""``--redact``: trace records with the patient content taken out, before anything is written.

What stays is what evaluation and replay need: the shape of the run (record types, steps, tool
names, argument names, enum-like argument values, routing), every count, latency and token
number, prompt hashes, and for each removed text its length and sha256, so a replay can still
tell whether the model produced the same output. What goes is everything a patient could be
recognised from: prompts, model outputs and thinking, free-text tool arguments, tool results,
the question and the answer, and the detail of error messages (they often quote an argument).

Resource ids are opaque server ids and are kept; ``drop_ids=True`` replaces each by a stable
pseudonym (``Observation/redacted-<hash>``) so citations can still be matched to tool results
within one trace.

Argument values are replaced without a hash: a short value such as ``8.7`` or a birth date is
found again from its sha256 by trying the few plausible values, so hashing would not hide it.

All functions are pure: they return new records and never change the one given.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping

import orjson

from .records import ModelCallRecord, RouteRecord, RunEnd, RunHeader, ToolCallRecord, TraceRecord

MARK = "[redacted"
# Arguments whose values are enum-like settings, kept when they look like a token.
SAFE_ARGS = frozenset({"resource_type", "kind", "priority", "sort", "limit", "status", "category", "confirm"})
# Arguments that hold resource references: kept like resource ids (pseudonymised with drop_ids).
ID_ARGS = frozenset({"reference", "patient_id"})

_TOKEN = re.compile(r"^-?[A-Za-z][A-Za-z0-9_\-]{0,39}$")                 # 'Observation', '-date', 'vital-signs'
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.\-]{0,39}$")                   # a FHIR search parameter name
_REFERENCE = re.compile(r"^(?:([A-Z][A-Za-z]{1,63})/)?([A-Za-z0-9\-.]{1,64})$")
_HEAD = re.compile(r"^[A-Za-z_][A-Za-z_ .\-]{0,59}$")                     # 'KeyError', 'refused', 'max_steps'


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_marker(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(MARK)


def text_marker(text: str) -> str:
    """``[redacted: N chars, sha256:HEX]`` — length and hash of a removed text (idempotent)."""
    if is_marker(text):
        return text
    return f"{MARK}: {len(text)} chars, sha256:{sha256(text)}]"


def value_marker(value: Any) -> str:
    """``[redacted: N chars]`` — for short values, where a hash would give the value away."""
    if is_marker(value):
        return value
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return f"{MARK}: {len(text)} chars]"


def pseudonym(ref: str) -> str:
    """A stable stand-in for a resource id or ``Type/id`` reference (the type is kept)."""
    ref = str(ref)
    rtype, _, rid = ref.rpartition("/")
    if rid.startswith("redacted-"):
        return ref
    if rtype and re.fullmatch(r"[A-Z][A-Za-z]{1,63}", rtype):
        return f"{rtype}/redacted-{sha256(ref)[:12]}"
    return f"redacted-{sha256(ref)[:12]}"


def redact_message(text: str | None, keep_plain: bool = False) -> str | None:
    """An error or routing reason: keep a ``head:`` made of words only ('KeyError', 'refused',
    'max_steps'), replace the rest. ``keep_plain`` keeps a short text without a colon whole
    (routing reasons such as 'final answer' or 'search_records, read_record' are code constants
    and tool names)."""
    if text is None or text == "" or is_marker(text):
        return text
    head, sep, tail = text.partition(":")
    if sep and _HEAD.match(head.strip()):
        tail = tail.strip()
        return f"{head.strip()}: {value_marker(tail)}" if tail else f"{head.strip()}:"
    if keep_plain and not sep and len(text) <= 80 and "'" not in text and '"' not in text:
        return text
    return value_marker(text)


def redact_value(name: str, value: Any, drop_ids: bool = False) -> Any:
    """One tool argument's value: kept when ``name`` is an enum-like setting and the value looks
    like one, kept (or pseudonymised) when it is a reference, else replaced by a marker.
    Objects keep their keys (search parameter names), lists their length."""
    if value is None or is_marker(value):
        return value
    if isinstance(value, Mapping):
        return {(k if isinstance(k, str) and _KEY.match(k) else value_marker(k)): redact_value("", v, drop_ids)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(name, v, drop_ids) for v in value]
    if name in SAFE_ARGS:
        if isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str) and all(_TOKEN.match(part.strip()) for part in value.split(",")):
            return value
    if name in ID_ARGS and isinstance(value, str) and _REFERENCE.match(value.strip()):
        return pseudonym(value.strip()) if drop_ids else value
    return value_marker(value)


def redact_args(args: Mapping[str, Any], drop_ids: bool = False) -> dict[str, Any]:
    """Tool arguments with their names kept and their free-text values replaced."""
    return {name: redact_value(name, value, drop_ids) for name, value in args.items()}


def redact_parsed(parsed: Mapping[str, Any] | None, drop_ids: bool = False) -> dict[str, Any] | None:
    """A ParsedOutput dict: kind, shape and tool names kept, arguments redacted, texts replaced,
    and ``redacted: {chars, sha256}`` of the whole original (so a replay can compare it)."""
    if parsed is None:
        return None
    if isinstance(parsed.get("redacted"), Mapping):  # already redacted
        return dict(parsed)
    whole = orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str).decode()
    out: dict[str, Any] = {"kind": parsed.get("kind"), "shape": parsed.get("shape", "")}
    calls = parsed.get("calls") or []
    out["calls"] = [{"name": c.get("name"), "args": redact_args(c.get("args") or {}, drop_ids)}
                    if isinstance(c, Mapping) else value_marker(c) for c in calls]
    for key in ("answer", "thinking"):
        if parsed.get(key) is not None:
            out[key] = text_marker(str(parsed[key]))
    if parsed.get("error") is not None:
        out["error"] = redact_message(str(parsed["error"]))
    out["redacted"] = {"chars": len(whole), "sha256": sha256(whole)}
    return out


def redact_record(record: TraceRecord, drop_ids: bool = False) -> TraceRecord:
    """The record as ``--redact`` writes it (see the module docstring for what is kept)."""
    ids = (lambda refs: [pseudonym(r) for r in refs]) if drop_ids else list
    if isinstance(record, RunHeader):
        return record.model_copy(update={
            "question": text_marker(record.question),
            "patient_id": pseudonym(record.patient_id) if (drop_ids and record.patient_id) else record.patient_id,
            "redacted": True})
    if isinstance(record, ModelCallRecord):
        prompt_sha = record.prompt_sha256
        if not prompt_sha and record.prompt_messages:
            prompt_sha = sha256(orjson.dumps(record.prompt_messages).decode())
        return record.model_copy(update={
            "prompt_messages": None, "prompt_sha256": prompt_sha,
            "raw_output": text_marker(record.raw_output) if record.raw_output else "",
            "parsed": redact_parsed(record.parsed, drop_ids),
            "thinking": text_marker(record.thinking) if record.thinking is not None else None,
            "error": redact_message(record.error)})
    if isinstance(record, ToolCallRecord):
        result = record.result_text
        if not is_marker(result):
            result = f"{MARK}: {len(result)} chars, {len(record.resource_ids)} resources]"
        return record.model_copy(update={
            "args": redact_args(record.args, drop_ids), "result_text": result,
            "resource_ids": ids(record.resource_ids), "error": redact_message(record.error)})
    if isinstance(record, RouteRecord):
        return record.model_copy(update={"reason": redact_message(record.reason, keep_plain=True)})
    if isinstance(record, RunEnd):
        return record.model_copy(update={
            "answer": text_marker(record.answer) if record.answer else "",
            "cited_ids": ids(record.cited_ids), "error": redact_message(record.error)})
    raise TypeError(f"not a trace record: {type(record).__name__}")
