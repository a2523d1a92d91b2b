"""The chat loop: read a line, run a slash command or ask the agent, show what happens.

``ChatApp`` holds what a conversation needs across turns: settings, the record backend, the
model (built once, rebuilt by ``/model``), the bound patient, the current session (index,
checkpoints, traces: ``sessions.py``) and the renderer. Input comes from prompt_toolkit with a
history file when stdin and stdout are terminals, else one line at a time from stdin (a pipe:
each line is a turn).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Iterator

from agent.trace.records import ModelCallRecord, RouteRecord, ToolCallRecord

from .card import patient_card
from .render import Renderer
from .sessions import SessionInfo, SessionStore
from .turn import AnswerStream, StreamTap, TurnWorker

STOP_GRACE_S = 30.0   # after Ctrl-C, how long to wait for the turn to reach its next stopping point
NO_PATIENT_HINT = "No patient is bound yet: /patient NAME or ID first (e.g. /patient Garcia), or /help."


class ChatApp:
    def __init__(self, *, settings: Any, backend: Any, store: SessionStore, renderer: Renderer, llm: str,
                 strategy: str = "react", max_steps: int = 8, now: str | None = None, history_file: Path | None = None):
        self.settings = settings
        self.backend = backend
        self.store = store
        self.r = renderer
        self.strategy = strategy
        self.max_steps = max_steps
        self.now = now
        self.history_file = history_file
        self.redact = False
        self.next_image: str | None = None   # /image PATH (or --image): goes with the next question
        self.tap = StreamTap()
        self.spec: Any = None
        self.model: Any = None
        self.set_model(llm)
        self.patient: dict[str, Any] | None = None
        self.session: SessionInfo | None = None

    # -- model, patient, session ---------------------------------------------------------------

    def set_model(self, text: str) -> None:
        """Build the model for ``text`` (raises ModelSpecError / ValueError on a bad spec)."""
        from agent.models import parse_spec
        from agent.models.factory import build_chat_model

        spec = parse_spec(text)
        model = build_chat_model(spec, self.settings)
        model.callbacks = [self.tap]   # every call reports its start and its streamed text to the turn
        if "streaming" in type(model).model_fields:   # LangChain's switch for backends that can stream
            model.streaming = True
        self.spec, self.model = spec, model

    @property
    def patient_id(self) -> str | None:
        return self.patient["id"] if self.patient else None

    @property
    def patient_name(self) -> str:
        from tools.ehr.results import human_name

        return human_name(self.patient.get("name")) if self.patient else ""

    def bind(self, patient: dict[str, Any], show_card: bool = True) -> None:
        """Bind ``patient``; a session about someone else is left for a new one."""
        if self.session is not None and self.session.patient not in (None, patient["id"]):
            self.r.info(f"Session {self.session.id} stays with {self.session.patient_name or 'its patient'} "
                        f"(/resume {self.session.id}); a new one starts with the next question.")
            self.session = None
        self.patient = patient
        if self.session is not None and self.session.patient is None:
            self.session.patient, self.session.patient_name = patient["id"], self.patient_name
            self.store.save(self.session)
        if show_card:
            self.r.card(patient_card(self.backend, patient))

    def read_patient(self, patient_id: str) -> dict[str, Any]:
        from tools.ehr import EhrSession

        return EhrSession(self.backend).bind(patient_id)   # LookupError when there is no such Patient

    def ensure_session(self) -> SessionInfo:
        if self.session is None:
            self.session = self.store.create(self.patient_id, self.patient_name, str(self.spec))
        return self.session

    def resume(self, info: SessionInfo, quiet: bool = False) -> None:
        self.session = info
        if info.patient:
            self.patient = self.read_patient(info.patient)
        if quiet:
            return
        turns = self.store.turns(info.id)
        self.r.say(f"Resumed session {info.id} ({info.patient_name or 'no patient'}, {len(turns)} turn(s)).", "green")
        for turn in turns[-2:]:
            self.r.info(f"  #{turn.number} {turn.question}")
            first = ((turn.answer or f"({turn.status})").strip().splitlines() or [""])[0]
            self.r.info(f"     → {first if len(first) <= 160 else first[:159] + '…'}")

    # -- the loop -------------------------------------------------------------------------------

    def prompt_text(self) -> str:
        return f"{self.patient_name or 'no patient'}> "

    def lines(self) -> Iterator[str]:
        """What the user types: prompt_toolkit on a terminal, else stdin line by line."""
        if sys.stdin.isatty() and sys.stdout.isatty():
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import FileHistory, InMemoryHistory

            history = FileHistory(str(self.history_file)) if self.history_file else InMemoryHistory()
            session: PromptSession = PromptSession(history=history)
            while True:
                try:
                    yield session.prompt(self.prompt_text())
                except KeyboardInterrupt:   # Ctrl-C at the prompt clears the line, as in a shell
                    continue
                except EOFError:
                    return
        else:
            piped = not sys.stdin.isatty()
            while True:
                if not piped:
                    sys.stderr.write(self.prompt_text())
                    sys.stderr.flush()
                line = sys.stdin.readline()
                if not line:
                    return
                if piped and line.strip():
                    self.r.say(f"> {line.strip()}", "bold")
                yield line

    def run(self) -> int:
        from .commands import dispatch

        try:
            for line in self.lines():
                line = line.strip()
                if not line:
                    continue
                if not line.startswith("/"):
                    self.ask(line)
                    continue
                try:
                    if dispatch(self, line) == "quit":
                        return 0
                except KeyboardInterrupt:
                    self.r.warn("(interrupted)")
                except Exception as exc:  # a command that fails (a record server gone) must not end the chat
                    self.r.error(f"{line.split()[0]} failed: {type(exc).__name__}: {exc}")
            if self.session is not None:   # Ctrl-D or the end of piped input
                self.r.info(f"Session {self.session.id} saved: medagent chat --session {self.session.id}")
        finally:
            self.store.close()
        return 0

    # -- one question ---------------------------------------------------------------------------

    def ask(self, question: str) -> Any:
        from agent.images_in import MULTIMODAL_KINDS
        from agent.knowledge import knowledge_tools, record_notes
        from agent.run import run_question

        if self.patient is None:
            self.r.warn(NO_PATIENT_HINT)
            return None
        session = self.ensure_session()
        trace_path = self.store.next_trace_path(session.id)
        model, spec, patient_id, redact = self.model, self.spec, self.patient_id, self.redact
        image, self.next_image = self.next_image, None

        def job(exporter):
            return run_question(question, backend=self.backend, patient_id=patient_id, model=model,
                                model_label=str(spec), strategy=self.strategy, trace_path=trace_path,  # type: ignore[arg-type]
                                redact=redact, now=self.now, max_steps=self.max_steps,
                                constrained=self.settings.constrained, thinking=self.settings.thinking,
                                examples=self.settings.examples, session_id=session.id,
                                checkpointer=self.store.checkpointer, exporters=[exporter],
                                extra_tools=knowledge_tools(self.settings, patient_id),
                                row_notes=record_notes(self.settings), image=image, image_to_model=getattr(spec, "kind", "") in MULTIMODAL_KINDS)

        worker = TurnWorker(job).start()
        view = self.r.turn_view()
        stream = AnswerStream()
        started = time.perf_counter()
        try:
            with view:
                self._pump(worker, view, stream)
        except KeyboardInterrupt:
            self._stop(worker)
        session.turns += 1
        session.last_question = question
        session.model = str(spec)
        self.store.save(session)
        return self._report(worker, view, time.perf_counter() - started)

    def _pump(self, worker: TurnWorker, view: Any, stream: AnswerStream) -> None:
        import queue

        while True:
            try:
                event = worker.events.get(timeout=0.1)
            except queue.Empty:
                if not worker.alive and worker.events.empty():
                    return
                continue
            if event.kind == "done":
                return
            if event.kind == "model_start":
                stream.reset()
                view.restart_stream()
                view.status("thinking")
            elif event.kind == "token":
                view.stream(stream.feed(event.data))
            elif event.kind == "record":
                record = event.data
                if isinstance(record, ToolCallRecord):
                    view.tool(record)
                elif isinstance(record, RouteRecord) and record.target == "act":
                    view.status(f"running {record.reason}")
                elif isinstance(record, ModelCallRecord):
                    view.status(f"step {record.step} done")

    def _stop(self, worker: TurnWorker) -> None:
        worker.stop()
        self.r.warn("Stopping this turn… (Ctrl-C again to leave it running in the background)")
        deadline = time.monotonic() + STOP_GRACE_S
        try:
            while not worker.join(0.1) and time.monotonic() < deadline:
                pass
        except KeyboardInterrupt:
            pass

    def _report(self, worker: TurnWorker, view: Any, seconds: float) -> Any:
        if worker.stopped or worker.alive:
            self.r.warn(f"Turn stopped after {seconds:.1f} s (trace: interrupted). The session is kept: ask again "
                        "or go on.")
            return None
        if worker.error is not None:
            self._turn_error(worker.error)
            return None
        result = worker.result
        if result.status == "error" and _model_unreachable(result.error or ""):
            self.r.error(f"The model did not answer: {result.error}")
            self.r.warn(f"The session is kept. Check the model server ({self.spec}) and ask again, "
                        "or switch with /model SPEC.")
            return result
        self.r.answer(result, view.text, seconds)
        return result

    def _turn_error(self, exc: BaseException) -> None:
        name = type(exc).__name__
        if name == "BackendUnavailable":
            self.r.error(f"The record server is not answering: {exc}. The session is kept; ask again later.")
        elif isinstance(exc, LookupError):
            self.r.error(f"{exc}")
        else:
            self.r.error(f"This turn failed: {name}: {exc}. The session is kept.")


def _model_unreachable(error: str) -> bool:
    text = error.lower()
    return any(s in text for s in ("cannot reach", "did not answer within", "connection", "openaicompaterror",
                                   "embeddedmodelerror", "scriptexhausted"))
