"""The ``navigator`` strategy, modelled on Google's public EHR Navigator agent for MedGemma:

    START -> discover -> select -> plan_fetches -> fetch -> extract -> synthesise -> END
             (manifest)  (types)   (searches)      (run)    (facts from    (answer from facts)
                                                             the raw FHIR JSON,
                                                             5 resources a call)

It spends model calls and prompt tokens on reading whole result sets, where the react
strategy lets the model choose narrow searches; both run on the same model, tools and trace,
so ``--strategy`` compares them on the same questions.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

import json_repair
from langchain_core.messages import HumanMessage
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from agent.protocol.parser import strip_thinking
from agent.protocol.prompting import render
from agent.trace.records import ModelCallRecord, RouteRecord, ToolCallRecord

from .nodes import cited
from .state import AgentContext, AgentState, StepRecord, present_types, seen_ids

MAX_FETCHES = 4
MAX_RESOURCES_PER_FETCH = 20   # resources read in full per planned search
BATCH = 5                      # resources per fact-extraction call


def _ask(ctx: AgentContext, state: AgentState, node: str, prompt_name: str, schema: dict | None,
         **variables: Any) -> tuple[str, dict[str, Any]]:
    """One model call; returns its text and the state counters to add."""
    prompt = render(prompt_name, thinking=ctx.thinking, **variables)
    constrained = schema is not None and ctx.constrained and not ctx.thinking and getattr(ctx.model, "supports_json_schema", False)
    start = time.perf_counter()
    error, text, usage = None, "", {}
    try:
        message = ctx.model.invoke([HumanMessage(content=prompt.text)], **({"json_schema": schema} if constrained else {}))
        text = strip_thinking(message.content if isinstance(message.content, str) else str(message.content))
        usage = message.usage_metadata or {}
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    counts = {"in": int(usage.get("input_tokens", 0)), "out": int(usage.get("output_tokens", 0))}
    ctx.trace.emit(ModelCallRecord(run_id="", step=state.get("step", 0) + 1, node=node, prompt_sha256=prompt.sha256,
                                   prompt_messages=[{"role": "user", "content": prompt.text}], raw_output=text,
                                   input_tokens=counts["in"], output_tokens=counts["out"],
                                   latency_s=round(time.perf_counter() - start, 4), constrained=constrained,
                                   error=error))
    update = {"step": state.get("step", 0) + 1, "model_calls": state.get("model_calls", 0) + 1,
              "input_tokens": state.get("input_tokens", 0) + counts["in"],
              "output_tokens": state.get("output_tokens", 0) + counts["out"]}
    if error:
        raise _ModelFailed(error, update)
    return text, update


class _ModelFailed(Exception):
    def __init__(self, message: str, update: dict[str, Any]):
        super().__init__(message)
        self.update = update


def _json(text: str) -> dict[str, Any]:
    value = json_repair.loads(text) if text.strip() else {}
    return value if isinstance(value, dict) else {}


def _route(ctx: AgentContext, state: AgentState, source: str, target: str, reason: str = "") -> None:
    ctx.trace.emit(RouteRecord(run_id="", step=state.get("step", 0), source=source, target=target, reason=reason))


def _tool(ctx: AgentContext, state: AgentState, name: str, **args: Any) -> StepRecord:
    start = time.perf_counter()
    result = ctx.tools[name](**args)
    ctx.trace.emit(ToolCallRecord(run_id="", step=state.get("step", 0), name=name, args=args,
                                  result_text=result.for_planner(), resource_ids=list(result.ids),
                                  error=result.error, latency_s=round(time.perf_counter() - start, 4)))
    return {"output": "", "results": [(name, result.for_planner())], "ids": list(result.ids),
            "calls": [{"name": name, "args": args}]}


def _failed(ctx: AgentContext, state: AgentState, exc: _ModelFailed, source: str) -> Command:
    _route(ctx, state, source, "end", f"error: {exc}")
    return Command(goto="__end__", update={**exc.update, "status": "error", "error": str(exc),
                                           "answer": f"No answer (model error: {exc})."})


def discover(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["select"]]:
    ctx = runtime.context
    record = _tool(ctx, state, "patient_summary")
    return Command(goto="select", update={"history": [record], "tool_calls": state.get("tool_calls", 0) + 1})


def _manifest_text(state: AgentState) -> str:
    return state["history"][0]["results"][0][1]


def select(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["plan_fetches", "synthesise"]]:
    ctx = runtime.context
    present = present_types(ctx.session)
    schema = {"type": "object", "additionalProperties": False, "required": ["types"], "properties": {
        "types": {"type": "array", "maxItems": MAX_FETCHES, "items": {"enum": present or ["Observation"]}}}}
    try:
        text, update = _ask(ctx, state, "select", "navigator_select", schema, question=state["question"],
                            manifest=_manifest_text(state), types=", ".join(present))
    except _ModelFailed as exc:
        return _failed(ctx, state, exc, "select")
    chosen = [t for t in _json(text).get("types", []) if t in present][:MAX_FETCHES]
    target = "plan_fetches" if chosen else "synthesise"
    _route(ctx, state, "select", target, ", ".join(chosen) or "no relevant type")
    return Command(goto=target, update={**update, "pending": [{"resource_type": t} for t in chosen]})


def plan_fetches(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["fetch"]]:
    ctx = runtime.context
    types = [p["resource_type"] for p in state.get("pending", [])]
    schema = {"type": "object", "additionalProperties": False, "required": ["fetches"], "properties": {
        "fetches": {"type": "array", "maxItems": MAX_FETCHES, "items": {
            "type": "object", "additionalProperties": False, "required": ["resource_type", "code"],
            "properties": {"resource_type": {"enum": types}, "code": {"type": "string", "maxLength": 60}}}}}}
    try:
        text, update = _ask(ctx, state, "plan_fetches", "navigator_plan", schema, question=state["question"],
                            manifest=_manifest_text(state), types=", ".join(types))
    except _ModelFailed as exc:
        return _failed(ctx, state, exc, "plan_fetches")
    fetches = [f for f in _json(text).get("fetches", []) if isinstance(f, dict) and f.get("resource_type") in types]
    planned = {f["resource_type"] for f in fetches}
    fetches += [{"resource_type": t, "code": ""} for t in types if t not in planned]  # every chosen type is read
    _route(ctx, state, "plan_fetches", "fetch", f"{len(fetches)} searches")
    return Command(goto="fetch", update={**update, "pending": fetches[:MAX_FETCHES]})


def fetch(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["extract"]]:
    ctx = runtime.context
    records = []
    for f in state.get("pending", []):
        args = {"resource_type": f["resource_type"], **({"code": f["code"]} if (f.get("code") or "").strip() else {})}
        records.append(_tool(ctx, state, "search_records", **args))
    _route(ctx, state, "fetch", "extract", f"{len(records)} results")
    return Command(goto="extract", update={"history": [*state["history"], *records], "pending": [],
                                           "tool_calls": state.get("tool_calls", 0) + len(records)})


def _raw_batches(ctx: AgentContext, ids: list[str]) -> list[str]:
    """The fetched resources as raw FHIR JSON (as the Navigator reads them), a few per batch;
    read back through the session, so the patient scope still applies."""
    resources = []
    for ref in ids[:MAX_RESOURCES_PER_FETCH]:
        result = ctx.session.read_record(ref)
        for r in result.resources:
            resources.append({k: v for k, v in r.items() if k not in ("meta", "text")})
    return [json.dumps(resources[i:i + BATCH], separators=(",", ":"))
            for i in range(0, len(resources), BATCH)]


def extract(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["synthesise"]]:
    ctx = runtime.context
    facts, update = [], {}
    for step in state["history"][1:]:
        for batch in _raw_batches(ctx, step["ids"]):
            current = {**state, **update}
            try:
                text, update = _ask(ctx, current, "extract", "navigator_extract", None, question=state["question"],
                                    records=batch)
            except _ModelFailed as exc:
                return _failed(ctx, current, exc, "extract")
            if text.strip().lower() not in ("", "none"):
                facts.append(text.strip())
    _route(ctx, state, "extract", "synthesise", f"{len(facts)} fact lists")
    return Command(goto="synthesise", update={**update, "answer": "\n".join(facts)})


def synthesise(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["__end__"]]:
    ctx = runtime.context
    facts = state.get("answer") or "none"
    schema = {"type": "object", "additionalProperties": False, "required": ["answer"],
              "properties": {"answer": {"type": "string", "maxLength": 1500}}}
    try:
        text, update = _ask(ctx, state, "synthesise", "navigator_answer", schema, question=state["question"], facts=facts)
    except _ModelFailed as exc:
        return _failed(ctx, state, exc, "synthesise")
    answer = str(_json(text).get("answer") or text).strip()
    _route(ctx, state, "synthesise", "end", "completed")
    return Command(goto="__end__", update={**update, "status": "completed", "answer": answer,
                                           "cited_ids": cited(answer, seen_ids(state))})


def build_navigator_graph(checkpointer=None):
    graph = StateGraph(AgentState, context_schema=AgentContext)
    for name, fn in (("discover", discover), ("select", select), ("plan_fetches", plan_fetches),
                     ("fetch", fetch), ("extract", extract), ("synthesise", synthesise)):
        graph.add_node(name, fn)
    graph.add_edge(START, "discover")
    return graph.compile(checkpointer=checkpointer)
