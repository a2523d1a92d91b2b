"""What the parser reads out of one model output: tool calls, or a final answer, or neither."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ToolCall(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ParsedOutput(BaseModel):
    """The pure parser's reading of a raw model output.

    Exactly one of: ``calls`` non-empty (act), ``answer`` set (finish), or ``error`` set
    (nothing usable: the caller repairs or fails the step with status ``invalid_action``).
    """

    kind: Literal["calls", "answer", "invalid"]
    calls: list[ToolCall] = Field(default_factory=list)
    answer: str | None = None
    thinking: str | None = None   # MedGemma's <unused94>thought ... <unused95> text, kept for the trace
    error: str | None = None      # why nothing usable was found
    shape: str = ""               # which output shape matched (json, fenced_json, tool_code, ...), for stats
