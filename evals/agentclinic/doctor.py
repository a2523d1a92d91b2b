"""The consultation: our agent is the doctor, with two tools, ask_patient and request_test.

Each doctor turn is one ``agent.planning.plan_turn`` over the two tools' schemas (built from
the functions below by ``tool_schemas``), so constrained decoding, parsing and the model call
records are the agent's own. AgentClinic's text protocol is read too, as their doctor writes
it: ``DIAGNOSIS READY: x`` ends the run, ``REQUEST TEST: x`` asks the measurement agent, and
any other plain text is said to the patient. The last turn allows only an answer. Every model
call (doctor and other roles) and every tool call goes to the case's trace.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agent.planning import plan_turn
from agent.protocol.prompting import format_observation, render_tools
from agent.protocol.schema import tool_schemas
from agent.protocol.types import ToolCall
from agent.trace.records import ModelCallRecord, ToolCallRecord
from agent.trace.writer import TraceWriter

from . import prompts
from .roles import Role

MAX_TURNS = 20
MAX_QUESTION = 400
DIAGNOSIS = re.compile(r"DIAGNOSIS READY\s*:\s*(.+)", re.I | re.S)
REQUEST_TEST = re.compile(r"REQUEST TEST\s*:\s*\[?([^\]\n]+)", re.I)


def ask_patient(question: str) -> str:
    """Ask the patient one question (history, symptoms, habits); they answer in 1-3 sentences.

    Args:
        question: what you say to the patient, e.g. "When did the double vision start?"
    """
    raise NotImplementedError("answered by the patient agent")


def request_test(test_name: str) -> str:
    """Request one physical examination or test result by name; the results come back.

    Args:
        test_name: the examination or test, e.g. "Neurological examination", "Chest X-ray", "Complete blood count"
    """
    raise NotImplementedError("answered by the measurement agent")


SCHEMAS = tool_schemas([ask_patient, request_test])


@dataclass
class Consultation:
    diagnosis: str = ""
    status: str = "max_steps"
    turns: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    role_tokens: dict[str, int] = field(default_factory=dict)
    tests: list[str] = field(default_factory=list)
    error: str | None = None


def system_message(max_turns: int) -> SystemMessage:
    text = prompts.DOCTOR.substitute(max_turns=max_turns, tools=render_tools(SCHEMAS))
    return SystemMessage(content=text, additional_kwargs={"prompt": {"name": "agentclinic_doctor",
                                                                     "sha256": prompts.sha256(text)}})


def fewshot_messages() -> list[BaseMessage]:
    return [HumanMessage(content=t) if role == "user" else AIMessage(content=t) for role, t in prompts.FEWSHOT]


def text_action(raw: str) -> tuple[str, str] | None:
    """AgentClinic's plain-text protocol: ("answer"|"request_test"|"ask_patient", text)."""
    text = (raw or "").strip()
    if not text:
        return None
    if m := DIAGNOSIS.search(text):
        return "answer", m.group(1).strip().splitlines()[0].strip(' ."[]')
    if m := REQUEST_TEST.search(text):
        return "request_test", m.group(1).strip(' ."')
    if text.startswith(("{", "[")):  # broken JSON is not dialogue
        return None
    return "ask_patient", re.sub(r"^\s*(Doctor|Dr\.? Agent)\s*:\s*", "", text)[:MAX_QUESTION]


