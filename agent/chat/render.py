"""What the chat prints: tool-call lines, the live turn (spinner and streamed answer), the
answer as Markdown, citations, the footer, the patient card, tables.

Two modes. Rich (stdout is a terminal, no ``NO_COLOR``): a transient ``Live`` region at the
bottom holds the spinner and the answer as it streams; tool lines are printed above it as
they happen, and when the turn ends the region is erased and the answer printed once as
Markdown, so scrollback holds each thing once. Plain (a pipe, a file, ``NO_COLOR``): lines of
text, no escape codes; the streamed answer is written as it comes only to a terminal.
Recorded text always goes in as ``Text`` (never markup), so brackets in a record stay as they are.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from typing import Any, Iterable, Mapping

from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .card import CardLine, PatientCard

UNCITED = "none: no record a tool returned backs this answer; check it against the record"
STREAM_LINES = 12       # lines of a streaming answer kept in the live region (the rest scrolls later)


def plain_wanted(stream=None) -> bool:
    stream = stream or sys.stdout
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb" or not stream.isatty()


def short_value(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_text(name: str, args: Mapping[str, Any]) -> str:
    return f"{name}(" + ", ".join(f"{k}={short_value(v)}" for k, v in args.items() if v not in (None, "")) + ")"


def tool_line(record: Any) -> str:
    """``search_records(resource_type=Observation, code=HbA1c) → 12 rows · 0.02 s``"""
    found = len(record.resource_ids)
    outcome = f"failed: {short_value(record.error, 80)}" if record.error else \
        f"{found} row{'s' if found != 1 else ''}"
    return f"  ⚙ {call_text(record.name, record.args)} → {outcome} · {record.latency_s:.2f} s"


def footer_text(result: Any, seconds: float | None = None) -> str:
    """``2 steps · 1,234 → 56 tokens · 3.1 s``: seconds as the user waited them (when given)."""
    seconds = result.seconds if seconds is None else seconds
    # llama.cpp's server sends no token counts while it streams: say so rather than "0 → 0"
    tokens = f"{result.input_tokens:,} → {result.output_tokens:,} tokens" \
        if (result.input_tokens or result.output_tokens or not result.model_calls) else "tokens not reported"
    parts = [f"{result.steps} step{'s' if result.steps != 1 else ''}", tokens, f"{seconds:.1f} s"]
    if result.status != "completed":
        parts.insert(0, result.status)
    return " · ".join(parts)


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def markdown_safe(text: str | None) -> str:
    """Answer text for Markdown: a tag-like ``<value>`` is escaped, since Markdown would take it
    for inline HTML and the terminal renderer drops HTML (a model copying a template's
    ``<value> <unit> (Observation/<id>)`` must show as written)."""
    return _TAG_START.sub(r"\\<", text or "")


def citation_text(cited_ids: Iterable[str]) -> str:
    ids = list(cited_ids)
    return "cited: " + (", ".join(ids) if ids else UNCITED)


class Renderer:
    def __init__(self, plain: bool | None = None, file=None):
        self.file = file or sys.stdout
        self.plain = plain_wanted(self.file) if plain is None else plain
        if self.plain:
            width = max(100, shutil.get_terminal_size((100, 24)).columns)   # pipes: no wrapping at 80
            self.console = Console(file=self.file, color_system=None, force_terminal=False, highlight=False,
                                   soft_wrap=True, emoji=False, width=width)
        else:
            self.console = Console(file=self.file, highlight=False, emoji=False)

    # -- small messages -------------------------------------------------------------------------

    def say(self, text: str, style: str | None = None) -> None:
        self.console.print(Text(text, style=style or ""))

    def info(self, text: str) -> None:
        self.say(text, "dim")

    def warn(self, text: str) -> None:
        self.say(text, "yellow")

    def error(self, text: str) -> None:
        self.say(text, "bold red")

    def markdown(self, text: str) -> None:
        if self.plain:
            self.console.print(Text(text))
        else:
            self.console.print(Markdown(text))

    def show(self, renderable: Any) -> None:
        self.console.print(renderable)

    # -- a turn ---------------------------------------------------------------------------------

    def turn_view(self) -> "TurnView":
        return PlainTurnView(self) if self.plain else LiveTurnView(self)

    def answer(self, result: Any, streamed: str = "", seconds: float | None = None) -> None:
        """The final answer; in plain mode only when the streamed text was not already all of it."""
        if self.plain:
            if streamed.strip() != (result.answer or "").strip() or not streamed.strip():
                self.console.print(Text(result.answer or "(no answer)"))
        else:
            self.console.print(Markdown(markdown_safe(result.answer) or "*(no answer)*"))
        if result.status == "completed":
            self.say(citation_text(result.cited_ids), "cyan")
        self.say(footer_text(result, seconds), "dim")

    # -- the patient card -----------------------------------------------------------------------

    def card(self, card: PatientCard) -> None:
        head = f"{card.name} · {card.age} y · {card.sex} · born {card.birth_date} · Patient/{card.patient_id}"
        sections = [("Active problems", card.problems), ("Active medications", card.medications),
                    ("Allergies", card.allergies), ("Latest vitals", card.vitals)]
        since = {"Latest vitals": ""}
        if self.plain:
            lines = [head]
            for title, rows in sections:
                lines.append(f"{title}:" + ("" if rows else " none recorded"))
                lines += [f"  - {_card_row(r, since.get(title, 'since '))}" for r in rows]
            self.console.print(Text("\n".join(lines)))
            return
        table = Table(title=head, title_justify="left", title_style="bold", show_header=False, show_edge=True,
                      box=None, padding=(0, 1))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for title, rows in sections:
            body = Text("\n".join(_card_row(r, since.get(title, "since ")) for r in rows)) if rows else \
                Text("none recorded", style="dim")
            table.add_row(title, body)
        self.console.print(table)

    def table(self, title: str, columns: list[str], rows: list[list[str]]) -> None:
        if self.plain:
            self.console.print(Text("\n".join([title, " | ".join(columns), *(" | ".join(r) for r in rows)])))
            return
        table = Table(title=title, title_justify="left", show_edge=False)
        for col in columns:
            table.add_column(col, overflow="fold")
        for row in rows:
            table.add_row(*(Text(c) for c in row))
        self.console.print(table)


def _card_row(line: CardLine, since: str = "since ") -> str:
    return line.text + (f" ({since}{line.when})" if line.when else "")


class TurnView:
    """Shows one turn while it runs: ``status``, ``tool``, ``stream``; a context manager.
    ``text`` is what the current model call has streamed of its answer so far."""

    text = ""

    def __enter__(self) -> "TurnView":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def status(self, text: str) -> None:  # pragma: no cover - interface
        pass

    def tool(self, record: Any) -> None:  # pragma: no cover - interface
        pass

    def stream(self, piece: str) -> None:  # pragma: no cover - interface
        pass

    def restart_stream(self) -> None:
        pass


class PlainTurnView(TurnView):
    def __init__(self, renderer: Renderer):
        self.r = renderer
        self.live_text = renderer.file.isatty()   # NO_COLOR on a terminal: still stream, without colour
        self.text = ""
        self._open_line = False

    def tool(self, record: Any) -> None:
        self._close_line()
        self.r.console.print(Text(tool_line(record)))

    def stream(self, piece: str) -> None:
        if self.live_text and piece:
            self.r.file.write(piece)
            self.r.file.flush()
            self.text += piece
            self._open_line = True

    def restart_stream(self) -> None:   # a new model call (e.g. a repair turn): what streamed is not the answer
        self._close_line()
        self.text = ""

    def _close_line(self) -> None:
        if self._open_line:
            self.r.file.write("\n")
            self._open_line = False

    def __exit__(self, *exc: object) -> None:
        self._close_line()


class LiveTurnView(TurnView):
    """A transient live region: spinner + status, then the answer as it streams (last lines)."""

    def __init__(self, renderer: Renderer):
        self.r = renderer
        self.started = time.perf_counter()
        self.state = "thinking"
        self.text = ""
        self.live = Live(self, console=renderer.console, transient=True, refresh_per_second=12,
                         redirect_stdout=False, redirect_stderr=False)
        self.spinner = Spinner("dots", style="cyan")

    def __rich__(self):
        elapsed = time.perf_counter() - self.started
        self.spinner.update(text=Text(f" {self.state} · {elapsed:.1f} s", style="dim"))
        if not self.text:
            return self.spinner
        height = max(3, min(STREAM_LINES, self.r.console.size.height - 2))
        lines = self.text.splitlines()[-height:]
        return Group(Text("\n".join(lines)), self.spinner)

    def __enter__(self) -> "LiveTurnView":
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()

    def status(self, text: str) -> None:
        self.state = text

    def tool(self, record: Any) -> None:
        self.live.console.print(Text(tool_line(record), style="magenta"))

    def stream(self, piece: str) -> None:
        self.text += piece

    def restart_stream(self) -> None:
        self.text = ""
