"""Traces: one JSONL record per step, written as it happens (``records`` is the format).

``TraceWriter`` writes (and optionally redacts and exports) records, ``load_trace`` / ``runs``
read them back, ``render_trace`` / ``summarize`` show them, ``OtelExporter`` sends them to
OpenTelemetry (optional dependency, imported only when used).
"""

from __future__ import annotations

from typing import Any

from .records import (RECORD_TYPES, TRACE_VERSION, ModelCallRecord, RouteRecord, RunEnd, RunHeader, RunStatus,
                      ToolCallRecord, TraceRecord, parse_record)
from .redact import redact_record
from .writer import TraceWriter, load_trace, new_run_id, runs

__all__ = ["RECORD_TYPES", "TRACE_VERSION", "ModelCallRecord", "OtelExporter", "RouteRecord", "RunEnd", "RunHeader",
           "RunStatus", "ToolCallRecord", "TraceRecord", "TraceWriter", "load_trace", "new_run_id", "parse_record",
           "redact_record", "render_trace", "runs", "summarize"]

_LAZY = {"render_trace": "show", "summarize": "show", "OtelExporter": "otel"}


def __getattr__(name: str) -> Any:  # rich and opentelemetry only when asked for
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
