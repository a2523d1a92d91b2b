"""The trace format: one JSON object per line, written as each step happens.

A run is: one ``run_header``, then ``model_call`` / ``tool_call`` / ``route`` records in the
order they happened, then one ``run_end``. Every record carries the run id, a sequence number
and a UTC timestamp. Records are defined once here (pydantic) and documented in the README.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel, Field

RunStatus = Literal["completed", "max_steps", "invalid_action", "tool_error", "context_limit", "error",
                    "interrupted"]   # interrupted: Ctrl-C or a chat stopping the turn
TRACE_VERSION = 1


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Record(BaseModel):
    run_id: str
    seq: int = 0
    ts: str = Field(default_factory=utc_now)


class RunHeader(_Record):
    type: Literal["run_header"] = "run_header"
    trace_version: int = TRACE_VERSION
    question: str
    patient_id: str | None = None
    strategy: str = "react"
    model: str                                   # the spec string, e.g. "embedded"
    config: dict[str, Any] = Field(default_factory=dict)     # settings that shape the run (budgets, constrained...)
    prompts: dict[str, str] = Field(default_factory=dict)    # prompt name -> sha256
    versions: dict[str, str] = Field(default_factory=dict)   # medagent, langgraph, transformers...
    seed: int | None = None
    now: str | None = None                       # the "current date" the run was told (--now)
    redacted: bool = False


class ModelCallRecord(_Record):
    type: Literal["model_call"] = "model_call"
    step: int
    node: str = "plan"                           # which graph node made the call
    prompt_messages: list[dict[str, str]] | None = None   # [{"role","content"}], omitted when redacted
    prompt_sha256: str = ""                      # hash of the whole prompt, always present
    raw_output: str = ""
    parsed: dict[str, Any] | None = None         # ParsedOutput as a dict
    thinking: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    constrained: bool = False
    repair: bool = False
    error: str | None = None


class ToolCallRecord(_Record):
    type: Literal["tool_call"] = "tool_call"
    step: int
    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    result_text: str = ""                        # what the planner saw (redacted: a summary only)
    resource_ids: list[str] = Field(default_factory=list)
    error: str | None = None
    latency_s: float = 0.0


class RouteRecord(_Record):
    type: Literal["route"] = "route"
    step: int
    source: str                                  # node the decision was made in
    target: str                                  # next node (or "end")
    reason: str = ""


class RunEnd(_Record):
    type: Literal["run_end"] = "run_end"
    status: RunStatus
    answer: str = ""
    cited_ids: list[str] = Field(default_factory=list)
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None


TraceRecord = Union[RunHeader, ModelCallRecord, ToolCallRecord, RouteRecord, RunEnd]
RECORD_TYPES: dict[str, type[_Record]] = {
    "run_header": RunHeader, "model_call": ModelCallRecord, "tool_call": ToolCallRecord,
    "route": RouteRecord, "run_end": RunEnd,
}


def parse_record(data: dict[str, Any]) -> TraceRecord:
    kind = data.get("type")
    if kind not in RECORD_TYPES:
        raise ValueError(f"unknown trace record type {kind!r}")
    return RECORD_TYPES[kind].model_validate(data)  # type: ignore[return-value]
