"""What the agent graph carries between nodes (checkpointed) and what it is given (not).

State holds ids and compact facts: the question, the patient in scope, each step's model
turn and the text the tools returned (already the compact tables), counters and the outcome.
Never whole bundles. The context holds the live objects a run needs: the model, the EHR
session, the tool schemas, the budgets and the trace writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TypedDict

from langchain_core.language_models import BaseChatModel

from agent.trace.writer import TraceWriter
from tools.ehr import EhrSession


class StepRecord(TypedDict):
    """One act step: the model's turn (canonical JSON) and what each tool returned."""
    output: str
    results: list[tuple[str, str]]     # (tool name, text the planner sees)
    ids: list[str]                     # resource ids those results rest on
    calls: list[dict[str, Any]]        # [{"name", "args"}] as executed


class AgentState(TypedDict, total=False):
    question: str
    patient_id: str | None
    conversation: list[tuple[str, str]]            # earlier (question, answer) pairs of this session
    history: list[StepRecord]                      # this question's steps (replaced whole by each node)
    pending: list[dict[str, Any]]                  # calls chosen by plan, run by act
    step: int                                      # model turns taken for this question
    repeats: int                                   # identical calls caught so far
    challenged: bool                               # an answer denying found records was sent back once
    tool_failures: int                             # consecutive steps whose every call failed
    input_tokens: int
    output_tokens: int
    model_calls: int
    tool_calls: int
    status: str | None
    answer: str | None
    cited_ids: list[str]
    error: str | None


@dataclass
class AgentContext:
    model: BaseChatModel
    session: EhrSession
    schemas: Sequence[Mapping[str, Any]]
    tools: Mapping[str, Callable[..., Any]]
    trace: TraceWriter
    max_steps: int = 8
    max_tokens: int = 60_000
    tool_timeout_s: float = 30.0
    constrained: bool = True
    thinking: bool = False
    narrow: Mapping[str, Sequence[Any]] | None = None
    examples: bool = False      # worked examples in the planner prompt (base models)
    now: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def seen_ids(state: AgentState) -> list[str]:
    seen: dict[str, None] = {}
    for step in state.get("history", []):
        for rid in step["ids"]:
            seen[rid] = None
    return list(seen)


def present_types(session: EhrSession) -> list[str]:
    """The record types the bound patient's record holds (from its manifest)."""
    return [t for t, summary in session.manifest().types.items() if summary.count]
