"""What a question licenses a planner to do: the filters, order and answer form it asks for.

Small instruction-tuned models fill every optional argument under constrained decoding: the
1.5B embedded default copied the reference date into ``date_from``, added ``status completed``
and ``category medication`` to every prescription search, searched "first prescribed" newest
first, and each of these hid the record that answered. The functions here read the question
(and the tool results this question has seen) and

- leave out of the turn's JSON schema the filters the question does not ask for
  (``unasked_filters``), so a constrained model cannot write them;
- drop such filters from a parsed call before it runs (``ground_filters``: dates, status,
  category, the free-form ``filters``) and set the order "first"/"latest" asks for, each with a
  note for the trace, for backends without constrained decoding;
- name the form of answer the question wants (``answer_form``);
- catch a final answer that denies the records the last search just found (``denial_of_results``).

Pure functions of text: ``agent/planning.py`` applies them to each planner turn.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from langchain_core.messages import BaseMessage

from .protocol.types import ParsedOutput, ToolCall

# The lines agent/graph/nodes.py adds under a question: the chart banner, the answer form, the
# reference date.
CONTEXT_LINES = ("Patient: ", "Answer with: ", "Reference date (today): ")
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
    """The last question's text (without the lines under it) and the reference date, if any."""
    for m in reversed(messages):
        text = m.content if isinstance(m.content, str) else ""
        if m.type == "human" and text.startswith("Question: "):
            found = REFERENCE_DATE.search(text)
            question = text[len("Question: "):]
            for marker in CONTEXT_LINES:  # the lines graph/nodes.py adds under the question are not it
                question = question.split(f"\n{marker}")[0]
            return question.strip(), (found.group(1) if found else None)
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


# The status a question's words mean (first match wins), where they mean one plainly.
STATUS_MEANT = (
    (re.compile(r"\b(stopped|discontinued)\b", re.I), "stopped"),
    (re.compile(r"\b(resolved)\b", re.I), "resolved"),
    (re.compile(r"\b(active|current|currently|ongoing|still|taking)\b", re.I), "active"),
)


def _grounded_category(category: str, question: str) -> bool:
    """A category the question names, in any form: 'labs' for laboratory, 'vitals' for vital-signs,
    'emergency' for EMER (a word of the question starting a word of the category, or the reverse)."""
    from tools.ehr.categories import CATEGORY_ALIASES

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
    wanted = next((status for words, status in STATUS_MEANT if words.search(question)), None)
    dropped: list[str] = []
    calls = []
    for call in parsed.calls:
        args = dict(call.args)
        if "status" in args and not asks_status:
            dropped.append(f"{call.name}.status={args.pop('status')}")
        elif "status" in args and wanted and str(args["status"]).strip().lower() != wanted:
            # "currently taking naproxen?" searched with status completed: the words mean active
            dropped.append(f"{call.name}.status={args['status']} (the question means {wanted})")
            args["status"] = wanted
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


def ground_lookup(parsed: ParsedOutput, question: str) -> str | None:
    """A patient lookup keeps only what the question gives: an identifier that appears in it,
    a gender when it names one, and the birth date as the question states it."""
    if parsed.kind != "calls":
        return None
    dropped, fixed = [], []
    stated = question_dates(question) if any(c.name == "find_patient" for c in parsed.calls) else []
    for call in parsed.calls:
        if call.name != "find_patient":
            continue
        ident = str(call.args.get("identifier") or "").strip()
        if ident and ident.lower() not in question.lower():
            dropped.append(f"find_patient.identifier={call.args.pop('identifier')}")
        if call.args.get("gender") and not GENDER_WORDS.search(question):
            dropped.append(f"find_patient.gender={call.args.pop('gender')}")
        given = str(call.args.get("birth_date") or "").strip()
        if given and len(stated) == 1 and given != stated[0]:
            # "born September 19, 1910" became birth_date 1910-09-01 and the lookup found no one
            fixed.append(f"find_patient.birth_date={stated[0]} as the question states it (was {given})")
            call.args["birth_date"] = stated[0]
    notes = [f"dropped {', '.join(dropped)}: the question gives no such detail"] if dropped else []
    return "; ".join([*notes, *(f"set {f}" for f in fixed)]) or None


_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATE_TEXT = re.compile(
    rf"\b(\d{{4}}-\d{{2}}-\d{{2}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}|\d{{1,2}}/\d{{1,2}}/\d{{4}})\b", re.I)


