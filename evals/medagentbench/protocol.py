"""MedAgentBench's own protocol: their prompt, GET / POST / FINISH as plain text, at most 8 rounds.

Copied in behaviour from their task runner (``src/server/tasks/medagentbench/__init__.py``): the
model's output is stripped of code fences; ``GET url`` is sent with ``&_format=json`` appended and
the response fed back as "Here is the response from the GET request:\\n<body>. Please call FINISH
..."; ``POST url`` + a JSON body is recorded, NOT executed, and answered "POST request accepted and
executed successfully..." ("Invalid POST request" when the body is not JSON); ``FINISH(...)`` ends
the run with the text inside as the result; anything else ends it as an invalid action. GETs go
to a real FHIR server by URL (their way, raw HTTP) or, without one, to our store: their GET URLs
are mapped onto ``FhirBackend.search``/``read``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agent.trace.records import ModelCallRecord, RunEnd, RunHeader, ToolCallRecord
from agent.trace.writer import TraceWriter
from tools.fhir.backend import FhirBackend, FhirError

from .grade import Attempt
from .tasks import Task

# Their prompt, verbatim (MedAgentBench_prompt in src/server/tasks/medagentbench/__init__.py).
PROMPT = """You are an expert in using FHIR functions to assist medical professionals. You are given a question and a set of possible functions. Based on the question, you will need to make one or more function/tool calls to achieve the purpose.

1. If you decide to invoke a GET function, you MUST put it in the format of
GET url?param_name1=param_value1&param_name2=param_value2...

2. If you decide to invoke a POST function, you MUST put it in the format of
POST url
[your payload data in JSON format]

3. If you have got answers for all the questions and finished all the requested tasks, you MUST call to finish the conversation in the format of (make sure the list is JSON loadable.)
FINISH([answer1, answer2, ...])

Your response must be in the format of one of the three cases, and you can call only one function each time. You SHOULD NOT include any other text in the response.

Here is a list of functions in JSON format that you can invoke. Note that you should use {api_base} as the api_base.
{functions}

