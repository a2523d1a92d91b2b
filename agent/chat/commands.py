"""Slash commands: ONE dispatch table; each handler's docstring (first line) is its /help text.

A handler takes the app and the text after the command and returns ``"quit"`` to end the
chat (anything else: go on). Unknown commands get the closest name (difflib).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.text import Text

if TYPE_CHECKING:
    from .app import ChatApp


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    handler: Callable[["ChatApp", str], Any]

    @property
    def help(self) -> str:
        return (inspect.getdoc(self.handler) or "").splitlines()[0]


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str = "") -> Callable:
    def register(fn: Callable[["ChatApp", str], Any]) -> Callable:
        COMMANDS[name] = Command(name, usage, fn)
        return fn
    return register


def dispatch(app: "ChatApp", line: str) -> Any:
    name, _, arg = line.strip().partition(" ")
    cmd = COMMANDS.get(name.lower())
    if cmd is None:
        close = difflib.get_close_matches(name.lower(), list(COMMANDS), n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]}?" if close else ""
        app.r.warn(f"Unknown command {name}.{hint} /help lists the commands.")
        return None
    return cmd.handler(app, arg.strip())


# -- the commands -------------------------------------------------------------------------------

@command("/help")
def _help(app: "ChatApp", arg: str) -> None:
    """Show the commands."""
    app.r.table("Commands (anything else is a question about the bound patient)", ["command", "what it does"],
                [[f"{c.name} {c.usage}".strip(), c.help] for c in COMMANDS.values()])


@command("/patient", "NAME or ID")
def _patient(app: "ChatApp", arg: str) -> None:
    """Find and bind a patient by name or id, and show their summary card."""
    from tools.ehr import EhrSession

    if not arg:
        app.r.warn("Usage: /patient NAME or ID (e.g. /patient Garcia)")
        return
    try:
        patient = app.read_patient(arg)
    except LookupError:
        result = EhrSession(app.backend).find_patient(name=arg)
        found = result.resources
        if result.error or not found:
            app.r.warn(f"No patient matches '{arg}'.")
            return
        if len(found) > 1:
            rows = [[p["id"], _name(p), p.get("birthDate", ""), p.get("gender", "")] for p in found]
            app.r.table(f"{len(found)} patients match '{arg}': /patient ID to pick one",
                        ["id", "name", "born", "sex"], rows)
            return
        patient = found[0]
    app.bind(patient)
    app.r.info(f"Bound to {app.patient_name} (Patient/{patient['id']}). Ask away; /help for commands.")


@command("/summary")
def _summary(app: "ChatApp", arg: str) -> None:
    """Show the bound patient's summary card again."""
    from .card import patient_card

    if app.patient is None:
        app.r.warn("No patient is bound: /patient NAME or ID.")
        return
    app.r.card(patient_card(app.backend, app.patient))


def _last_turn(app: "ChatApp"):
    turns = app.store.turns(app.session.id) if app.session else []
    if not turns:
        app.r.warn("Nothing asked in this session yet.")
        return None
    return turns[-1]


@command("/trace")
def _trace(app: "ChatApp", arg: str) -> None:
    """Show the last turn's steps as a tree (model calls, tool calls, routes, outcome)."""
    from agent.trace.show import render_trace
    from agent.trace.writer import load_trace

    turn = _last_turn(app)
    if turn is not None:
        app.r.show(render_trace(load_trace(turn.trace_path)))
        app.r.info(f"trace file: {turn.trace_path}")


@command("/sources")
def _sources(app: "ChatApp", arg: str) -> None:
    """Show the records the last answer cited, readably."""
    turn = _last_turn(app)
    if turn is None:
        return
    if not turn.cited_ids:
        app.r.warn("The last answer cites no record a tool returned; check it against the record.")
        return
    app.r.table("Sources of the last answer", ["record", "what it says"],
                [[ref, source_text(app, ref)] for ref in turn.cited_ids])


def source_text(app: "ChatApp", ref: str) -> str:
    """One readable line for a cited record: date · name · value · status."""
    from tools.ehr.results import describe
    from tools.fhir.backend import FhirError

    rtype, _, rid = ref.partition("/")
    if rtype == "Guideline":   # a guideline passage ('Guideline/<note>#<section>'), not a FHIR record
        from agent.knowledge import knowledge_tools

        for tool in knowledge_tools(app.settings, app.patient_id):
            owner = getattr(tool, "__self__", None)
            line = owner.describe(ref) if hasattr(owner, "describe") and tool.__name__ == "search_guidelines" else None
            if line:
                return line
        return f"guideline passage {rid}"
    try:
        resource = app.backend.read(rtype, rid)
    except (FhirError, ValueError, LookupError) as exc:
        return f"(could not read it: {exc})"
    fields = dict(line.split(": ", 1) for line in describe(resource).splitlines()[1:] if ": " in line)
    value = " ".join(v for v in (fields.get("value", ""), fields.get("unit", "")) if v)
    parts = [fields.get("date", ""), fields.get("display", ""), value, fields.get("status", "")]
    return " · ".join(p for p in parts if p) or ref


@command("/new")
def _new(app: "ChatApp", arg: str) -> None:
    """Start a new session (same patient, no earlier turns)."""
    app.session = None
    info = app.ensure_session()
    app.r.info(f"New session {info.id}" + (f" about {app.patient_name}." if app.patient else "."))