def question_dates(question: str) -> list[str]:
    """The full dates a question states, as YYYY-MM-DD ('September 19, 1910', '19 Sept 1910',
    '09/19/1910' US order, '1910-09-19'), in order, without repeats."""
    from dateutil import parser as dates

    found: dict[str, None] = {}
    for text in _DATE_TEXT.findall(question):
        try:
            found[dates.parse(re.sub(r"(?<=\d)(st|nd|rd|th)\b|\bof\b", "", text)).date().isoformat()] = None
        except (ValueError, OverflowError):
            continue
    return list(found)


def ground_filters(parsed: ParsedOutput, messages: Sequence[BaseMessage]) -> str | None:
    """Every filter guard in turn; the notes joined for the trace, or None when nothing was dropped."""
    question, today = question_turn(messages)
    seen = _results_text(messages)
    notes = [ground_date_filters(parsed, question, today, seen=seen), ground_free_filters(parsed, question, today, seen),
             ground_status_category(parsed, question), ground_sort(parsed, question), ground_lookup(parsed, question)]
    return "; ".join(n for n in notes if n) or None


# A patient lookup ("the patient id of Sydney Oberbrunner, born 1910-09-19") was sent with an
# invented identifier "1234567890" and gender "male": no patient matched.
GENDER_WORDS = re.compile(r"\b(male|female|man|woman|men|women|boy|girl|he|she|his|her|him|gender|sex)\b", re.I)
IDENTIFIER = re.compile(r"\b(mrn|identifier|medical record number|ssn)\b|\b[A-Za-z]*\d{5,}\b", re.I)
COMPARISON_WORDS = re.compile(r"(\b(above|below|over|under|greater|less|more than|higher|lower|exceed\w*|at least|"
                              r"at most|positive|negative|abnormal|elevated)\b|[<>])", re.I)


def unasked_filters(messages: Sequence[BaseMessage], schemas: Sequence[Mapping[str, Any]]) -> list[str]:
    """The filter arguments the constrained decoder leaves out this turn, so a model cannot
    give what the guards above would drop (and spends no tokens writing it): ``status`` unless
    the question asks about one, ``category`` unless it names any category, and the dates on
    a first turn whose question names no period (later turns may filter by a date a result
    showed; ``ground_date_filters`` still judges those)."""
    from tools.ehr.categories import CATEGORY_ALIASES, CATEGORY_CODES

    question, _ = question_turn(messages)
    text = question.lower()
    # Allergy categories (food, medication, ...) count only in a question about allergies:
    # 'medication' in any medication question would otherwise open the category every time.
    # Encounter classes and report sections are codes (ACUTE, LAB): only their aliases count,
    # or "acute bronchitis" would open the category.
    forms = {a for t, aliases in CATEGORY_ALIASES.items() for a in aliases}
    forms |= {c.lower() for t in ("Observation", "Condition", "MedicationRequest") for c in CATEGORY_CODES[t].split()}
    forms |= {f.replace("-", " ") for f in forms}
    names_category = "allerg" in text or any(re.search(rf"\b{re.escape(f)}s?\b", text) for f in forms)
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
    if not GENDER_WORDS.search(question):
        unasked.add("gender")
    if not IDENTIFIER.search(question):
        unasked.add("identifier")
    return [f"{s['name']}.{arg}" for s in schemas for arg in (s.get("parameters") or {}).get("properties", {})
            if arg in unasked]