def consult(osce_objective: str, *, model: Any, patient: Role, measurement: Role, trace: TraceWriter,
            max_turns: int = MAX_TURNS, constrained: bool = True, examples: bool = False) -> Consultation:
    """Run one consultation; never raises for a model failure (the result carries a status)."""
    result = Consultation()
    head: list[BaseMessage] = [system_message(max_turns), *(fewshot_messages() if examples else []),
                               HumanMessage(content=f"Patient presentation: {osce_objective}")]
    history: list[BaseMessage] = []
    dialogue: list[tuple[str, str]] = []
    for turn in range(1, max_turns + 1):
        last = turn == max_turns
        messages = head + history + ([HumanMessage(content=prompts.DOCTOR_LAST_TURN)] if last else [])
        planned = plan_turn(model, messages, [] if last else SCHEMAS, constrained=constrained, repair=False)
        result.turns = turn
        for i, call in enumerate(planned.calls):
            result.model_calls += 1
            result.input_tokens += call.input_tokens
            result.output_tokens += call.output_tokens
            final = i == len(planned.calls) - 1
            trace.emit(ModelCallRecord(run_id="", step=turn, node="doctor", prompt_sha256=call.prompts.get("agentclinic_doctor", ""),
                                       raw_output=call.raw_output, parsed=planned.parsed.model_dump() if final else None,
                                       input_tokens=call.input_tokens, output_tokens=call.output_tokens,
                                       latency_s=round(call.latency_s, 4), constrained=call.constrained, error=call.error))
        if planned.status == "model_error":
            result.status, result.error = "error", planned.error
            return result
        action = _action(planned, last)
        if action is None:
            result.status = "max_steps" if last else "invalid_action"
            result.error = planned.error or "no question, test or diagnosis"
            return result
        kind, text = action
        if kind == "answer":
            result.diagnosis, result.status = re.sub(r"^\s*DIAGNOSIS READY\s*:\s*", "", text, flags=re.I).strip(), "completed"
            return result
        role = measurement if kind == "request_test" else patient
        start = time.perf_counter()
        reply = role.respond(text, dialogue)
        result.tool_calls += 1
        if kind == "request_test":
            result.tests.append(text)
        if reply.raw_output is not None:
            name = "measurement" if kind == "request_test" else "patient"
            result.role_tokens[name] = result.role_tokens.get(name, 0) + reply.input_tokens + reply.output_tokens
            trace.emit(ModelCallRecord(run_id="", step=turn, node=name, raw_output=reply.raw_output,
                                       input_tokens=reply.input_tokens, output_tokens=reply.output_tokens,
                                       latency_s=round(reply.latency_s, 4), error=reply.error))
        trace.emit(ToolCallRecord(run_id="", step=turn, name=kind, args={_arg(kind): text}, result_text=reply.text,
                                  resource_ids=reply.matched or [], error=reply.error,
                                  latency_s=round(time.perf_counter() - start, 4)))
        dialogue += [("Doctor", text if kind == "ask_patient" else f"REQUEST TEST: {text}"),
                     ("Patient" if kind == "ask_patient" else "Measurement", reply.text)]
        left = max_turns - turn
        history += [AIMessage(content=_canonical(kind, text)),
                    HumanMessage(content=format_observation(kind, reply.text) + f"\n({left} turn(s) left.)")]
    result.status = "max_steps"
    return result


def _arg(kind: str) -> str:
    return "test_name" if kind == "request_test" else "question"


def _canonical(kind: str, text: str) -> str:
    from agent.protocol.parser import format_call

    return format_call(ToolCall(name=kind, args={_arg(kind): text}))


def _action(planned: Any, last: bool) -> tuple[str, str] | None:
    parsed = planned.parsed
    if planned.status == "ok" and parsed.kind == "answer" and parsed.answer and parsed.shape != "prose":
        return "answer", parsed.answer
    if planned.status == "ok" and parsed.kind == "calls" and parsed.calls and not last:
        call = parsed.calls[0]   # one action a turn, as in AgentClinic
        value = call.args.get(_arg(call.name), "")
        if isinstance(value, str) and value.strip():
            return call.name, value.strip()[:MAX_QUESTION]
    # Plain prose: AgentClinic's text protocol (diagnosis, test request, or words to the patient).
    action = text_action(planned.calls[-1].raw_output if planned.calls else "")
    if action is not None and last and action[0] != "answer":
        # Told to diagnose now: prose is the diagnosis; a test request is not.
        return ("answer", action[1].splitlines()[0][:200]) if action[0] == "ask_patient" else None
    return action
