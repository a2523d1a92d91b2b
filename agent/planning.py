"""One planning turn: ask the model, read its output, repair once, or fail cleanly.

``plan_turn`` is what the agent's plan node calls. It never raises for a bad model output:
the result carries a status, ``ok`` (tool calls or an answer), ``invalid_action`` (no usable
output after one repair turn that showed the model its error) or ``model_error`` (the backend
failed: unreachable server, missing weights). Every model call is kept as a ``ModelCall``
record for the trace (raw output, tokens, latency, constrained or not, prompt hashes).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from .protocol.parser import parse_output, validate_calls
from .protocol.prompting import prompt_ids, repair_messages
from .protocol.schema import action_schema
from .protocol.types import ParsedOutput, ToolCall

Status = Literal["ok", "invalid_action", "model_error"]


@dataclass
class ModelCall:
    raw_output: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    constrained: bool
    prompts: dict[str, str] = field(default_factory=dict)  # prompt name -> sha256
    repair: bool = False
    error: str | None = None


@dataclass
class TurnResult:
    status: Status
    parsed: ParsedOutput
    calls: list[ModelCall] = field(default_factory=list)
    error: str | None = None

    @property
    def repaired(self) -> bool:
        return self.status == "ok" and len(self.calls) > 1

    @property
    def input_tokens(self) -> int:
        return sum(c.input_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.output_tokens for c in self.calls)


def _invoke(model: BaseChatModel, messages: Sequence[BaseMessage], schema: dict | None, repair: bool) -> ModelCall:
    start = time.perf_counter()
    kwargs: dict[str, Any] = {"json_schema": schema} if schema is not None else {}
    message = model.invoke(list(messages), **kwargs)
    usage = getattr(message, "usage_metadata", None) or {}
    meta = getattr(message, "response_metadata", None) or {}
    content = message.content if isinstance(message.content, str) else str(message.content)
    # A backend whose server refused the grammar answered unconstrained, and says why.
    constrained = schema is not None and meta.get("constrained", True) is not False
    return ModelCall(raw_output=content, input_tokens=int(usage.get("input_tokens", 0)),
                     output_tokens=int(usage.get("output_tokens", 0)),
                     latency_s=time.perf_counter() - start, constrained=constrained,
                     prompts=prompt_ids(messages), repair=repair, error=meta.get("grammar_note") or None)


def read_output(raw: str, schemas: Sequence[Mapping[str, Any]]) -> tuple[ParsedOutput, str | None]:
    """Parse and validate one output; the error says what is wrong, for the repair turn."""
    parsed = parse_output(raw, [s["name"] for s in schemas])
    if parsed.kind == "invalid":
        return parsed, parsed.error or "no tool call or answer found"
    if parsed.error:  # e.g. a call to an unknown tool
        return parsed, parsed.error
    if parsed.kind == "calls":
        problems = validate_calls(parsed.calls, schemas)
        if problems:
            return parsed, "; ".join(problems)
    return parsed, None


# How agent/graph/nodes.py states the reference date in the question turn.
REFERENCE_DATE = re.compile(r"^Reference date \(today\): (\d{4}-\d{2}-\d{2})\b", re.M)
# Words by which a question names a period: a year, "since", "in the past 6 months", "3 years
# ago". A bare "last" is not one ("when was her BMI last checked" names no period).
PERIOD_WORDS = re.compile(
    r"\b(1[89]\d\d|20\d\d|since|before|after|between|during|ago|within|until|today|yesterday|january|february|"
    r"march|april|may|june|july|august|september|october|november|december)\b"
    r"|\b(last|past|previous|prior|this|recent)\s+(\d+\s+|few\s+|several\s+|two\s+|three\s+|six\s+|twelve\s+)?"
    r"(years?|months?|weeks?|days?|decades?)\b|\b\d+\s+(years?|months?|weeks?|days?)\b", re.I)
_DATE_ARGS = ("date_from", "date_to")


def question_turn(messages: Sequence[BaseMessage]) -> tuple[str, str | None]:
    """The last question's text (without the banner and reference-date lines) and the reference date, if any."""
    for m in reversed(messages):
        text = m.content if isinstance(m.content, str) else ""
        if m.type == "human" and text.startswith("Question: "):
            found = REFERENCE_DATE.search(text)
            question = text[len("Question: "):found.start() if found else len(text)]
            question = question.split("\nPatient: ")[0].strip()  # the banner line (graph/nodes.py) is not the question
            return question, (found.group(1) if found else None)
    return "", None


