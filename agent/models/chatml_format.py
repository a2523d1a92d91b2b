"""ChatML prompt format (Qwen2.5 instruct models): LangChain messages in, one prompt string out.

    <|im_start|>system
    {system text}<|im_end|>
    <|im_start|>user
    {user text}<|im_end|>
    <|im_start|>assistant
    {model text}<|im_end|>
    ...
    <|im_start|>assistant

What Qwen2.5's own chat template writes (the GGUF's ``tokenizer.chat_template``) for messages
without tools, including its default system text when none is given. The conversation is
first mapped exactly as ``gemma_format.to_turns`` maps it for Gemma (tool results as user turns
in ``tool_output`` fences, consecutive roles merged), so every backend shows a model the same
text; only a leading system message keeps its own role here (ChatML has one).
Turn markers inside message text are defused with a space after the ``<``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langchain_core.messages import BaseMessage

from .gemma_format import MODEL, content_text, to_turns

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
ENDOFTEXT = "<|endoftext|>"
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
_CONTROL_RE = re.compile("|".join(re.escape(t) for t in (IM_START, IM_END, ENDOFTEXT)))


def _defuse(text: str) -> str:
    return _CONTROL_RE.sub(lambda m: "< " + m.group(0)[1:], text)


def to_chatml_prompt(messages: Sequence[BaseMessage], *, default_system: str = DEFAULT_SYSTEM) -> str:
    """The ChatML prompt for ``messages``, ending with ``<|im_start|>assistant\\n``."""
    messages = list(messages)
    system = default_system
    if messages and messages[0].type == "system":
        system = content_text(messages[0].content).strip("\n")
        messages = messages[1:]
    out = [f"{IM_START}system\n{_defuse(system)}{IM_END}\n"]
    turns = to_turns(messages) if messages else []
    for role, text in turns:
        name = "assistant" if role == MODEL else "user"
        out.append(f"{IM_START}{name}\n{_defuse(text)}{IM_END}\n")
    out.append(f"{IM_START}assistant\n")
    return "".join(out)


__all__ = ["IM_START", "IM_END", "ENDOFTEXT", "DEFAULT_SYSTEM", "to_chatml_prompt"]
