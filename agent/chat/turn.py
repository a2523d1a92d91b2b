"""One chat turn in a worker thread, reporting to the terminal as it goes, and stoppable.

The agent runs ``run_question`` in a worker thread; the main thread draws. What happens
reaches the main thread as events on a queue: every trace record (the TraceWriter's
exporters get each one as it is written: tool calls show as they finish) and every piece of
model output (a LangChain callback handler on the model: backends that stream call
``on_llm_new_token`` per piece, the others once with the whole text, or never).

Stopping is cooperative: ``stop()`` sets a flag, and the next trace record, model start or
model token raises ``TurnStopped`` inside the worker. It is a ``KeyboardInterrupt``, so it
passes every ``except Exception`` between there and ``run_question``, which writes a
``run_end`` with status ``interrupted`` and re-raises; the worker catches it. The loaded
model, the backend and the session stay as they were.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable

from langchain_core.callbacks import BaseCallbackHandler


class TurnStopped(KeyboardInterrupt):
    """Raised inside the worker to stop the turn at the next record or token."""


@dataclass
class Event:
    kind: str       # "record" (a trace record), "model_start", "token", "done"
    data: Any = None


# The turn whose worker is running this code: set in the worker thread, and carried into the
# threads LangGraph runs nodes in (it copies the context), so a turn left running in the
# background after a second Ctrl-C never reports into the next turn.
_CURRENT_TURN: ContextVar["TurnWorker | None"] = ContextVar("medagent_chat_turn", default=None)


class StreamTap(BaseCallbackHandler):
    """Put on a chat model's ``callbacks`` once: reports to the turn that made the call."""

    raise_error = True     # so TurnStopped is not swallowed (it is a BaseException anyway)

    @property
    def turn(self) -> "TurnWorker | None":
        return _CURRENT_TURN.get()

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        turn = self.turn
        if turn is not None:
            turn.checkpoint()
            turn.events.put(Event("model_start"))

    def on_llm_new_token(self, token: str, **kwargs) -> None:
        turn = self.turn
        if turn is not None:
            turn.checkpoint()
            turn.events.put(Event("token", token))


class TurnWorker:
    """Runs ``job(exporter)`` (which calls run_question with that exporter) in a daemon thread."""

    def __init__(self, job: Callable[[Callable[[Any], None]], Any]):
        self.job = job
        self.events: queue.Queue[Event] = queue.Queue()
        self.result: Any = None
        self.error: BaseException | None = None
        self.stopped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chat-turn", daemon=True)

    def checkpoint(self) -> None:
        if self._stop.is_set():
            raise TurnStopped("interrupted by the user")

    def _export(self, record: Any) -> None:
        self.events.put(Event("record", record))
        if getattr(record, "type", "") != "run_end":
            self.checkpoint()

    def _run(self) -> None:
        _CURRENT_TURN.set(self)
        try:
            self.result = self.job(self._export)
        except TurnStopped:
            self.stopped = True
        except BaseException as exc:  # shown to the user by the main thread; the chat goes on
            self.error = exc
        finally:
            _CURRENT_TURN.set(None)
            self.events.put(Event("done"))

    def start(self) -> "TurnWorker":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


_ANSWER_KEY = re.compile(r'"answer"\s*:\s*"')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class AnswerStream:
    """The growing ``"answer"`` string inside a planner output that is still being generated.

    ``feed(piece)`` returns the answer text that became readable with this piece ('' when none:
    a tool call, or a piece inside an escape sequence). ``reset()`` at each new model call.
    """

    def __init__(self) -> None:
        self.raw = ""
        self.text = ""

    def reset(self) -> None:
        self.raw, self.text = "", ""

    def feed(self, piece: str) -> str:
        self.raw += piece
        match = _ANSWER_KEY.search(self.raw)
        if not match:
            return ""
        decoded = _partial_json_string(self.raw[match.end():])
        new = decoded[len(self.text):] if decoded.startswith(self.text) else ""
        self.text = decoded
        return new


def _partial_json_string(body: str) -> str:
    """Decode a JSON string body up to its closing quote or, unfinished, to the last whole character."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            break
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(body):
            break
        esc = body[i + 1]
        if esc == "u":
            digits = body[i + 2:i + 6]
            if len(digits) < 4:
                break
            try:
                out.append(json.loads(f'"\\u{digits}"'))
            except ValueError:
                pass
            i += 6
            continue
        out.append(_ESCAPES.get(esc, esc))
        i += 2
    return "".join(out)
