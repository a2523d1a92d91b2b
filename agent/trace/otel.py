"""An optional exporter: trace records as OpenTelemetry spans, with the GenAI semantic conventions.

    exporter = OtelExporter()                       # the global tracer provider
    with TraceWriter(path, exporters=[exporter]) as trace: ...

One root span ``medagent.run`` per run; under it a ``chat <model>`` span per model call
(``gen_ai.operation.name=chat``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.usage.*``) and an ``execute_tool <name>`` span per tool call
(``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``); routing decisions are events on
the root span. Spans are made as records arrive: a step record is written when the step has
finished, so its span runs from ``ts - latency_s`` to ``ts``. No prompt, output or tool result
is put on a span; with ``redact`` on, what the spans carry (error texts, routing reasons) is
already redacted, since the writer redacts before it exports.

opentelemetry-api is imported only when an exporter is made (``pip install 'medagent[otel]'``;
opentelemetry-sdk as well to actually send spans somewhere).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .records import ModelCallRecord, RouteRecord, RunEnd, RunHeader, ToolCallRecord, TraceRecord

INSTALL_HINT = "pip install 'medagent[otel]' (opentelemetry-api, and opentelemetry-sdk to export spans)"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ts_ns(ts: str) -> int:
    """A record's ISO timestamp in nanoseconds since the epoch (now when it cannot be read)."""
    try:
        dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return time.time_ns()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def model_parts(spec: str) -> tuple[str, str]:
    """``(provider, model)`` from a model spec string: ``openai:medgemma@http://..`` ->
    ``("openai", "medgemma")``, ``hf:/models/medgemma-4b-it`` -> ``("hf", "medgemma-4b-it")``."""
    kind, sep, rest = (spec or "").partition(":")
    if not sep:
        return (kind or "unknown"), (kind or "unknown")
    if kind == "openai":
        rest = rest.rpartition("@")[0] or rest
    name = rest.rstrip("/").rsplit("/", 1)[-1] if kind in ("hf", "scripted") else rest
    return kind, name or rest


@dataclass
class _Run:
    span: Any
    provider: str
    model: str


