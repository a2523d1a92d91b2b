"""Writing and reading traces: one JSON object per line, flushed as each step happens.

    with TraceWriter(path, redact=True, exporters=[OtelExporter()]) as trace:
        trace.emit(RunHeader(run_id="", question=..., model="embedded"))
        trace.emit(ModelCallRecord(run_id="", step=1, raw_output=...))
        ...
        trace.emit(RunEnd(run_id="", status="completed", answer=...))

The writer owns ``run_id`` and ``seq``: whatever the record carries is replaced (a run id the
first record carries is adopted when the writer was given none). Each line is flushed before
``emit`` returns, so a run that crashes leaves every finished step on disk (no fsync: the OS
keeps it unless the machine itself goes down). Files are opened for appending: several runs
can share one file and are told apart by run id; a ``RunHeader`` emitted after other records
starts a new run (new run id, ``seq`` from 0 again).

Exporters receive each record after it was written (and redacted): an object with
``export(record)`` (and optionally ``close()``), or a plain callable. An exporter that fails
is logged and skipped, never allowed to end the run.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import orjson

from .records import RunHeader, TraceRecord, parse_record
from .redact import redact_record

log = logging.getLogger(__name__)


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def dumps(record: TraceRecord) -> bytes:
    """One compact JSON line (without the newline); top-level ``None`` fields are left out."""
    data = {k: v for k, v in record.model_dump(mode="json").items() if v is not None}
    return orjson.dumps(data)


class TraceWriter:
    """Writes one run's (or several runs') records to a JSONL file, or keeps them in memory.

    ``path=None``: nothing is written; records are kept in ``.records``. With a path they are
    kept too only when ``keep_records=True`` (prompts make long evaluations heavy).
    ``redact``: records pass through :func:`redact_record` before they are written or exported
    (``drop_ids`` pseudonymises resource ids as well).
    """

    def __init__(self, path: Path | str | None, run_id: str | None = None, redact: bool = False,
                 exporters: list | None = None, *, drop_ids: bool = False, keep_records: bool | None = None):
        self.path = Path(path) if path is not None else None
        self.redact = redact
        self.drop_ids = drop_ids
        self.exporters: list[Any] = list(exporters or [])
        self.records: list[TraceRecord] = []
        self._keep = (path is None) if keep_records is None else keep_records
        self._run_id = run_id or None
        self._seq = 0
        self._lock = threading.Lock()
        self._failed: set[int] = set()
        self._closed = False
        self._file = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")

    @property
    def run_id(self) -> str:
        """The current run's id (made now if no record or argument gave one yet)."""
        if self._run_id is None:
            self._run_id = new_run_id()
        return self._run_id

    @property
    def seq(self) -> int:
        """The ``seq`` the next record will get."""
        return self._seq

    def emit(self, record: TraceRecord | Mapping[str, Any]) -> TraceRecord:
        """Stamp ``record`` with the run id and the next ``seq``, redact it when asked, write
        and flush one line, pass it to the exporters; returns the record as written."""
        if isinstance(record, Mapping):
            record = parse_record({"run_id": "", **record})
        with self._lock:
            if self._closed:
                raise ValueError("this TraceWriter is closed")
            if isinstance(record, RunHeader) and self._seq > 0:  # a new run in the same writer
                self._run_id = record.run_id if record.run_id and record.run_id != self._run_id else new_run_id()
                self._seq = 0
            if self._run_id is None:
                self._run_id = record.run_id or new_run_id()
            record = record.model_copy(update={"run_id": self._run_id, "seq": self._seq})
            if self.redact:
                record = redact_record(record, drop_ids=self.drop_ids)
            if self._file is not None:
                self._file.write(dumps(record) + b"\n")
                self._file.flush()
            self._seq += 1
            if self._keep:
                self.records.append(record)
            for exporter in self.exporters:
                self._export(exporter, record)
        return record

    def _export(self, exporter: Any, record: TraceRecord) -> None:
        try:
            if hasattr(exporter, "export"):
                exporter.export(record)
            else:
                exporter(record)
        except Exception:  # tracing must never end the run it traces
            if id(exporter) not in self._failed:
                self._failed.add(id(exporter))
                log.warning("trace exporter %r failed; the trace file is unaffected", exporter, exc_info=True)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._file is not None:
                self._file.close()
            for exporter in self.exporters:
                close = getattr(exporter, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception:
                        log.warning("trace exporter %r failed to close", exporter, exc_info=True)

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_trace(path: Path | str) -> list[TraceRecord]:
    """Every record in a trace file, in file order. Blank lines are skipped; a line that is not
    a valid record raises ``ValueError`` naming the file and line number."""
    records: list[TraceRecord] = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno}: not valid JSON ({exc})") from None
            if not isinstance(data, dict):
                raise ValueError(f"{path}: line {lineno}: expected a JSON object, got {type(data).__name__}")
            try:
                records.append(parse_record(data))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise ValueError(f"{path}: line {lineno}: not a trace record: {exc}") from None
    return records


def runs(records: Iterable[TraceRecord]) -> dict[str, list[TraceRecord]]:
    """Records grouped by run id, runs in order of first appearance, records in file order."""
    out: dict[str, list[TraceRecord]] = {}
    for record in records:
        out.setdefault(record.run_id, []).append(record)
    return out