Context: {context}
Question: {question}"""
PROMPT_SHA256 = hashlib.sha256(PROMPT.encode()).hexdigest()
GET_REPLY = ("Here is the response from the GET request:\n{data}. Please call FINISH if you have got answers for "
             "all the questions and finished all the requested tasks")
GET_ERROR = "Error in sending the GET request: {error}"
POST_ACCEPTED = ("POST request accepted and executed successfully. Please call FINISH if you have got answers for "
                 "all the questions and finished all the requested tasks")
POST_INVALID = "Invalid POST request"
MAX_ROUNDS = 8
#: The API base shown to the model when GETs go to our store (their server's default address).
STORE_API_BASE = "http://localhost:8080/fhir/"
TRACE_RESULT_CHARS = 4000   # a GET response is kept this long in the trace's tool_call record

Getter = Callable[[str], tuple[bool, str]]   # url -> (ok, response text or error)


def build_prompt(task: Task, funcs: list[dict[str, Any]], api_base: str) -> str:
    return PROMPT.format(api_base=api_base, functions=json.dumps(funcs), context=task.context,
                         question=task.instruction)


def http_getter(timeout: float = 60.0) -> Getter:
    """Their ``send_get_request``: raw HTTP; the body as text unless it is plain application/json."""
    import httpx

    def get(url: str) -> tuple[bool, str]:
        try:
            response = httpx.get(url, timeout=timeout, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            return False, str(exc)
        if response.headers.get("Content-Type") == "application/json":
            return True, str(response.json())
        return True, response.text
    return get


def backend_getter(backend: FhirBackend, api_base: str) -> Getter:
    """Their GET URLs onto our store: ``{base}Type?params`` -> search, ``{base}Type/id`` -> read."""
    def get(url: str) -> tuple[bool, str]:
        path, _, query = url.partition("?")
        if not query and "&" in path:   # "Patient&_format=json": their runner appends to any URL
            path, _, query = path.partition("&")
        rel = path[len(api_base):] if path.startswith(api_base) else urlsplit(path).path
        parts = [p for p in rel.split("/") if p]
        start = next((i for i, p in enumerate(parts) if p[:1].isupper() and p.isalpha()), None)
        if start is None:
            return False, f"404 Client Error: Not Found for url: {url}"
        rtype, rest = parts[start], parts[start + 1:]
        try:
            params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("_format", "_pretty")]
            if rest:
                return True, json.dumps(backend.read(rtype, rest[0]))
            return True, json.dumps(backend.search(rtype, params))
        except FhirError as exc:
            kind = "Client" if exc.status < 500 else "Server"
            return False, f"{exc.status} {kind} Error: {exc} for url: {url}"
        except ValueError as exc:
            return False, f"400 Client Error: {exc} for url: {url}"
    return get


@dataclass
class ProtocolRun:
    status: str                                   # completed | invalid_action | max_steps | context_limit | error
    result: str | None = None                     # the text inside FINISH(...)
    history: list[tuple[str, str]] = field(default_factory=list)   # (user|agent, content)
    rounds: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    error: str | None = None

    def attempt(self) -> Attempt:
        return attempt_from_history(self.result if self.status == "completed" else None, self.history)


def attempt_from_history(result: str | None, history: list[tuple[str, str]]) -> Attempt:
    """Their extract_posts/check_has_post: an agent turn with "POST" whose next turn says accepted."""
    posted = any(role == "agent" and "POST" in content for role, content in history)
    posts = []
    for i, (role, content) in enumerate(history):
        if role == "agent" and "POST" in content and i + 1 < len(history) \
                and "POST request accepted" in history[i + 1][1]:
            try:
                url = content.split("\n")[0][4:].strip()
                posts.append((url, json.loads("\n".join(content.split("\n")[1:]))))
            except ValueError:
                pass
    return Attempt(result=result, posted=posted, posts=posts)


def _messages(history: list[tuple[str, str]]) -> list[BaseMessage]:
    return [HumanMessage(c) if role == "user" else AIMessage(c) for role, c in history]


def run_protocol(task: Task, model: BaseChatModel, prompt: str, get: Getter, trace: TraceWriter, *,
                 model_label: str, max_rounds: int = MAX_ROUNDS, config: dict[str, Any] | None = None) -> ProtocolRun:
    """Run one task in their protocol, tracing a model_call per round and a tool_call per GET/POST."""
    run = ProtocolRun(status="max_steps", history=[("user", prompt)])
    start = time.perf_counter()
    # task1 is finding the patient: the header names none (the answer would be in it)
    trace.emit(RunHeader(run_id="", question=task.instruction, patient_id=task.eval_mrn if task.kind != "task1" else None,
                         strategy="medagentbench-protocol",
                         model=model_label, config={"max_rounds": max_rounds, **(config or {})}, now=task.now, seed=0,
                         prompts={"medagentbench_prompt": PROMPT_SHA256}))
    for step in range(1, max_rounds + 1):
        run.rounds = step
        messages = _messages(run.history)
        sha = hashlib.sha256("\n".join(c for _, c in run.history).encode()).hexdigest()
        t0 = time.perf_counter()
        try:
            message = model.invoke(messages)
        except Exception as exc:  # the backend failed: the run ends, the case is not graded as an answer
            text = f"{type(exc).__name__}: {exc}"
            run.status = "context_limit" if "context" in text.lower() else "error"
            run.error = text
            trace.emit(ModelCallRecord(run_id="", step=step, node="protocol", prompt_sha256=sha, error=text,
                                       prompt_messages=[{"role": "user", "content": prompt}] if step == 1 else None))
            break
        raw = message.content if isinstance(message.content, str) else str(message.content)
        usage = getattr(message, "usage_metadata", None) or {}
        run.model_calls += 1
        run.input_tokens += int(usage.get("input_tokens", 0))
        run.output_tokens += int(usage.get("output_tokens", 0))
        run.history.append(("agent", raw))
        r = raw.strip().replace("```tool_code", "").replace("```", "").strip()
        action = r.split(None, 1)[0][:7] if r else ""
        trace.emit(ModelCallRecord(run_id="", step=step, node="protocol", prompt_sha256=sha, raw_output=raw,
                                   parsed={"action": action}, input_tokens=int(usage.get("input_tokens", 0)),
                                   output_tokens=int(usage.get("output_tokens", 0)),
                                   latency_s=round(time.perf_counter() - t0, 3),
                                   prompt_messages=[{"role": "user", "content": prompt}] if step == 1 else None))
        if r.startswith("GET"):
            url = r[3:].strip() + "&_format=json"
            t0 = time.perf_counter()
            ok, text = get(url)
            reply = GET_REPLY.format(data=text) if ok else GET_ERROR.format(error=text)
            run.tool_calls += 1
            trace.emit(ToolCallRecord(run_id="", step=step, name="GET", args={"url": url},
                                      result_text=text[:TRACE_RESULT_CHARS], error=None if ok else text[:500],
                                      latency_s=round(time.perf_counter() - t0, 3)))
            run.history.append(("user", reply))
        elif r.startswith("POST"):
            try:
                payload = json.loads("\n".join(r.split("\n")[1:]))
                reply = POST_ACCEPTED
            except ValueError as exc:
                payload, reply = None, POST_INVALID
                error = f"body is not JSON: {exc}"
            run.tool_calls += 1
            trace.emit(ToolCallRecord(run_id="", step=step, name="POST",
                                      args={"url": r.split("\n")[0][4:].strip(), "payload": payload},
                                      result_text=reply, error=None if payload is not None else error))
            run.history.append(("user", reply))
        elif r.startswith("FINISH("):
            run.status, run.result = "completed", r[len("FINISH("):-1]
            break
        else:
            run.status, run.error = "invalid_action", f"not GET, POST or FINISH: {r[:120]!r}"
            break
    run.seconds = round(time.perf_counter() - start, 3)
    trace.emit(RunEnd(run_id="", status=run.status, answer=f"FINISH({run.result})" if run.result is not None else "",
                      steps=run.rounds, model_calls=run.model_calls, tool_calls=run.tool_calls,
                      input_tokens=run.input_tokens, output_tokens=run.output_tokens, seconds=run.seconds,
                      error=run.error))
    return run
