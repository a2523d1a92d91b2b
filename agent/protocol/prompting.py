"""Prompts as files under ``prompts/``, rendered strictly and hashed; the planner's messages.

``render(name, **variables)`` reads ``prompts/<name>.md`` (a leading ``<!-- ... -->`` comment
documents it and is dropped), substitutes ``$variables`` with ``string.Template`` and fails
loudly on a missing or unused variable; ``sha256`` identifies the exact text in traces.
``planner_messages`` builds the planner's LangChain messages: the system text (tools rendered
from their schemas), the worked examples as real turns (the embedded model is a base model:
it copies the format of the turns it sees), the question, then each step's model turn and its
tool results as a user turn (Gemma has no tool role). ``repair_messages`` adds one repair turn.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from .parser import OBSERVATION_HEADER, format_call, strip_thinking
from .types import ParsedOutput, ToolCall

THINKING_PREFIX = "SYSTEM INSTRUCTION: think silently if needed."
PLANNER, FEWSHOT, REPAIR = "planner", "fewshot_planner", "repair"
MAX_REPAIR_QUOTE = 600      # characters of the bad output quoted in the repair turn
MAX_BAD_TURN = 2000         # characters of the bad output kept as the model's turn
MAX_INLINE_ENUM = 3         # enumerations this short are shown in a tool's signature line
_NAME = re.compile(r"^[a-z0-9_]+$")
_COMMENT = re.compile(r"\A\s*<!--.*?-->[ \t]*\n?", re.S)
_TURN = re.compile(r"^=== (user|model)[ \t]*$", re.M)


class PromptError(ValueError):
    """A prompt that does not exist, or variables that do not fit it."""


@dataclass(frozen=True)
class RenderedPrompt:
    name: str
    text: str
    sha256: str


class Step(NamedTuple):
    """One planner step for the history: the model's turn and the results of its calls.

    ``output``: the raw model text (thinking is dropped), or its ``ParsedOutput`` / calls
    (rendered as canonical JSON). ``results``: ``(tool name, result text)`` per call, in order
    (use ``ToolResult.for_planner()`` for the text).
    """

    output: str | ParsedOutput | Sequence[ToolCall]
    results: Sequence[tuple[str, str]] = ()


# -- rendering -----------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def load_template(name: str) -> str:
    """The template text of ``prompts/<name>.md`` without its leading comment."""
    name = name.removesuffix(".md")
    if not _NAME.match(name):
        raise PromptError(f"bad prompt name {name!r}: use lower-case letters, digits and _")
    path = resources.files("prompts") / f"{name}.md"
    if not path.is_file():
        raise PromptError(f"no prompt '{name}' (prompts/{name}.md)")
    return _COMMENT.sub("", path.read_text(encoding="utf-8"), count=1)


def render(name: str, /, *, thinking: bool = False, **variables: Any) -> RenderedPrompt:
    """Render ``prompts/<name>.md``. Every ``$variable`` in it must be given and every given
    variable used; values must be text or numbers. ``thinking=True`` prepends MedGemma's
    thinking instruction."""
    name = name.removesuffix(".md")
    template = string.Template(load_template(name))
    if not template.is_valid():
        raise PromptError(f"prompt '{name}' has a bad placeholder (write $$ for a dollar sign)")
    wanted = set(template.get_identifiers())
    missing, unused = sorted(wanted - variables.keys()), sorted(variables.keys() - wanted)
    if missing or unused:
        raise PromptError(f"prompt '{name}': " + "; ".join(
            p for p in (f"missing variables {missing}" if missing else "",
                        f"unused variables {unused}" if unused else "") if p))
    for key, value in variables.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise PromptError(f"prompt '{name}': variable '{key}' must be text or a number, not {type(value).__name__}")
    text = template.substitute({k: str(v) for k, v in variables.items()}).strip() + "\n"
    if thinking:
        text = f"{THINKING_PREFIX}\n\n{text}"
    return RenderedPrompt(name=name, text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


# -- the planner's system prompt -------------------------------------------------------------------

def render_tools(tool_schemas: Iterable[Mapping[str, Any]]) -> str:
    """One line per tool: ``- name(arg*, arg, arg="default", kind*: A|B): summary``.

    ``*`` marks a required argument; small enumerations are shown inline (a long one, such as
    the record types, is described once in the prompt and enforced by the schema); the summary
    is the docstring's first line. The planner prompt is sent on every turn, so the full
    per-argument notes stay in the schema's description for agents that want them.
    """
    lines = []
    for spec in tool_schemas:
        spec = spec.get("function", spec)
        params = spec.get("parameters") or {}
        required = set(params.get("required") or [])
        args = ", ".join(_signature_arg(arg, prop, arg in required)
                         for arg, prop in (params.get("properties") or {}).items())
        summary = (spec.get("description") or "").strip().split("\n", 1)[0].strip()
        lines.append(f"- {spec['name']}({args}): {summary}")
    return "\n".join(lines)


def _signature_arg(name: str, prop: Mapping[str, Any], required: bool) -> str:
    text = name + ("*" if required else "")
    if "default" in prop:
        text += f"={_json(prop['default'])}"
    enum = prop.get("enum")
    if enum and len(enum) <= MAX_INLINE_ENUM:
        text += ": " + "|".join(map(str, enum))
    return text


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def planner_system(tool_schemas: Iterable[Mapping[str, Any]], thinking: bool = False) -> RenderedPrompt:
    return render(PLANNER, thinking=thinking, tools=render_tools(tool_schemas))


def fewshot_turns() -> list[BaseMessage]:
    """The worked examples as alternating user/model turns (``prompts/fewshot_planner.md``)."""
    rendered = render(FEWSHOT)
    parts = _TURN.split(rendered.text)
    if parts[0].strip():
        raise PromptError("fewshot_planner: text before the first '=== user' line")
    tag = _tag(rendered)
    turns: list[BaseMessage] = []
    for role, text in zip(parts[1::2], parts[2::2]):
        cls = HumanMessage if role == "user" else AIMessage
        turns.append(cls(content=text.strip(), additional_kwargs=dict(tag)))
    if not turns or not isinstance(turns[0], HumanMessage) or not isinstance(turns[-1], AIMessage):
        raise PromptError("fewshot_planner: examples must start with a user turn and end with a model turn")
    return turns


# -- messages --------------------------------------------------------------------------------------

def format_observation(tool: str, text: str) -> str:
    """A tool result as the planner sees it (a user turn; Gemma has no tool role)."""
    return f"{OBSERVATION_HEADER} ({tool}):\n{text.strip()}"


def planner_messages(question: str, tool_schemas: Iterable[Mapping[str, Any]],
                     history: Sequence[Step | BaseMessage | tuple[Any, ...]] = (),
                     thinking: bool = False, fewshot: bool = True) -> list[BaseMessage]:
    """System text, worked examples (``fewshot``), the question, then the history."""
    if not question or not question.strip():
        raise ValueError("planner_messages needs a question")
    system = planner_system(tool_schemas, thinking=thinking)
    messages: list[BaseMessage] = [SystemMessage(content=system.text, additional_kwargs=_tag(system))]
    if fewshot:
        messages += fewshot_turns()
    messages.append(HumanMessage(content=f"Question: {question.strip()}"))
    for item in history:
        if isinstance(item, BaseMessage):
            messages.append(item)
            continue
        step = item if isinstance(item, Step) else Step(*item)
        messages.append(AIMessage(content=_model_turn(step.output)))
        if step.results:
            messages.append(HumanMessage(content="\n\n".join(format_observation(t, x) for t, x in step.results)))
    return messages


def _model_turn(output: str | ParsedOutput | Sequence[ToolCall]) -> str:
    if isinstance(output, str):
        return strip_thinking(output)
    if isinstance(output, ParsedOutput):
        if output.kind == "answer":
            return _json({"answer": output.answer})
        output = output.calls
    return "\n".join(format_call(c) for c in output)


def repair_messages(previous_messages: Sequence[BaseMessage], bad_output: str, error: str) -> list[BaseMessage]:
    """``previous_messages`` + the bad output as the model's turn + one repair turn that quotes
    it and says what was wrong."""
    bad = strip_thinking(bad_output or "") or (bad_output or "").strip()
    quote = bad if len(bad) <= MAX_REPAIR_QUOTE else bad[:MAX_REPAIR_QUOTE] + " ... (cut)"
    rendered = render(REPAIR, error=(error or "unknown error").strip(), bad_output=quote or "(empty)")
    return [*previous_messages, AIMessage(content=bad[:MAX_BAD_TURN]),
            HumanMessage(content=rendered.text.strip(), additional_kwargs=_tag(rendered))]


def prompt_ids(messages: Iterable[BaseMessage]) -> dict[str, str]:
    """``{prompt name: sha256}`` of the prompt files behind ``messages``, for traces."""
    out: dict[str, str] = {}
    for m in messages:
        tag = m.additional_kwargs.get("prompt")
        if isinstance(tag, Mapping):
            out[tag["name"]] = tag["sha256"]
    return out


def _tag(rendered: RenderedPrompt) -> dict[str, Any]:
    return {"prompt": {"name": rendered.name, "sha256": rendered.sha256}}
