"""Read one raw model output into tool calls, a final answer, or an error. Pure: no model, no I/O.

``parse_output(text, tool_names)`` accepts what MedGemma/Gemma (and small base models) write:
JSON calls in several dialects, fenced or bare, Python-style calls in ```tool_code blocks
(read with ``ast``, never evaluated), several calls in a turn, MedGemma thinking markers,
prose around the call, ``Final answer:`` lines, slightly broken JSON (repaired with
json-repair) and Gemma turn-marker leftovers. ``ParsedOutput.shape`` names what matched.

``validate_calls(calls, schemas)`` checks the arguments against each tool's JSON schema.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from typing import Any, Iterable, Mapping

import json_repair

from .schema import by_name, schema_errors
from .types import ParsedOutput, ToolCall

OBSERVATION_HEADER = "TOOL RESULT"   # how tool results start (prompting.py); a model inventing one is cut there
THINK_OPEN, THINK_CLOSE = "<unused94>", "<unused95>"

_NAME_KEYS = ("tool", "tool_name", "action", "function", "name")
_ARGS_KEYS = ("args", "arguments", "parameters", "params", "input", "action_input", "tool_input")
_ANSWER_KEYS = ("answer", "final_answer", "finalAnswer", "final answer", "Final Answer", "final")
_THOUGHT_KEYS = ("thought", "thinking", "reasoning")
_FINAL_ACTIONS = {"final answer", "final_answer", "answer", "finish"}
_JSON_LANGS = {"json", "", "jsonc", "json5", "javascript", "js"}
_PY_LANGS = {"tool_code", "python", "py", "tool_call", "tool"}
_IDENT = re.compile(r"^[A-Za-z_][\w\-]*(\.[A-Za-z_][\w\-]*)*$")
_SPECIAL = re.compile(r"<(bos|eos|pad|start_of_image|end_of_image)>")
_CUT = re.compile(rf"<end_of_turn>|<start_of_turn>|^\s*{OBSERVATION_HEADER}\b|^(user|model)\s*$", re.M)
_FENCE = re.compile(r"```[ \t]*([\w\-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.S)
_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)
_MARKER = re.compile(r"^[ \t>#*_]*(final[ \t_]+answer|answer)[ \t*_]*[:：][ \t*_]*", re.I | re.M)
_CALLISH = re.compile(r"[{,]\s*[\"']?(tool|tool_name|tool_calls|function|args|arguments|action|answer|final_answer)[\"']?\s*:")
_NAMED = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None, "none": None}


class _Bad(Exception):
    """A protocol-shaped output that cannot be used: (message for ``error``, shape)."""


class _Found:
    """What the strategies found so far."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self.answers: list[str] = []
        self.thoughts: list[str] = []


def parse_output(text: str | None, tool_names: Iterable[str] | None = None) -> ParsedOutput:
    """Read ``text`` into ``calls`` (act), ``answer`` (finish) or ``error`` (invalid)."""
    names = list(dict.fromkeys(tool_names)) if tool_names is not None else None
    thinking, body, think_error = _split_thinking(_clean(text or ""))
    invalid = dict(kind="invalid", thinking=thinking)
    if think_error:
        return ParsedOutput(**invalid, error=think_error, shape="thinking_only")
    body = _cut(body)
    if not body:
        return ParsedOutput(**invalid, error="empty output" + (" after the thinking" if thinking else ""),
                            shape="thinking_only" if thinking else "empty")
    found = _Found()
    try:
        shape = _read(body, names, found)
    except _Bad as bad:
        return ParsedOutput(**invalid, error=bad.args[0], shape=bad.args[1])
    thinking = "\n".join(t for t in (thinking, *found.thoughts) if t) or None
    if found.calls:
        unknown = [c.name for c in found.calls if names is not None and c.name not in names]
        if unknown:
            return ParsedOutput(kind="invalid", thinking=thinking, shape=shape, error=_unknown(unknown, names or []))
        return ParsedOutput(kind="calls", calls=_dedupe(found.calls), thinking=thinking, shape=shape)
    answer = "\n".join(found.answers).replace(THINK_OPEN, "").replace(THINK_CLOSE, "").strip()
    if answer.startswith("**") and answer.endswith("**") and answer.count("**") == 2:
        answer = answer[2:-2].strip()
    if not answer:
        return ParsedOutput(kind="invalid", thinking=thinking, error="the final answer is empty", shape=shape)
    return ParsedOutput(kind="answer", answer=answer, thinking=thinking, shape=shape)


