"""A chat model that replays recorded outputs: tests, and replaying a run from its trace.

Outputs come from a JSONL file (``scripted:FILE``), one per line, either

    {"output": "...", "input_tokens": 12, "output_tokens": 7}     (token counts optional)

or a trace file's model-call records, ``{"type": "model_call", "raw_output": "...", ...}`` (a line
with a ``type`` is a trace record: any other type is skipped), or from ``outputs=[...]`` (strings or
such dicts) in memory. Each call
returns the next output; ``.calls`` keeps what each call was given, so tests can assert on prompts.
The model cannot constrain anything: ``json_schema=`` is recorded and otherwise ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field, PrivateAttr


class ScriptExhaustedError(RuntimeError):
    """More calls than recorded outputs."""


@dataclass
class ScriptedCall:
    """What one call was given."""

    messages: list[BaseMessage]
    json_schema: dict[str, Any] | None = None
    stop: list[str] | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All message texts, joined: handy for ``assert "HbA1c" in call.text``."""
        return "\n\n".join(m.text for m in self.messages)


@dataclass(frozen=True)
class _Recorded:
    output: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    where: str = ""   # "FILE:LINE" or "outputs[i]"


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _record(item: Any, where: str) -> _Recorded | None:
    """One output from a string or a dict; None for trace records that are not model calls."""
    if isinstance(item, str):
        return _Recorded(item, where=where)
    if not isinstance(item, dict):
        raise ValueError(f"scripted: {where}: expected a string or an object, got {type(item).__name__}")
    if "type" in item:  # a trace record: only model calls are outputs (tool calls have "output" too)
        if item["type"] != "model_call":
            return None
        if "raw_output" not in item:
            raise ValueError(f"scripted: {where}: a model_call record without \"raw_output\"")
        text = item["raw_output"]
    elif "output" in item:
        text = item["output"]
    else:
        raise ValueError(f"scripted: {where}: a line needs \"output\" (or a trace's model_call with \"raw_output\")")
    if not isinstance(text, str):
        raise ValueError(f"scripted: {where}: the output must be a string, got {type(text).__name__}")
    usage = item.get("usage") if isinstance(item.get("usage"), dict) else {}
    inp = _int(item.get("input_tokens", usage.get("input_tokens", usage.get("prompt_tokens"))))
    out = _int(item.get("output_tokens", usage.get("output_tokens", usage.get("completion_tokens"))))
    return _Recorded(text, inp, out, where)


def load_script(path: str | Path) -> list[_Recorded]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scripted: {path} does not exist (give a JSONL file of {{\"output\": ...}} lines "
                                "or a trace file)")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"scripted: {path}:{lineno} is not JSON: {exc.msg}") from exc
            record = _record(item, f"{path}:{lineno}")
            if record is not None:
                records.append(record)
    if not records:
        raise ValueError(f"scripted: {path} holds no outputs")
    return records


def _words(text: str) -> int:
    return len(text.split())


class ScriptedChatModel(BaseChatModel):
    """Replays outputs in order; running out raises ScriptExhaustedError naming the source and call."""

    path: str | None = Field(None, description="JSONL file of outputs or a trace file")
    outputs: list[Any] | None = Field(None, description="In-memory outputs (strings or {output, ...} dicts)")
    model_name: str = "scripted"

    supports_json_schema: bool = False

    _script: list[_Recorded] = PrivateAttr(default_factory=list)
    _calls: list[ScriptedCall] = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        if (self.path is None) == (self.outputs is None):
            raise ValueError("scripted: give exactly one of path= or outputs=")
        if self.path is not None:
            self._script = load_script(self.path)
        else:
            self._script = [r for i, item in enumerate(self.outputs or [])
                            if (r := _record(item, f"outputs[{i}]")) is not None]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"path": self.path, "outputs": len(self._script)}

    @property
    def calls(self) -> list[ScriptedCall]:
        return self._calls

    @property
    def remaining(self) -> int:
        return len(self._script) - len(self._calls)

    def reset(self) -> None:
        """Start over from the first output, forgetting the recorded calls."""
        self._calls.clear()

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        number = len(self._calls) + 1
        schema = kwargs.pop("json_schema", None)
        if number > len(self._script):
            source = self.path if self.path is not None else "the in-memory outputs"
            raise ScriptExhaustedError(f"scripted: {source} has {len(self._script)} output(s); call {number} "
                                       "asked for one more")
        self._calls.append(ScriptedCall(list(messages), schema, list(stop) if stop else None, dict(kwargs)))
        record = self._script[number - 1]
        inp = record.input_tokens if record.input_tokens is not None else sum(_words(m.text) for m in messages)
        out = record.output_tokens if record.output_tokens is not None else _words(record.output)
        message = AIMessage(
            content=record.output,
            usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out},
            response_metadata={"model": self.model_name, "model_name": self.model_name, "call": number,
                               "source": record.where, "finish_reason": "stop", "latency_s": 0.0,
                               "structured_output": None},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