@command("/sessions")
def _sessions(app: "ChatApp", arg: str) -> None:
    """List saved sessions, most recent first (/resume ID to go back to one)."""
    sessions = app.store.list()
    if not sessions:
        app.r.info("No sessions yet.")
        return
    current = app.session.id if app.session else None
    rows = [[("* " if s.id == current else "") + s.id, s.patient_name or "-", s.created.replace("T", " ")[:16],
             str(s.turns), s.last_question[:60]] for s in sessions[:20]]
    app.r.table("Sessions", ["id", "patient", "created (UTC)", "turns", "last question"], rows)


@command("/resume", "ID")
def _resume(app: "ChatApp", arg: str) -> None:
    """Go back to a saved session: its patient, its earlier turns."""
    if not arg:
        app.r.warn("Usage: /resume ID (/sessions lists them)")
        return
    info = app.store.get(arg)
    if info is None:
        app.r.warn(f"No session '{arg}' (/sessions lists them).")
        return
    try:
        app.resume(info)
    except LookupError as exc:
        app.r.error(f"Cannot resume {info.id}: {exc}")


@command("/model", "SPEC")
def _model(app: "ChatApp", arg: str) -> None:
    """Switch the model: embedded, openai:MODEL@URL, hf:/path or scripted:FILE."""
    if not arg:
        app.r.info(f"Model: {app.spec}. Usage: /model SPEC")
        return
    try:
        app.set_model(arg)
    except (ValueError, FileNotFoundError) as exc:
        app.r.error(f"{exc}")
        return
    app.r.info(f"Model: {app.spec} (the conversation goes on).")


@command("/image", "PATH")
def _image(app: "ChatApp", arg: str) -> None:
    """Attach an image (PNG, JPEG, DICOM) to the next question: shown to a multimodal model, and the query for image search."""
    from agent.images_in import load_question_image

    if not arg:
        app.r.info(f"Next question's image: {app.next_image or 'none'}. Usage: /image PATH")
        return
    try:
        load_question_image(arg)   # refuse an unreadable image now, not after the question
    except ValueError as exc:
        app.r.warn(str(exc))
        return
    app.next_image = arg
    app.r.info(f"{arg} goes with your next question.")


@command("/redact", "on|off")
def _redact(app: "ChatApp", arg: str) -> None:
    """Keep patient content out of the next turns' traces (on) or not (off)."""
    if arg.lower() not in ("on", "off"):
        app.r.info(f"Redaction is {'on' if app.redact else 'off'}. Usage: /redact on|off")
        return
    app.redact = arg.lower() == "on"
    app.r.info(f"Redaction {'on: traces of the next turns leave patient content out' if app.redact else 'off'}.")


@command("/confirm")
def _confirm(app: "ChatApp", arg: str) -> None:
    """Submit the order the assistant drafted last (shown first; needs a writable session)."""
    from tools.ehr import EhrSession
    from tools.ehr.results import describe

    drafts = [c for t in (app.store.turns(app.session.id) if app.session else []) for c in t.tool_calls
              if c.name == "draft_order" and not c.error]
    if not drafts or app.patient is None:
        app.r.warn("No drafted order in this session to confirm.")
        return
    writer = EhrSession(app.backend, patient_id=app.patient_id, read_only=app.settings.read_only)
    drafted = writer.draft_order(**drafts[-1].args)    # the same arguments give the same draft
    if drafted.error or not drafted.resources:
        app.r.error(f"The draft cannot be rebuilt: {drafted.error}")
        return
    app.r.show(Text(describe(drafted.resources[0])))
    if app.settings.read_only:
        app.r.warn("This session is read-only (settings: read_only = true): nothing was written. "
                   "Set MEDAGENT_READ_ONLY=false to allow submitting orders.")
        return
    if arg.lower() not in ("yes", "y") and not _yes(app, "Submit this order to the record? [y/N] "):
        app.r.info("Not submitted.")
        return
    stored = writer.submit_order(drafted.resources[0], confirm=True)
    (app.r.error if stored.error else app.r.say)(stored.text.splitlines()[0])


def _yes(app: "ChatApp", question: str) -> bool:
    import sys

    sys.stdout.write(question)
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


@command("/save", "FILE")
def _save(app: "ChatApp", arg: str) -> None:
    """Save this session's conversation as Markdown, with the records each answer cites."""
    turns = app.store.turns(app.session.id) if app.session else []
    if not arg or not turns:
        app.r.warn("Usage: /save FILE (after at least one question)")
        return
    lines = [f"# medagent chat: {app.patient_name or 'no patient'}", "",
             f"Session `{app.session.id}` · patient `Patient/{app.patient_id}` · model `{app.spec}` · "
             f"saved {datetime.now().isoformat(timespec='minutes')}", ""]
    for turn in turns:
        lines += [f"## {turn.number}. {turn.question}", "", turn.answer or f"*({turn.status})*", ""]
        if turn.cited_ids:
            lines += ["Sources:", ""] + [f"- `{ref}`: {source_text(app, ref)}" for ref in turn.cited_ids] + [""]
        elif turn.status == "completed":
            lines += ["Sources: none (no record a tool returned backs this answer).", ""]
    path = Path(arg).expanduser()
    path.write_text("\n".join(lines))
    app.r.info(f"Saved {len(turns)} turn(s) to {path}")


@command("/quit")
def _quit(app: "ChatApp", arg: str) -> str:
    """Leave the chat (Ctrl-D too); the session is saved, /resume ID brings it back."""
    if app.session is not None:
        app.r.info(f"Session {app.session.id} saved: medagent chat --session {app.session.id}")
    return "quit"


def _name(patient: dict[str, Any]) -> str:
    from tools.ehr.results import human_name

    return human_name(patient.get("name"))
