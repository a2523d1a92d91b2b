"""One planning turn: ask the model, read its output, repair once, or fail cleanly.

``plan_turn`` is what the agent's plan node calls. It never raises for a bad model output:
the result carries a status, ``ok`` (tool calls or an answer), ``invalid_action`` (no usable
output after one repair turn that showed the model its error) or ``model_error`` (the backend
failed: unreachable server, missing weights). Every model call is kept as a ``ModelCall``
record for the trace (raw output, tokens, latency, constrained or not, prompt hashes).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from .grounding import ground_filters, unasked_filters
from .protocol.parser import parse_output, validate_calls
from .protocol.prompting import prompt_ids, repair_messages
from .protocol.schema import action_schema
from .protocol.types import ParsedOutput

Status = Literal["ok", "invalid_action", "model_error"]


@dataclass
class ModelCall:
    raw_output: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    constrained: bool
    prompts: dict[str, str] = field(default_factory=dict)  # prompt name -> sha256
    repair: bool = False
    error: str | None = None


@dataclass
class TurnResult:
    status: Status
    parsed: ParsedOutput
    calls: list[ModelCall] = field(default_factory=list)
    error: str | None = None

    @property
    def repaired(self) -> bool:
        return self.status == "ok" and len(self.calls) > 1

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)


def _invoke(model: BaseChatModel, messages: Sequence[BaseMessage], schema: dict | None, repair: bool) -> ModelCall:
    start = time.perf_counter()
    kwargs: dict[str, Any] = {"json_schema": schema} if schema is not None else {}
    message = model.invoke(list(messages), **kwargs)
    usage = getattr(message, "usage_metadata", None) or {}
    meta = getattr(message, "response_metadata", None) or {}
    content = message.content if isinstance(message.content, str) else str(message.content)
    # A backend whose server refused the grammar answered unconstrained, and says why.
    constrained = schema is not None and meta.get("constrained", True) is not False
    return ModelCall(raw_output=content, input_tokens=int(usage.get("input_tokens", 0)),
                     output_tokens=int(usage.get("output_tokens", 0)),
                     latency_s=time.perf_counter() - start, constrained=constrained,
                     prompts=prompt_ids(messages), repair=repair, error=meta.get("grammar_note") or None)


def read_output(raw: str, schemas: Sequence[Mapping[str, Any]]) -> tuple[ParsedOutput, str | None]:
    """Parse and validate one output; the error says what is wrong, for the repair turn."""
    parsed = parse_output(raw, [s["name"] for s in schemas])
    if parsed.kind == "invalid":
        return parsed, parsed.error or "no tool call or answer found"
    if parsed.error:  # e.g. a call to an unknown tool
        return parsed, parsed.error
    if parsed.kind == "calls":
        problems = validate_calls(parsed.calls, schemas)
        if problems:
            return parsed, "; ".join(problems)
    return parsed, None


def plan_turn(model: BaseChatModel, messages: Sequence[BaseMessage], schemas: Sequence[Mapping[str, Any]], *,
              constrained: bool = True, narrow: Mapping[str, Sequence[Any]] | None = None,
              thinking: bool = False, repair: bool = True) -> TurnResult:
    """Ask for the next action. ``constrained`` uses the backend's JSON-schema decoding when
    it has one (not with ``thinking``: a grammar that starts at '{' leaves no room to think)."""
    schema = None
    if constrained and not thinking and getattr(model, "supports_json_schema", False):
        schema = action_schema(schemas, narrow=narrow, omit=unasked_filters(messages, schemas))
    records: list[ModelCall] = []
    attempt_messages = list(messages)
    parsed = ParsedOutput(kind="invalid", error="not run")
    for attempt in range(2 if repair else 1):
        try:
            call = _invoke(model, attempt_messages, schema, repair=attempt > 0)
        except Exception as exc:  # the backend failed; the output was never seen
            message = f"{type(exc).__name__}: {exc}"
            records.append(ModelCall("", 0, 0, 0.0, schema is not None, error=message, repair=attempt > 0))
            return TurnResult("model_error", ParsedOutput(kind="invalid", error=message), records, message)
        records.append(call)
        parsed, error = read_output(call.raw_output, schemas)
        if error is None:
            note = ground_filters(parsed, messages)
            if note:
                call.error = f"{call.error}; {note}" if call.error else note
            return TurnResult("ok", parsed, records)
        call.error = f"{call.error}; {error}" if call.error else error
        attempt_messages = repair_messages(messages, call.raw_output, error)
    return TurnResult("invalid_action", parsed, records, error)
