"""Gemma 3 / MedGemma prompt format: LangChain messages in, one prompt string out.

Gemma 3 knows two roles, ``user`` and ``model``, which must alternate starting with ``user``::

    <start_of_turn>user
    {system text}

    {user text}<end_of_turn>
    <start_of_turn>model
    {model text}<end_of_turn>
    <start_of_turn>user
    ...<end_of_turn>
    <start_of_turn>model

There is no system role (system text goes at the top of the first user turn), no tool role and
no tool-call token. ``to_gemma_prompt`` maps any LangChain conversation onto that shape:

* ``SystemMessage`` at the start: merged into the first user turn (a later one is user text);
* ``HumanMessage`` and ``ToolMessage``: user turns; a tool result is shown in a
  ````tool_output`` fence (Gemma's own convention for function results), headed with the tool
  name when the message has one;
* ``AIMessage``: model turns; one with no text but ``tool_calls`` is shown as a ````tool_code``
  fence holding one ``{"name": ..., "args": ...}`` JSON object a line;
* consecutive messages of one role are merged into one turn (blank line between them), empty
  ones are dropped, an empty user turn is inserted where a conversation would otherwise start
  with the model or end on it, so the roles always alternate and the prompt always ends with
  ``<start_of_turn>model\\n``, ready for generation (``continue_final=True`` instead leaves a
  final model message open, to be continued: a prefill).

Turn markers inside message text (``<start_of_turn>`` and friends, e.g. from a record's free
text) would be read as control tokens by the tokenizer and let data open a turn of its own; they
are defused by a space after the ``<``.

``strip_thinking`` splits MedGemma's ``<unused94>thought\\n...<unused95>answer`` output (the
markers survive ``skip_special_tokens=True``).

Pure functions, no model or tokenizer needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

BOS = "<bos>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"
THINK_START = "<unused94>"
THINK_END = "<unused95>"
IMAGE_TOKEN = "<start_of_image>"

USER = "user"
MODEL = "model"

# Control tokens that message text must not be able to produce.
_CONTROL_TOKENS = (START_OF_TURN, END_OF_TURN, BOS, "<eos>", "<pad>")
_CONTROL_RE = re.compile("|".join(re.escape(t) for t in _CONTROL_TOKENS))


def _defuse(text: str) -> str:
    return _CONTROL_RE.sub(lambda m: "< " + m.group(0)[1:], text)


def content_text(content: str | list[Any]) -> str:
    """The text of a message's ``content``: a string, or LangChain content blocks.

    Text blocks are joined with newlines; image blocks become ``<start_of_image>`` (what
    Gemma 3's own chat template emits for an image item); other blocks are left out.
    """
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict):
            kind = block.get("type")
            if kind == "text":
                parts.append(str(block.get("text", "")))
            elif kind in ("image", "image_url"):
                parts.append(IMAGE_TOKEN)
    return "\n".join(p for p in parts if p)


def render_tool_calls(calls: Sequence[dict[str, Any]]) -> str:
    lines = [json.dumps({"name": c.get("name", ""), "args": c.get("args", {})}, ensure_ascii=False)
             for c in calls]
    return "```tool_code\n" + "\n".join(lines) + "\n```"


def render_tool_result(content: str, name: str | None = None) -> str:
    block = "```tool_output\n" + content.strip("\n") + "\n```"
    return f"{name}:\n{block}" if name else block


def _role_and_text(message: BaseMessage, first_turn: bool) -> tuple[str, str]:
    text = content_text(message.content)
    if isinstance(message, AIMessage) or message.type in ("ai", "AIMessageChunk"):
        calls = getattr(message, "tool_calls", None) or []
        if not text.strip() and calls:
            text = render_tool_calls(calls)
        return MODEL, text
    if isinstance(message, ToolMessage) or message.type == "tool":
        return USER, render_tool_result(text, getattr(message, "name", None))
    if isinstance(message, SystemMessage) or message.type == "system":
        return ("system" if first_turn else USER), text
    if isinstance(message, HumanMessage) or message.type in ("human", "user", "chat", "function"):
        return USER, text
    return USER, text


def to_turns(messages: Sequence[BaseMessage]) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` with roles alternating ``user``/``model``, starting with ``user``.

    Text is defused (see the module doc) but not yet wrapped in turn markers.
    """
    system: list[str] = []
    turns: list[tuple[str, list[str]]] = []
    for message in messages:
        role, text = _role_and_text(message, first_turn=not turns)
        text = _defuse(text)
        if not text.strip():
            continue
        if role == "system":
            system.append(text.strip("\n"))
            continue
        if turns and turns[-1][0] == role:
            turns[-1][1].append(text.strip("\n"))
        else:
            turns.append((role, [text.strip("\n")]))
    if system:
        if turns and turns[0][0] == USER:
            turns[0][1][:0] = system
        else:
            turns.insert(0, (USER, system))
    if not turns or turns[0][0] != USER:
        turns.insert(0, (USER, []))
    return [(role, "\n\n".join(parts)) for role, parts in turns]


def to_gemma_prompt(messages: Sequence[BaseMessage], *, bos: bool = False,
                    continue_final: bool = False) -> str:
    """The Gemma 3 prompt for ``messages``, ending with ``<start_of_turn>model\\n``.

    ``bos=True`` puts the literal ``<bos>`` in front (for tokenizers called without special
    tokens); by default the tokenizer is expected to add BOS itself.
    ``continue_final=True``: when the last message is the model's, leave its turn open so
    generation continues it (a prefill) instead of closing it and asking for a new turn.
    """
    turns = to_turns(messages)
    open_last = continue_final and turns[-1][0] == MODEL
    if turns[-1][0] == MODEL and not open_last:
        turns.append((USER, ""))
    out = [BOS] if bos else []
    for i, (role, text) in enumerate(turns):
        if open_last and i == len(turns) - 1:
            out.append(f"{START_OF_TURN}{MODEL}\n{text}")
            return "".join(out)
        out.append(f"{START_OF_TURN}{role}\n{text}{END_OF_TURN}\n")
    out.append(f"{START_OF_TURN}{MODEL}\n")
    return "".join(out)


_THOUGHT_LABEL = re.compile(r"^\s*thought\s*\n?")


def strip_thinking(text: str) -> tuple[str, str | None]:
    """``(answer, thinking)`` from MedGemma output; ``thinking`` is None when there was none.

    ``<unused94>thought\\n...<unused95>answer``: the text between the markers (without the
    ``thought`` label) is the thinking, what follows the end marker the answer. Output cut off
    inside the thinking (no end marker) is all thinking with an empty answer; an end marker
    without a start marker (the start was in the prompt) ends the thinking. Several blocks are
    joined with blank lines.
    """
    if THINK_START not in text and THINK_END not in text:
        return text.strip(), None
    thoughts: list[str] = []
    answer: list[str] = []
    rest = text
    if THINK_END in rest and (THINK_START not in rest or rest.index(THINK_END) < rest.index(THINK_START)):
        head, _, rest = rest.partition(THINK_END)
        thoughts.append(head)
    while rest:
        before, found, after = rest.partition(THINK_START)
        answer.append(before)
        if not found:
            break
        thought, ended, rest = after.partition(THINK_END)
        thoughts.append(thought)
        if not ended:
            break
    cleaned = [_THOUGHT_LABEL.sub("", t, count=1).strip() for t in thoughts]
    thinking = "\n\n".join(t for t in cleaned if t)
    return "".join(answer).replace(THINK_END, "").strip(), thinking or None


__all__ = [
    "BOS", "START_OF_TURN", "END_OF_TURN", "THINK_START", "THINK_END", "IMAGE_TOKEN",
    "content_text", "render_tool_calls", "render_tool_result", "to_turns", "to_gemma_prompt",
    "strip_thinking",
]
