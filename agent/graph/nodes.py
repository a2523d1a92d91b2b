"""The react strategy's nodes: plan (choose tool calls or answer), act (run them), answer, finish.

Each node is a small function returning a ``Command`` whose ``goto`` type names where it can
go, so the routing is visible in the signatures. Nothing raises through the graph: a bad
model output is repaired once or ends the run as ``invalid_action``; a failing tool becomes
an observation; budgets end the run with the best partial answer and ``max_steps`` or
``context_limit``.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Any, Literal

from langchain_core.messages import AIMessage, HumanMessage
from langgraph.runtime import Runtime
from langgraph.types import Command

from agent.grounding import answer_form, denial_of_results
from agent.planning import TurnResult, plan_turn
from agent.protocol.parser import format_call
from agent.protocol.prompting import Step, planner_messages
from agent.protocol.types import ToolCall
from agent.trace.records import ModelCallRecord, RouteRecord, ToolCallRecord

from .state import AgentContext, AgentState, StepRecord, seen_ids

# Observations the planner sees for failures (templates, so traces and tests can match them).
TOOL_ERROR = "ERROR: {error}"
TOOL_TIMEOUT = "ERROR: {tool} did not finish within {seconds:g} s"
REPEATED_CALL = ("You already called {calls} with exactly these arguments; the result is above. "
                 "Answer from it now, or make a different call.")
MAX_TOOL_FAILURE_STEPS = 3
PATIENT_LINE = "Patient: "  # the lines under the question (agent/grounding.py reads the question above them)
ANSWER_LINE = "Answer with: "
# A record id ('Observation/abc-1') or a passage id ('Guideline/note#section'): the section
# part matters, a guideline citation is to one passage.
_REF = re.compile(r"\b([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64}(?:#[A-Za-z0-9\-.]{1,64})?)\b")


def _route(ctx: AgentContext, state: AgentState, source: str, target: str, reason: str = "") -> None:
    ctx.trace.emit(RouteRecord(run_id="", step=state.get("step", 0), source=source, target=target, reason=reason))


def planner_input(state: AgentState, ctx: AgentContext) -> list:
    question = state["question"]
    if ctx.session.patient_id:  # the chart's banner: age and sex without a tool call (and citable)
        question = f"{question}\n{PATIENT_LINE}{ctx.session.banner()}"
    form = answer_form(state["question"])
    if form:  # small models answered "who prescribed" with a date, with the name in the result
        question = f"{question}\n{ANSWER_LINE}{form}."
    if ctx.now:  # context for "current", "last year" and ages; a small model otherwise copies it into date_from
        question = f"{question}\nReference date (today): {ctx.now}. Not a search filter: use date_from/date_to only for a period the question names."
    earlier = []
    for q, a in state.get("conversation", []):
        earlier += [HumanMessage(content=f"Earlier question: {q}"), AIMessage(content=json.dumps({"answer": a}))]
    history = [Step(s["output"], s["results"]) for s in state.get("history", [])]
    messages = planner_messages(question, ctx.schemas, history=history, thinking=ctx.thinking,
                                fewshot=ctx.examples)
    if earlier:  # earlier turns of the conversation go just before this question
        at = next(i for i in range(len(messages) - 1, -1, -1) if messages[i].content.startswith("Question: "))
        messages[at:at] = earlier
    block = ctx.extras.get("image_block")
    if block:  # the image goes with the question, to a multimodal backend
        at = next(i for i in range(len(messages) - 1, -1, -1)
                  if isinstance(messages[i].content, str) and messages[i].content.startswith("Question: "))
        messages[at] = HumanMessage(content=[{"type": "text", "text": messages[at].content}, block])
    return messages


def _trace_turn(ctx: AgentContext, step: int, turn: TurnResult) -> None:
    for i, call in enumerate(turn.calls):
        last = i == len(turn.calls) - 1
        ctx.trace.emit(ModelCallRecord(
            run_id="", step=step, node="plan", prompt_sha256=call.prompts.get("planner", ""),
            raw_output=call.raw_output, parsed=turn.parsed.model_dump() if last else None,
            thinking=turn.parsed.thinking if last else None, input_tokens=call.input_tokens,
            output_tokens=call.output_tokens, latency_s=round(call.latency_s, 4), constrained=call.constrained,
            repair=call.repair, error=call.error))


def _call_key(call: dict[str, Any]) -> str:
    return json.dumps({"name": call["name"], "args": call["args"]}, sort_keys=True)


def plan(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["plan", "act", "answer", "finish"]]:
    ctx = runtime.context
    step = state.get("step", 0)
    used = state.get("input_tokens", 0) + state.get("output_tokens", 0)
    if step >= ctx.max_steps:
        return _to_finish(ctx, state, "max_steps", f"step limit {ctx.max_steps} reached")
    if used >= ctx.max_tokens:
        return _to_finish(ctx, state, "context_limit", f"token budget {ctx.max_tokens} used ({used})")

    turn = plan_turn(ctx.model, planner_input(state, ctx), ctx.schemas, constrained=ctx.constrained,
                     narrow=ctx.narrow, thinking=ctx.thinking)
    _trace_turn(ctx, step + 1, turn)
    update: dict[str, Any] = {
        "step": step + 1, "model_calls": state.get("model_calls", 0) + len(turn.calls),
        "input_tokens": state.get("input_tokens", 0) + turn.input_tokens,
        "output_tokens": state.get("output_tokens", 0) + turn.output_tokens,
    }
    state = {**state, **update}
    if turn.status == "model_error":
        return _to_finish(ctx, state, "error", turn.error or "model error", update)
    if turn.status == "invalid_action":
        return _to_finish(ctx, state, "invalid_action", turn.error or "no usable output", update)
    if turn.parsed.kind == "answer":
        history = state.get("history", [])
        last = history[-1] if history else None
        note = None if state.get("challenged") or not last else denial_of_results(
            turn.parsed.answer or "", state["question"], last["results"], last["ids"])
        if note:  # once per question: the second answer stands, whatever it says
            step_note: StepRecord = {"output": json.dumps({"answer": turn.parsed.answer}), "results": [("note", note)],
                                     "ids": [], "calls": []}
            _route(ctx, state, "plan", "plan", "the answer denies the records the last search found: asked once more")
            return Command(goto="plan", update={**update, "challenged": True, "history": [*history, step_note]})
        _route(ctx, state, "plan", "answer", "final answer")
        return Command(goto="answer", update={**update, "answer": turn.parsed.answer or ""})

    calls = [{"name": c.name, "args": c.args} for c in turn.parsed.calls]
    done = {_call_key(c) for s in state.get("history", []) for c in s["calls"]}
    if all(_call_key(c) in done for c in calls):
        repeats = state.get("repeats", 0) + 1
        update["repeats"] = repeats
        if repeats >= 2:
            return _to_finish(ctx, state, "invalid_action", "the planner repeated an identical call", update)
        names = ", ".join(c["name"] for c in calls)
        note: StepRecord = {"output": "\n".join(format_call(ToolCall(**c)) for c in calls),
                            "results": [("note", REPEATED_CALL.format(calls=names))], "ids": [], "calls": []}
        _route(ctx, state, "plan", "plan", "repeated identical call: not run again")
        return Command(goto="plan", update={**update, "history": [*state.get("history", []), note], "pending": []})
    _route(ctx, state, "plan", "act", ", ".join(c["name"] for c in calls))
    return Command(goto="act", update={**update, "pending": calls})


def act(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["plan", "finish"]]:
    ctx = runtime.context
    calls = state.get("pending", [])
    results, ids, failures = [], [], 0
    for call in calls:
        text, rids, error, seconds = _run_tool(ctx, call)
        ctx.trace.emit(ToolCallRecord(run_id="", step=state.get("step", 0), name=call["name"], args=call["args"],
                                      result_text=text, resource_ids=rids, error=error, latency_s=round(seconds, 4)))
        results.append((call["name"], text))
        ids += rids
        failures += error is not None
    record: StepRecord = {"output": "\n".join(format_call(ToolCall(**c)) for c in calls), "results": results,
                          "ids": ids, "calls": calls}
    streak = state.get("tool_failures", 0) + 1 if failures == len(calls) else 0
    update = {"history": [*state.get("history", []), record], "pending": [], "tool_failures": streak,
              "tool_calls": state.get("tool_calls", 0) + len(calls)}
    if streak >= MAX_TOOL_FAILURE_STEPS:
        return _to_finish(ctx, {**state, **update}, "tool_error", f"every tool call failed in {streak} steps in a row", update)
    _route(ctx, state, "act", "plan")
    return Command(goto="plan", update=update)


def _run_tool(ctx: AgentContext, call: dict[str, Any]) -> tuple[str, list[str], str | None, float]:
    start = time.perf_counter()
    fn = ctx.tools.get(call["name"])
    if fn is None:  # plan validated names already; kept for safety
        error = f"unknown tool {call['name']}"
        return TOOL_ERROR.format(error=error), [], error, 0.0
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        result = pool.submit(fn, **call["args"]).result(timeout=ctx.tool_timeout_s)
    except FutureTimeout:
        error = TOOL_TIMEOUT.format(tool=call["name"], seconds=ctx.tool_timeout_s)
        return error, [], error, time.perf_counter() - start
    except Exception as exc:  # tools return errors as results; this is a bug or bad arguments
        error = f"{type(exc).__name__}: {exc}"
        return TOOL_ERROR.format(error=error), [], error, time.perf_counter() - start
    finally:
        pool.shutdown(wait=False)
    text = result.for_planner()
    return text, list(result.ids), result.error, time.perf_counter() - start


def cited(answer: str, allowed: list[str]) -> list[str]:
    """The record ids an answer cites, kept only when a tool result showed them."""
    allowed_set = set(allowed)
    found: dict[str, None] = {}
    for m in _REF.finditer(answer or ""):
        ref = f"{m.group(1)}/{m.group(2)}"
        if ref in allowed_set:
            found[ref] = None
    return list(found)


def answer(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["__end__"]]:
    ctx = runtime.context
    text = (state.get("answer") or "").strip()
    banner = [f"Patient/{ctx.session.patient_id}"] if ctx.session.patient_id else []  # the banner is citable
    ids = cited(text, [*seen_ids(state), *banner])
    _route(ctx, state, "answer", "end", "completed")
    return Command(goto="__end__", update={"status": "completed", "answer": text, "cited_ids": ids})


def _to_finish(ctx: AgentContext, state: AgentState, status: str, reason: str,
               update: dict[str, Any] | None = None) -> Command:
    _route(ctx, state, "plan" if status != "tool_error" else "act", "finish", f"{status}: {reason}")
    return Command(goto="finish", update={**(update or {}), "status": status, "error": reason})


def finish(state: AgentState, runtime: Runtime[AgentContext]) -> Command[Literal["__end__"]]:
    """The run stops short of an answer: say so, with the best partial answer the steps hold."""
    ctx = runtime.context
    history = [s for s in state.get("history", []) if s["ids"] or s["calls"]]
    reason = state.get("error") or state.get("status")
    if history:
        last = history[-1]
        facts = "\n".join("\n".join(text.splitlines()[:6]) for _, text in last["results"])
        text = f"No final answer ({reason}). The last records looked at:\n{facts}"
        ids = last["ids"][:20]
    else:
        text, ids = f"No answer ({reason}).", []
    _route(ctx, state, "finish", "end", str(state.get("status")))
    return Command(goto="__end__", update={"answer": text, "cited_ids": ids})