class OtelExporter:
    """Turns trace records into spans as they arrive (see the module docstring)."""

    def __init__(self, tracer_provider: Any = None, tracer_name: str = "medagent"):
        try:
            from opentelemetry import trace as otel_trace
            from opentelemetry.trace import SpanKind, Status, StatusCode
        except ImportError as exc:
            raise ImportError(f"the OpenTelemetry exporter needs opentelemetry: {INSTALL_HINT}") from exc
        self._trace = otel_trace
        self._kind = SpanKind
        self._status = Status
        self._code = StatusCode
        self._tracer = otel_trace.get_tracer(tracer_name, tracer_provider=tracer_provider)
        self._runs: dict[str, _Run] = {}

    # -- the exporter protocol ------------------------------------------------------------------

    def export(self, record: TraceRecord) -> None:
        if isinstance(record, RunHeader):
            self._start_run(record)
        elif isinstance(record, ModelCallRecord):
            self._model_call(record)
        elif isinstance(record, ToolCallRecord):
            self._tool_call(record)
        elif isinstance(record, RouteRecord):
            run = self._run(record)
            run.span.add_event("medagent.route", {"medagent.step": record.step, "medagent.route.source": record.source,
                                                  "medagent.route.target": record.target,
                                                  "medagent.route.reason": record.reason},
                               timestamp=ts_ns(record.ts))
        elif isinstance(record, RunEnd):
            self._end_run(record)

    __call__ = export

    def close(self) -> None:
        """End the root span of every run that never got its ``run_end`` (as an error)."""
        for run_id in list(self._runs):
            run = self._runs.pop(run_id)
            run.span.set_attribute("medagent.status", "incomplete")
            run.span.set_status(self._status(self._code.ERROR, "trace closed before run_end"))
            run.span.end()

    # -- records -> spans -----------------------------------------------------------------------

    def _start_run(self, header: RunHeader) -> None:
        old = self._runs.pop(header.run_id, None)
        if old is not None:
            old.span.end()
        provider, model = model_parts(header.model)
        attributes: dict[str, Any] = {"medagent.run_id": header.run_id, "medagent.strategy": header.strategy,
                                      "medagent.model": header.model, "medagent.redacted": header.redacted,
                                      "medagent.trace_version": header.trace_version}
        for key in ("max_steps", "max_tokens", "constrained"):
            if isinstance(header.config.get(key), (bool, int, float, str)):
                attributes[f"medagent.config.{key}"] = header.config[key]
        span = self._tracer.start_span("medagent.run", kind=self._kind.INTERNAL, attributes=attributes,
                                       start_time=ts_ns(header.ts))
        self._runs[header.run_id] = _Run(span, provider, model)

    def _run(self, record: TraceRecord) -> _Run:
        """The record's run; a root span is opened at this record when its header was not seen."""
        run = self._runs.get(record.run_id)
        if run is None:
            span = self._tracer.start_span("medagent.run", kind=self._kind.INTERNAL,
                                           attributes={"medagent.run_id": record.run_id},
                                           start_time=ts_ns(record.ts) - int(getattr(record, "latency_s", 0) * 1e9))
            run = self._runs[record.run_id] = _Run(span, "unknown", "unknown")
        return run

    def _child(self, run: _Run, name: str, kind: Any, record: ModelCallRecord | ToolCallRecord,
               attributes: dict[str, Any]) -> None:
        end = ts_ns(record.ts)
        start = end - max(0, int(record.latency_s * 1e9))
        context = self._trace.set_span_in_context(run.span)
        span = self._tracer.start_span(name, context=context, kind=kind, attributes=attributes, start_time=start)
        if record.error:
            span.set_attribute("error.type", _error_type(record.error))
            span.set_status(self._status(self._code.ERROR, record.error))
        span.end(end_time=end)

    def _model_call(self, record: ModelCallRecord) -> None:
        run = self._run(record)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": run.provider, "gen_ai.system": run.provider,
            "gen_ai.request.model": run.model, "gen_ai.usage.input_tokens": record.input_tokens,
            "gen_ai.usage.output_tokens": record.output_tokens, "medagent.step": record.step,
            "medagent.node": record.node, "medagent.constrained": record.constrained,
            "medagent.repair": record.repair}
        finish = getattr(record, "finish_reason", None) or getattr(record, "finish_reasons", None)
        if finish:
            attributes["gen_ai.response.finish_reasons"] = [finish] if isinstance(finish, str) else list(finish)
        if record.prompt_sha256:
            attributes["medagent.prompt_sha256"] = record.prompt_sha256
        if isinstance(record.parsed, dict) and record.parsed.get("kind"):
            attributes["medagent.parsed.kind"] = str(record.parsed["kind"])
        self._child(run, f"chat {run.model}", self._kind.CLIENT, record, attributes)

    def _tool_call(self, record: ToolCallRecord) -> None:
        run = self._run(record)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": record.name, "gen_ai.tool.type": "function",
            "medagent.step": record.step, "medagent.resource_count": len(record.resource_ids)}
        call_id = getattr(record, "call_id", None) or getattr(record, "tool_call_id", None)
        if call_id:
            attributes["gen_ai.tool.call.id"] = str(call_id)
        self._child(run, f"execute_tool {record.name}", self._kind.INTERNAL, record, attributes)

    def _end_run(self, end: RunEnd) -> None:
        run = self._run(end)
        self._runs.pop(end.run_id, None)
        span = run.span
        span.set_attributes({"medagent.status": end.status, "medagent.steps": end.steps,
                             "medagent.model_calls": end.model_calls, "medagent.tool_calls": end.tool_calls,
                             "medagent.input_tokens": end.input_tokens, "medagent.output_tokens": end.output_tokens,
                             "medagent.cited_count": len(end.cited_ids)})
        if end.status == "completed":
            span.set_status(self._status(self._code.OK))
        else:
            span.set_attribute("error.type", end.status)
            span.set_status(self._status(self._code.ERROR, f"{end.status}: {end.error}" if end.error else end.status))
        span.end(end_time=ts_ns(end.ts))


def _error_type(error: str) -> str:
    """A low-cardinality ``error.type``: an exception-like head ('TimeoutError: ...') or '_OTHER'."""
    head = error.split(":", 1)[0].strip()
    if head and len(head) <= 60 and head.replace("_", "").replace(".", "").isalnum():
        return head
    return "_OTHER"