def _results_text(messages: Sequence[BaseMessage]) -> str:
    """The text of every turn after the last question: the tool results this question has seen."""
    at = max((i for i, m in enumerate(messages) if isinstance(m.content, str) and m.content.startswith("Question: ")),
             default=len(messages))
    return "\n".join(m.text for m in messages[at + 1:])


def ground_date_filters(parsed: ParsedOutput, question: str, today: str | None, seen: str = "") -> str | None:
    """Date filters the question gives no ground for are dropped before the call runs.

    Small instruct models fill every optional argument under constrained decoding: they copied
    the reference date into ``date_from`` (a search from today on finds nothing the record holds
    as of today) and, given no date, invented one ("most recent HbA1c" searched 2023 only). So a
    ``date_from`` equal to the reference date always goes, and when the question names no period
    (``PERIOD_WORDS``) every other date goes too, except a ``date_to`` equal to the reference date
    ("as of today", what the reference date means) and a date an earlier result of this question
    showed (``seen``: "the height on the day of the last BMI" searches that day). Returns a note
    for the trace, or None."""
    if parsed.kind != "calls":
        return None
    names_period = bool(PERIOD_WORDS.search(question))
    dropped: list[str] = []
    calls = []
    for call in parsed.calls:
        args = dict(call.args)
        for key in _DATE_ARGS:
            if key not in args:
                continue
            is_today = today is not None and str(args[key]) == today
            shown = not is_today and bool(args[key]) and str(args[key]) in seen  # a date a result showed
            if (key == "date_from" and is_today) or (not names_period and not shown
                                                      and not (key == "date_to" and is_today)):
                dropped.append(f"{call.name}.{key}={args.pop(key)}")
        calls.append(ToolCall(name=call.name, args=args))
    if not dropped:
        return None
    parsed.calls = calls
    why = "the reference date is context, not a filter" if names_period else "the question names no period"
    return f"dropped {', '.join(dropped)}: {why}"


# Words by which a question asks about a status ("currently taking", "still active", "resolved").
STATUS_WORDS = re.compile(
    r"\b(active|current|currently|ongoing|still|now|present|presently|taking|stopped|discontinued|completed?|"
    r"resolved|inactive|finished|cancell?ed|remission|relapsed?|recurrence|on hold|in progress)\b", re.I)


def _grounded_category(category: str, question: str) -> bool:
    """A category the question names, in any form: 'labs' for laboratory, 'vitals' for vital-signs,
    'emergency' for EMER (a word of the question starting a word of the category, or the reverse)."""
    from tools.ehr.resolve import CATEGORY_ALIASES

    value = next((v for aliases in CATEGORY_ALIASES.values() for a, v in aliases.items() if a == category.lower()),
                 category).lower()
    forms = {category.lower(), value} | {a for aliases in CATEGORY_ALIASES.values() for a, v in aliases.items()
                                         if v.lower() == value}
    text = question.lower()
    if any(re.search(rf"\b{re.escape(f)}\b", text) for f in forms):   # 'ER' for EMER
        return True
    parts = {w for f in forms for w in re.split(r"[^a-z]+", f) if len(w) >= 3}
    words = {w for w in re.split(r"[^a-z]+", text) if len(w) >= 3}
    return any(p.startswith(w) or w.startswith(p) for p in parts for w in words)