# The answer a question asks for, by its form ("Who ...", "When ...", "How many ..."): the
# 1.5B default answered "who last prescribed leuprolide?" with a date, "the latest prescription
# for acute bronchitis" with a date and an id, and "her weight when her BMI was last checked"
# with the BMI, each time with the answer in the tool result. First match wins.
ANSWER_FORMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bpatient id\b|\bid of\b", re.I), "the patient's id"),
    (re.compile(r"^\s*(when|(at|on|during) the (visit|day|encounter|time))\b[^?]*,\s*(what|how)\b", re.I),
     "the value, unit and date of the thing asked (first find the date of the other, then search on it)"),
    (re.compile(r"^\s*(who|whom)\b|^\s*which (clinician|doctor|provider|practitioner|physician|prescriber)\b", re.I),
     "a person's name (the prescriber is the by column of the newest row, however long ago)"),
    (re.compile(r"\bhow old\b|\bage\b", re.I), "an age in years (the Patient line above gives it)"),
    # (it was "a count (the 'N found' figure)", and the 1.5B default answered "N found")
    (re.compile(r"^\s*how (many|often)\b", re.I), "a number: how many records the search found"),
    (re.compile(r"^\s*(when|on what date|what date|what day)\b|^\s*what (is|was) the date\b", re.I), "a date"),
    (re.compile(r"^\s*(is|are|was|were|has|have|had|does|do|did)\b", re.I), "yes or no, then the record that shows it"),
    # "What was the latest prescription for acute bronchitis?": with the row in front of it
    # (drug, prescriber, reason = the condition), the 1.5B default answered "no prescription
    # found" 7 times in 9 until told where the answer is; and "which medication was most
    # recently prescribed" with "none" when the row was two years before the reference date,
    # until told "however long ago" (3 of 3).
    (re.compile(r"\b(prescription|drug|medication|medicine)s?\b.*\b(for|to treat)\b", re.I),
     "a drug name: the display of the newest row whose reason column is that condition, however long ago"),
    (re.compile(r"^\s*(what|which) (drug|medication|medicine)\b", re.I), "a drug name"),
    (re.compile(r"^\s*(what|which)\b", re.I), "the value, unit and date"),
)


# "When her BMI was last checked, what was her weight?", "At the visit where the BMI was most
# recently recorded, what was the height?": the anchor (BMI) and the thing asked (weight).
_TWO_STEP = re.compile(
    r"^\s*(?:when|(?:at|on|during) the (?:visit|day|encounter|time)(?: where| when| that)?)\s+(?P<anchor>[^,?]+?)"
    r"\s+(?:was|were)\s+(?:last|most recently|first)?\s*(?:checked|measured|recorded|taken|done)\s*,\s*"
    r"(?:what|how much)\s+(?:was|is|were)\s+(?P<thing>[^?]+)", re.I)
_TWO_STEP_AFTER = re.compile(
    r"^\s*(?:what|how much)\s+(?:was|is|were)\s+(?P<thing>[^?]+?)\s+(?:when|at the visit where|on the day)\s+"
    r"(?P<anchor>[^?]+?)\s+(?:was|were)\s+(?:last|most recently|first)?\s*(?:checked|measured|recorded|taken|done)\b",
    re.I)
_OWNER = re.compile(r"^(?:the patient's|the patient|their|her|his|the)\s+", re.I)


def _two_step(question: str) -> str | None:
    found = _TWO_STEP.search(question) or _TWO_STEP_AFTER.search(question)
    if not found:
        return None
    anchor, thing = (_OWNER.sub("", found.group(g).strip()) for g in ("anchor", "thing"))
    return (f"the {thing}'s value, unit and date: first search {anchor} (newest first) for its date, "
            f"then search {thing} on that date")


def answer_form(question: str) -> str | None:
    """'a date', 'a person's name ...', 'yes or no ...': the form of answer ``question`` asks for;
    for a question about one thing at the time of another, the two searches, named."""
    return _two_step(question) or next((form for pattern, form in ANSWER_FORMS if pattern.search(question)), None)


# A final answer that says nothing was found, given right after a search that found records:
# the 1.5B default answered "No medication was most recently prescribed for the patient's acute
# bronchitis" under a result whose first line read "Acetaminophen 325 MG Oral Tablet was
# prescribed on 2014-02-03 ... for Acute bronchitis". Not for yes/no questions: there a 'no'
# beside near-miss rows ("Prediabetes" for "diabetes") can be right.
_DENIAL = re.compile(r"^\W*(no|none|nothing|not found|there (is|are|was|were) no)\b", re.I)
DENIAL_NOTE = ("Your answer says none was found, but the last search found records; its first line: "
               "\"{line}\". Answer the question from those records.")


def denial_of_results(answer: str, question: str, results: Sequence[tuple[str, str]], ids: Sequence[str]) -> str | None:
    """The note that asks once for an answer from the records when ``answer`` denies that the
    last step (``results``, resting on ``ids``) found any; None when it does not."""
    if not ids or not _DENIAL.match(answer or ""):
        return None
    if (answer_form(question) or "").startswith("yes or no"):
        return None
    line = next((text.strip().splitlines()[0] for _, text in results if text.strip()), "")
    return DENIAL_NOTE.format(line=line[:240])