def validate_calls(calls: Iterable[ToolCall], schemas: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> list[str]:
    """Errors in ``calls`` against the tools' JSON schemas (``tool_schemas`` output): unknown
    tool, missing required or unknown arguments, wrong types and enum values. A ``null`` for
    an optional argument is accepted (it means "not given"). Empty list: all valid."""
    tools = by_name(schemas)
    errors: list[str] = []
    for call in calls:
        spec = tools.get(call.name)
        if spec is None:
            errors.append(_unknown([call.name], list(tools)))
            continue
        params = spec.get("parameters") or {}
        props: dict[str, Any] = params.get("properties") or {}
        required = list(params.get("required") or [])
        errors += [f"{call.name}: missing required argument '{a}'" for a in required if call.args.get(a) is None]
        for arg, value in call.args.items():
            if arg not in props:
                errors.append(f"{call.name}: unknown argument '{arg}' (its arguments: {', '.join(props) or 'none'})")
            elif value is not None:
                errors += [f"{call.name}.{arg}: {e}" for e in schema_errors(value, props[arg])]
    return errors


def format_call(call: ToolCall) -> str:
    """The canonical one-line JSON of a call, as the prompts show it."""
    return json.dumps({"tool": call.name, "args": call.args}, ensure_ascii=False)


def strip_thinking(text: str) -> str:
    """``text`` without MedGemma's thinking block, Gemma turn markers or what follows them."""
    return _cut(_split_thinking(_clean(text or ""))[1])


# -- cleaning ----------------------------------------------------------------------------------

def _clean(text: str) -> str:
    return re.sub(r"^\s*<start_of_turn>\s*model\b\s*", "", _SPECIAL.sub("", text)).strip()


def _split_thinking(text: str) -> tuple[str | None, str, str | None]:
    """(thinking, the rest, error) from ``<unused94>thought\\n...<unused95>rest``."""
    if THINK_CLOSE not in text:
        if THINK_OPEN in text:
            before, _, after = text.partition(THINK_OPEN)
            return _thought(after), "", "the thinking never ended (no <unused95>): the output was cut off"
        return None, text, None
    before, _, after = text.partition(THINK_OPEN) if THINK_OPEN in text else ("", "", text)
    thought, _, rest = after.partition(THINK_CLOSE)
    rest = (before + "\n" + rest).replace(THINK_OPEN, "").replace(THINK_CLOSE, "")
    return _thought(thought), rest.strip(), None


def _thought(text: str) -> str | None:
    return re.sub(r"^\s*thought[ \t]*(\n|$)", "", text).strip() or None


def _cut(text: str) -> str:
    """Everything before a turn marker or an invented tool result (a base model runs on)."""
    m = _CUT.search(text)
    return (text[:m.start()] if m else text).strip()


def _unknown(unknown: list[str], names: list[str]) -> str:
    parts = [f"'{name}'" + "".join(f" (did you mean '{c}'?)" for c in difflib.get_close_matches(name, names, 1, 0.75))
             for name in dict.fromkeys(unknown)]
    return f"unknown tool {', '.join(parts)}; the tools are: {', '.join(names) or 'none'}"


def _dedupe(calls: list[ToolCall]) -> list[ToolCall]:
    seen: dict[str, ToolCall] = {}
    for c in calls:
        seen.setdefault(json.dumps([c.name, c.args], sort_keys=True, default=str), c)
    return list(seen.values())


# -- reading -----------------------------------------------------------------------------------

def _read(body: str, names: list[str] | None, found: _Found) -> str:
    """Fill ``found`` from the first strategy that finds protocol content; return its shape."""
    for shape, fragments in (("tool_call_tag", [("json", c) for c in _TAG.findall(body)]),
                             ("fenced_json", [(lang.lower(), c) for lang, c in _FENCE.findall(body)]),
                             ("json", [("strict", body)] if body[0] in "{[" else [])):
        kinds = [_fragment(lang, content, names, found) for lang, content in fragments]
        if found.calls or found.answers:
            return next((k for k in kinds if k in ("tool_code", "repaired_json")), shape)
    for shape, reader in (("json_in_prose", _json_in_prose), ("python_call", _python_in_prose)):
        kind = reader(body, names, found)
        if found.calls or found.answers:
            return kind or shape
    marker = _MARKER.search(body)
    if marker:
        found.answers.append(body[marker.end():])
        return "answer_marker"
    if re.match(r"\{|\[\s*[{\"']", body) or "<tool_call>" in body or _CALLISH.search(body) or body.count("```") % 2 \
            or re.search(r"```[ \t]*(json|tool_code|python|py)\b", body) \
            or (names and re.search(rf"\b({'|'.join(map(re.escape, names))})\s*\(", body)):
        raise _Bad('the output looks like a tool call but could not be read; write one JSON object '
                   '{"tool": ..., "args": {...}}', "failed_call")
    found.answers.append(body)
    return "prose"


def _fragment(lang: str, content: str, names: list[str] | None, found: _Found) -> str | None:
    """Read one fenced/tagged/whole fragment into ``found``; the kind read, or None."""
    content = content.strip()
    if not content:
        return None
    if lang in _PY_LANGS or (lang == "" and _py_calls(content, names, strict=False)):
        found.calls += _py_calls(content, names, strict=lang in _PY_LANGS) or []
        return "tool_code"
    if lang not in _JSON_LANGS and lang != "strict":
        return None
    values, kind = _json_values(content, repair=lang != "strict")
    return kind if any([_interpret(v, names, found) for v in values]) else None


def _json_values(content: str, repair: bool = True) -> tuple[list[Any], str]:
    """The JSON values in ``content`` (one, or several in a row), repaired if needed and allowed."""
    values, pos, decoder = [], 0, json.JSONDecoder(strict=False)
    try:
        while pos < len(content):
            value, pos = decoder.raw_decode(content, pos)
            values.append(value)
            while pos < len(content) and content[pos] in " \t\r\n,;":
                pos += 1
        return values, "json"
    except ValueError:
        pass
    if not repair or not (_CALLISH.search(content) or content[:1] in "{["):
        return [], ""
    end, in_string, last = _scan(content)
    if end is None and (in_string or last in (":", ",")):
        raise _Bad("the output was cut off inside a JSON value (truncated); reply with one complete JSON object",
                   "truncated")
    repaired = json_repair.repair_json(content, return_objects=True)
    return ([repaired], "repaired_json") if repaired not in ("", None, [], {}) else ([], "")


def _scan(text: str, start: int = 0) -> tuple[int | None, bool, str]:
    """Scan JSON-ish text from ``start``: (index after the bracket that closes the first one,
    or None; ended inside a string; last non-space character). A single quote opens a string
    only where a key or value can start, so apostrophes in prose do not count."""
    quote: str | None = None
    escaped, depth, last = False, 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            escaped, quote = (False, quote) if escaped else (ch == "\\", None if ch == quote else quote)
        elif ch == '"' or (ch == "'" and last in "{[:,"):
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth <= 0:
                return i + 1, False, ch
        if not ch.isspace():
            last = ch
    return None, quote is not None, last


def _interpret(value: Any, names: list[str] | None, found: _Found) -> bool:
    """Add the calls/answer a JSON value stands for to ``found``; False when it is not protocol."""
    if isinstance(value, list):
        return any([_interpret(v, names, found) for v in value])
    if not isinstance(value, dict):
        return False
    thoughts = [value[k] for k in _THOUGHT_KEYS if isinstance(value.get(k), str) and value[k].strip()]
    args_key = next((k for k in _ARGS_KEYS if k in value), None)
    action = value.get("action")
    fn = value.get("function")
    name_key = next((k for k in _NAME_KEYS if isinstance(value.get(k), str) and _IDENT.match(value[k].strip())
                     and (k != "name" or args_key or value[k] in (names or ()))), None)
    if isinstance(value.get("tool_calls"), list):
        return _interpret(value["tool_calls"], names, found)
    if isinstance(fn, dict) and isinstance(fn.get("name"), str):
        found.calls.append(_call(fn["name"], next((fn[k] for k in _ARGS_KEYS if k in fn), None)))
    elif isinstance(action, str) and action.strip().lower() in _FINAL_ACTIONS:
        found.answers.append(_text(value.get("action_input", value.get("answer", ""))))
    elif name_key is not None:
        skip = {name_key, "type", "id", *_THOUGHT_KEYS, *_ANSWER_KEYS}  # flat: {"tool": T, "resource_type": ...}
        args = value[args_key] if args_key else {k: v for k, v in value.items() if k not in skip}
        found.calls.append(_call(value[name_key], args))
    elif any(value.get(k) is not None for k in _ANSWER_KEYS):
        found.answers.append(_text(next(value[k] for k in _ANSWER_KEYS if value.get(k) is not None)))
    elif names and len(value) == 1 and next(iter(value)) in names and isinstance(next(iter(value.values())), dict):
        found.calls.append(_call(*next(iter(value.items()))))  # {"search_records": {"resource_type": ...}}
    else:
        return False
    found.thoughts += thoughts
    return True


def _call(name: str, args: Any) -> ToolCall:
    name = name.strip().rsplit(".", 1)[-1]  # functions.search_records, default_api.search_records
    if isinstance(args, str) and args.strip():
        try:
            args = json.loads(args)
        except ValueError:
            args = json_repair.repair_json(args, return_objects=True)
    args = {} if args in (None, "") else args
    if not isinstance(args, dict):
        raise _Bad(f"the arguments of {name} must be a JSON object of name: value, got {json.dumps(args)[:80]}",
                   "bad_call")
    return ToolCall(name=name, args={str(k): v for k, v in args.items()})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- JSON and Python calls inside prose ---------------------------------------------------------

def _json_in_prose(body: str, names: list[str] | None, found: _Found) -> str | None:
    decoder, pos = json.JSONDecoder(strict=False), 0
    while (m := re.compile(r"[{\[]").search(body, pos)) is not None:
        try:
            value, end = decoder.raw_decode(body, m.start())
        except ValueError:
            if body[m.start()] == "{" and _CALLISH.match(body, m.start()) and not (found.calls or found.answers):
                values, _ = _json_values(body[m.start():_scan(body, m.start())[0]])
                if any([_interpret(v, names, found) for v in values]):
                    return "repaired_json"
            pos = m.start() + 1
            continue
        pos = end if _interpret(value, names, found) else m.start() + 1
    return None


def _python_in_prose(body: str, names: list[str] | None, found: _Found) -> str | None:
    for line in body.splitlines():
        found.calls += _py_calls(line.strip().rstrip(";"), names, strict=False) or []
    if not found.calls and names:  # inline: "I will call search_records(resource_type='Condition')."
        for m in re.finditer(rf"\b({'|'.join(map(re.escape, names))})\s*\(", body):
            for close in (i for i in range(m.end(), len(body)) if body[i] == ")"):
                got = _py_calls(body[m.start():close + 1], names, strict=False)
                if got:
                    found.calls += got
                    break
    return None


def _py_calls(code: str, names: list[str] | None, strict: bool) -> list[ToolCall] | None:
    """Calls in Python source (``name(a=1)``, ``print(api.name(...))``, ``x = name(...)``), read
    with ``ast`` into literal values only. ``strict`` (a tool_code block): problems raise."""
    try:
        tree = ast.parse(code.strip())
    except SyntaxError as exc:
        if strict:
            raise _Bad(f"the tool_code block is not valid Python ({exc.msg}); write name(arg=\"value\")", "bad_call")
        return None
    calls = []
    for stmt in tree.body:
        node = stmt.value if isinstance(stmt, (ast.Expr, ast.Assign)) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print" \
                and len(node.args) == 1 and isinstance(node.args[0], ast.Call):
            node = node.args[0]
        name = _dotted(node.func) if isinstance(node, ast.Call) else None
        if name is None:
            if strict:
                raise _Bad('a tool_code block holds only calls such as search_records(resource_type="Condition")',
                           "bad_call")
            return None
        name = name.rsplit(".", 1)[-1]
        if not strict and (names is None and "_" not in name and not node.keywords
                           or names is not None and name not in names and node.args and not node.keywords):
            return None  # prose such as "max(a, b)", not a tool call
        if node.args or any(k.arg is None for k in node.keywords):
            raise _Bad(f"{name}: pass arguments by name, e.g. {name}(resource_type=\"Condition\")", "bad_call")
        try:
            calls.append(ToolCall(name=name, args={k.arg: _literal(k.value) for k in node.keywords}))
        except ValueError as exc:
            raise _Bad(f"{name}: argument values must be literals (text, numbers, lists, dicts): {exc}", "bad_call")
    return calls or None


def _dotted(node: ast.expr) -> str | None:
    base = _dotted(node.value) if isinstance(node, ast.Attribute) else None
    return node.id if isinstance(node, ast.Name) else (f"{base}.{node.attr}" if base else None)


def _literal(node: ast.expr) -> Any:
    """A Python/JSON literal, never evaluated: constants, lists, tuples, dicts, signed numbers."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED:
        return _NAMED[node.id]
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {str(_literal(k)): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise ValueError(ast.dump(node)[:60])
