"""Chat sessions on disk: a small index, the LangGraph checkpoints, and one trace per turn.

    <user data dir>/medagent/chat/
        sessions.json            id -> {id, patient, patient_name, created, updated, turns, last_question, model}
        checkpoints.sqlite       LangGraph SqliteSaver: thread id = session id (the conversation)
        sessions/<id>/turn-001.jsonl   every turn's trace (header ... run_end)

The traces are the record of what was said: ``turns`` reads questions, answers and citations
back from them, so ``/save`` and ``/sources`` work for a session resumed after a restart. The
index is only for listing; it is rewritten whole under a file lock (two chats may share it).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from agent.trace.records import RunEnd, RunHeader, ToolCallRecord
from agent.trace.writer import load_trace


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class SessionInfo:
    id: str
    patient: str | None = None
    patient_name: str = ""
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    turns: int = 0
    last_question: str = ""
    model: str = ""


@dataclass
class Turn:
    """One finished (or stopped) turn, read back from its trace."""
    number: int
    question: str
    answer: str
    status: str
    cited_ids: list[str]
    trace_path: Path
    tool_calls: list[ToolCallRecord] = field(default_factory=list)


class SessionStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.index_path = self.root / "sessions.json"
        self._checkpointer = None

    # -- index ------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / "sessions.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.index_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, dict[str, Any]]) -> None:
        tmp = self.index_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.index_path)

    def list(self) -> list[SessionInfo]:
        """Every session, most recently used first."""
        infos = [SessionInfo(**{k: v for k, v in d.items() if k in SessionInfo.__dataclass_fields__})
                 for d in self._read().values()]
        return sorted(infos, key=lambda s: s.updated, reverse=True)

    def get(self, session_id: str) -> SessionInfo | None:
        """A session by id or by a unique id prefix."""
        sessions = self._read()
        if session_id in sessions:
            return SessionInfo(**sessions[session_id])
        found = [s for key, s in sessions.items() if key.startswith(session_id)]
        return SessionInfo(**found[0]) if len(found) == 1 and session_id else None

    def create(self, patient: str | None = None, patient_name: str = "", model: str = "",
               session_id: str | None = None) -> SessionInfo:
        info = SessionInfo(id=session_id or uuid.uuid4().hex[:8], patient=patient, patient_name=patient_name,
                           model=model)
        self.save(info)
        return info

    def save(self, info: SessionInfo) -> None:
        with self._locked():
            data = self._read()
            info.updated = now_iso()
            data[info.id] = info.__dict__.copy()
            self._write(data)

    # -- checkpoints and traces --------------------------------------------------------------

    @property
    def checkpointer(self):
        """The LangGraph SQLite checkpointer every session's conversation lives in (opened once)."""
        if self._checkpointer is None:
            from langgraph.checkpoint.sqlite import SqliteSaver

            conn = sqlite3.connect(str(self.root / "checkpoints.sqlite"), check_same_thread=False)
            self._checkpointer = SqliteSaver(conn)
        return self._checkpointer

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.conn.close()
            self._checkpointer = None

    def folder(self, session_id: str) -> Path:
        return self.root / "sessions" / session_id

    def trace_paths(self, session_id: str) -> list[Path]:
        return sorted(self.folder(session_id).glob("turn-*.jsonl"))

    def next_trace_path(self, session_id: str) -> Path:
        folder = self.folder(session_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"turn-{len(self.trace_paths(session_id)) + 1:03d}.jsonl"

    def turns(self, session_id: str) -> list[Turn]:
        out = []
        for number, path in enumerate(self.trace_paths(session_id), 1):
            try:
                records = load_trace(path)
            except (OSError, ValueError):
                continue
            header = next((r for r in records if isinstance(r, RunHeader)), None)
            end = next((r for r in reversed(records) if isinstance(r, RunEnd)), None)
            if header is None:
                continue
            out.append(Turn(number, header.question, end.answer if end else "",
                            end.status if end else "interrupted", list(end.cited_ids) if end else [], path,
                            [r for r in records if isinstance(r, ToolCallRecord)]))
        return out