def ground_status_category(parsed: ParsedOutput, question: str) -> str | None:
    """``status`` and ``category`` filters the question gives no ground for are dropped.

    The same habit as the dates: a 1.5B model searched "When was clopidogrel last prescribed?"
    with status completed and category medication, and "the most recent BMI" with status final
    and category laboratory; each filter hid the record that answered. A status stays when the
    question asks about one (``STATUS_WORDS``: "currently taking", "still active"); a category
    stays when the question names it ('labs', 'vital signs', 'emergency visits')."""
    if parsed.kind != "calls":
        return None
    asks_status = bool(STATUS_WORDS.search(question))
    dropped: list[str] = []
    calls = []
    for call in parsed.calls:
        args = dict(call.args)
        if "status" in args and not asks_status:
            dropped.append(f"{call.name}.status={args.pop('status')}")
        if "category" in args and not _grounded_category(str(args["category"]), question):
            dropped.append(f"{call.name}.category={args.pop('category')}")
        calls.append(ToolCall(name=call.name, args=args))
    if not dropped:
        return None
    parsed.calls = calls
    return f"dropped {', '.join(dropped)}: the question asks for no such filter"


FIRST_WORDS = re.compile(r"\b(first|earliest|initial|initially|oldest)\b", re.I)
LAST_WORDS = re.compile(r"\b(last|latest|most recent|newest|recent|current)\b", re.I)


def ground_sort(parsed: ParsedOutput, question: str) -> str | None:
    """The order the question asks for: "when was oxycodone first prescribed?" was searched
    newest first with limit 1, and the 1.5B model answered with the newest. A question that
    says first/earliest gets oldest first; one that says last/latest, newest first."""
    if parsed.kind != "calls":
        return None
    want = "date" if FIRST_WORDS.search(question) else "-date" if LAST_WORDS.search(question) else None
    changed = []
    for call in parsed.calls:
        if call.name != "search_records" or want is None:
            continue
        given = str(call.args.get("sort") or "-date").strip()
        if given.lstrip("-") in ("date", "newest", "oldest", "") and given != want:
            call.args["sort"] = want
            changed.append(f"{call.name}.sort={given}->{want}")
    return f"set {', '.join(changed)}: the order the question asks for" if changed else None


# FHIR date search parameters a model may put in ``filters`` instead of date_from/date_to.
_DATE_FILTER_KEYS = {"date", "authoredon", "onset-date", "abatement-date", "recorded-date", "occurrence", "period",
                     "issued", "effective", "_lastupdated", "performed"}
_DATE_VALUE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap|[<>]=?)?\s*(\d{4}(-\d{2}){0,2})")


def ground_free_filters(parsed: ParsedOutput, question: str, today: str | None, seen: str = "") -> str | None:
    """The free-form ``filters`` get the same judgement as the named filters. With dates left out
    of its schema, the 1.5B model wrote them into filters instead ({"date": "<reference date>"}),
    A date key or date value goes unless the question names a period or an earlier result
    showed that date; {} goes. (A patient key is the tool's to judge: the bound patient is
    redundant there, another patient is refused, never silently swapped for the bound one.)"""
    if parsed.kind != "calls":
        return None
    names_period = bool(PERIOD_WORDS.search(question))
    dropped: list[str] = []
    for call in parsed.calls:
        filters = call.args.get("filters")
        if not isinstance(filters, dict):
            continue
        kept = {}
        for key, value in filters.items():
            base = re.split(r"[:.]", str(key).strip().lower())[0]
            found = _DATE_VALUE.match(str(value).strip())
            day = found.group(2) if found else None
            is_date = base in _DATE_FILTER_KEYS or day is not None
            grounded = day != today and (names_period or (day is not None and day in seen))
            if is_date and not grounded:
                dropped.append(f"{call.name}.filters.{key}={value}")
            else:
                kept[key] = value
        if kept:
            call.args["filters"] = kept
        else:
            del call.args["filters"]
    return f"dropped {', '.join(dropped)}: the question names no such date" if dropped else None


