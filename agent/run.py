"""Run the agent on one question about one patient: the entry point for ``medagent ask``, the
EHR question-answering pipeline and the benchmarks.

``run_question`` wires a backend, an EHR session bound to the patient, a model, the chosen
strategy's graph and a trace writer, runs the graph and returns a ``RunResult``. A session
id keeps a multi-turn conversation in a SQLite checkpointer so it can be resumed.
"""

from __future__ import annotations

import importlib.metadata
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence

from langchain_core.language_models import BaseChatModel

from agent.graph.state import AgentContext, present_types
from agent.models import uses_examples
from agent.protocol.prompting import FEWSHOT, planner_system, render
from agent.protocol.schema import tool_schemas
from agent.trace.records import RunEnd, RunHeader
from agent.trace.writer import TraceWriter
from tools.ehr import EhrSession
from tools.fhir.backend import FhirBackend

Strategy = Literal["react", "navigator"]


@dataclass
class RunResult:
    answer: str
    status: str
    cited_ids: list[str] = field(default_factory=list)
    steps: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    trace_path: str | None = None
    run_id: str = ""
    session_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _versions() -> dict[str, str]:
    out = {}
    for name in ("medagent", "langgraph", "langchain-core", "transformers", "llama-cpp-python"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def build_graph(strategy: Strategy, checkpointer=None):
    if strategy == "navigator":
        from agent.graph.navigator import build_navigator_graph

        return build_navigator_graph(checkpointer)
    from agent.graph.react import build_react_graph

    return build_react_graph(checkpointer)


def run_question(question: str, *, backend: FhirBackend, patient_id: str | None, model: BaseChatModel, model_label: str,
                 strategy: Strategy = "react", trace_path: Path | None = None, redact: bool = False,
                 now: str | None = None, max_steps: int = 8, max_tokens: int = 60_000, constrained: bool = True,
                 thinking: bool = False, narrow: bool = False, examples: str | bool | None = "auto",
                 session_id: str | None = None,
                 checkpointer=None, exporters: list | None = None,
                 extra_tools: Sequence[Callable[..., Any]] = (), image: str | Path | None = None,
                 image_to_model: bool = True, row_notes: Mapping[str, Callable[[dict], str]] | None = None,
                 ) -> RunResult:
    """Answer ``question`` about ``patient_id``. Raises LookupError if the patient does not exist;
    everything else (model or tool failure, budgets) ends in a RunResult with a status.

    With ``patient_id=None`` the session is unbound: the planner is offered ``find_patient``
    only (patient-lookup questions), since every other tool needs a bound patient, and the
    react strategy runs (navigator starts from one patient's manifest)."""
    session = EhrSession(backend, patient_id=patient_id or None)
    session.now = now
    session.row_notes = dict(row_notes or {})  # e.g. ImagingStudy rows saying which images are indexed
    # Knowledge tools (guideline search, image search) return no other patient's data (image
    # search strips it from its hits): offered beside the record tools in a bound session.
    offered = [*session.tools(), *extra_tools] if session.patient_id else [session.find_patient]
    if not session.patient_id:
        strategy = "react"
    tools = {fn.__name__: fn for fn in offered}
    schemas = tool_schemas(offered)
    narrowing = narrow_for(session) if (narrow and session.patient_id) else None
    run_id = uuid.uuid4().hex[:12]
    with_examples = uses_examples(model, examples)
    config: dict[str, Any] = {"max_steps": max_steps, "max_tokens": max_tokens, "constrained": constrained,
                              "thinking": thinking, "narrow": narrow, "examples": with_examples, "strategy": strategy}
    extras: dict[str, Any] = {}
    if image is not None:  # ValueError for an unreadable image: the caller's input, refused up front
        from agent.images_in import image_note, load_question_image

        attached = load_question_image(image)
        question = f"{question} {image_note(attached, image_to_model, 'search_images' in tools)}"
        if image_to_model:
            extras["image_block"] = attached.block
        config["image"] = {"path": attached.path, "sha256": attached.sha256, "to_model": image_to_model}
    graph = build_graph(strategy, checkpointer)
    thread = {"configurable": {"thread_id": session_id}} if (checkpointer is not None and session_id) else None
    conversation: list[tuple[str, str]] = []
    if thread:
        previous = graph.get_state(thread).values
        conversation = list(previous.get("conversation", []))  # kept when the last turn has no answer (interrupted)
        if previous.get("question") and previous.get("answer"):
            conversation.append((previous["question"], previous["answer"]))
    start = time.perf_counter()
    with TraceWriter(trace_path, run_id=run_id, redact=redact, exporters=exporters) as trace:
        trace.emit(RunHeader(run_id=run_id, question=question, patient_id=patient_id, strategy=strategy,
                             model=model_label, config=config, now=now, seed=0, versions=_versions(),
                             prompts=_prompt_hashes(schemas, thinking, with_examples), redacted=redact))
        ctx = AgentContext(model=model, session=session, schemas=schemas, tools=tools, trace=trace,
                           max_steps=max_steps, max_tokens=max_tokens, constrained=constrained, thinking=thinking,
                           narrow=narrowing, examples=with_examples, now=now, extras=extras)
        state_in = {"question": question, "patient_id": patient_id, "conversation": conversation, "history": [],
                    "pending": [], "step": 0, "repeats": 0, "challenged": False, "tool_failures": 0, "input_tokens": 0,
                    "output_tokens": 0, "model_calls": 0, "tool_calls": 0, "status": None, "answer": None,
                    "cited_ids": [], "error": None}
        try:
            final = graph.invoke(state_in, config=thread, context=ctx, recursion_limit=4 * max_steps + 10)
        except KeyboardInterrupt:  # Ctrl-C, or a chat stopping the turn: the trace says so, the caller decides
            trace.emit(RunEnd(run_id=run_id, status="interrupted", error="interrupted by the user",
                              seconds=round(time.perf_counter() - start, 3)))
            raise
        except Exception as exc:  # a bug, not a model or tool failure: still end the trace cleanly
            final = {**state_in, "status": "error", "error": f"{type(exc).__name__}: {exc}",
                     "answer": f"No answer (internal error: {type(exc).__name__})."}
        result = RunResult(
            answer=final.get("answer") or "", status=final.get("status") or "error",
            cited_ids=list(final.get("cited_ids") or []), steps=final.get("step", 0),
            model_calls=final.get("model_calls", 0), tool_calls=final.get("tool_calls", 0),
            input_tokens=final.get("input_tokens", 0), output_tokens=final.get("output_tokens", 0),
            seconds=round(time.perf_counter() - start, 3), trace_path=str(trace_path) if trace_path else None,
            run_id=run_id, session_id=session_id, error=final.get("error"))
        # The end record is the result's own fields (RunEnd is the subset that belongs in a trace).
        trace.emit(RunEnd(**{k: v for k, v in asdict(result).items() if k in RunEnd.model_fields}))
    return result


def _prompt_hashes(schemas, thinking: bool, examples: bool) -> dict[str, str]:
    """The prompt files this run's planner sends, by name and sha256 (the run header's ``prompts``)."""
    hashes = {"planner": planner_system(schemas, thinking=thinking).sha256}
    if examples:
        hashes[FEWSHOT] = render(FEWSHOT).sha256
    return hashes


def narrow_for(session: EhrSession) -> dict[str, list[str]]:
    """Restrict search_records' resource_type to the types this patient's record holds."""
    present = present_types(session)
    return {"search_records.resource_type": present} if present else {}