def ground_filters(parsed: ParsedOutput, messages: Sequence[BaseMessage]) -> str | None:
    """Every filter guard in turn; the notes joined for the trace, or None when nothing was dropped."""
    question, today = question_turn(messages)
    seen = _results_text(messages)
    notes = [ground_date_filters(parsed, question, today, seen=seen), ground_free_filters(parsed, question, today, seen),
             ground_status_category(parsed, question), ground_sort(parsed, question)]
    return "; ".join(n for n in notes if n) or None


COMPARISON_WORDS = re.compile(r"(\b(above|below|over|under|greater|less|more than|higher|lower|exceed\w*|at least|"
                              r"at most|positive|negative|abnormal|elevated)\b|[<>])", re.I)


def unasked_filters(messages: Sequence[BaseMessage], schemas: Sequence[Mapping[str, Any]]) -> list[str]:
    """The filter arguments the constrained decoder leaves out this turn, so a model cannot
    give what the guards above would drop (and spends no tokens writing it): ``status`` unless
    the question asks about one, ``category`` unless it names any category, and the dates on
    a first turn whose question names no period (later turns may filter by a date a result
    showed; ``ground_date_filters`` still judges those)."""
    from tools.ehr.resolve import CATEGORY_ALIASES, CATEGORY_CODES

    question, _ = question_turn(messages)
    text = question.lower()
    # Allergy categories (food, medication, ...) count only in a question about allergies:
    # 'medication' in any medication question would otherwise open the category every time.
    forms = {a for t, aliases in CATEGORY_ALIASES.items() for a in aliases}
    forms |= {c.lower() for t, codes in CATEGORY_CODES.items() if t != "AllergyIntolerance"
              for c in codes.split() if len(c) > 3}
    names_category = "allerg" in text or any(re.search(rf"\b{re.escape(f)}", text) for f in forms)
    unasked = set()
    if not STATUS_WORDS.search(question):
        unasked.add("status")
    if not names_category:
        unasked.add("category")
    first_turn = not _results_text(messages).strip()
    if not PERIOD_WORDS.search(question) and first_turn:
        unasked |= set(_DATE_ARGS)
    if first_turn and not COMPARISON_WORDS.search(question):  # filters: value thresholds and the like
        unasked.add("filters")
    return [f"{s['name']}.{arg}" for s in schemas for arg in (s.get("parameters") or {}).get("properties", {})
            if arg in unasked]


def plan_turn(model: BaseChatModel, messages: Sequence[BaseMessage], schemas: Sequence[Mapping[str, Any]], *,
              constrained: bool = True, narrow: Mapping[str, Sequence[Any]] | None = None,
              thinking: bool = False, repair: bool = True) -> TurnResult:
    """Ask for the next action. ``constrained`` uses the backend's JSON-schema decoding when
    it has one (not with ``thinking``: a grammar that starts at '{' leaves no room to think)."""
    schema = None
    if constrained and not thinking and getattr(model, "supports_json_schema", False):
        schema = action_schema(schemas, narrow=narrow, omit=unasked_filters(messages, schemas))
    records: list[ModelCall] = []
    attempt_messages = list(messages)
    parsed = ParsedOutput(kind="invalid", error="not run")
    for attempt in range(2 if repair else 1):
        try:
            call = _invoke(model, attempt_messages, schema, repair=attempt > 0)
        except Exception as exc:  # the backend failed; the output was never seen
            message = f"{type(exc).__name__}: {exc}"
            records.append(ModelCall("", 0, 0, 0.0, schema is not None, error=message, repair=attempt > 0))
            return TurnResult("model_error", ParsedOutput(kind="invalid", error=message), records, message)
        records.append(call)
        parsed, error = read_output(call.raw_output, schemas)
        if error is None:
            note = ground_filters(parsed, messages)
            if note:
                call.error = f"{call.error}; {note}" if call.error else note
            return TurnResult("ok", parsed, records)
        call.error = f"{call.error}; {error}" if call.error else error
        attempt_messages = repair_messages(messages, call.raw_output, error)
    return TurnResult("invalid_action", parsed, records, error)
