"""OpenAICompatibleChatModel against a tiny local HTTP server (unit) and a real llama.cpp server.

The unit tests run a scripted OpenAI-compatible server in a thread on 127.0.0.1 (no network): the
real openai client, real HTTP. The ``llm_server`` tests need ``MEDAGENT_TEST_OPENAI_URL`` (e.g.
``http://127.0.0.1:18081/v1`` from ``bash .ci/llama_server.sh start``) and skip cleanly without it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agent.models.gemma_format import to_turns
from agent.models.openai_compat import (OpenAICompatError, OpenAICompatibleChatModel, check_server,
                                        to_openai_messages)


def completion(text: str = "ok", prompt_tokens: int = 11, completion_tokens: int = 3, finish: str = "stop",
               model: str = "served-model") -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class FakeServer:
    """Answers each POST /v1/chat/completions with the next queued (status, body, headers)."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, dict, dict]] = []
        self.requests: list[dict] = []
        self.models = ["served-model", "other-model"]
        self.dead = False   # after DIE: every request's connection is dropped, as by a server that exited
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.endswith("/v1/models"):
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "me"}
                                                                for m in server.models]})
                else:
                    self._send(404, {"detail": "Not Found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append(body)
                status, answer, headers = server.queue.pop(0) if server.queue else (200, completion(), {})
                server.dead = server.dead or status == DIE
                if status == DROP or server.dead:  # llama-cpp-python's server exits when its grammar parser fails
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self._send(status, answer, headers)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def push(self, status: int, body: dict, headers: dict | None = None) -> None:
        self.queue.append((status, body, headers or {}))


@pytest.fixture
def server():
    fake = FakeServer()
    fake.thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def make(server: FakeServer, **kw) -> OpenAICompatibleChatModel:
    kw.setdefault("retry_backoff_s", 0.01)
    return OpenAICompatibleChatModel(model="served-model", base_url=server.url, **kw)


SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "maxLength": 20}}, "required": ["tool"]}
DROP = 0   # a queued status that closes the connection without an answer
DIE = -1   # ... and every later one too (the server is gone)


# --------------------------------------------------------------------------- messages

def test_gemma_merging_folds_system_and_tool_messages_into_alternating_turns():
    messages = [SystemMessage("You are a clinician."), HumanMessage("What is the HbA1c?"),
                AIMessage('{"tool": "fhir_search"}'), ToolMessage("HbA1c 7.1 %", tool_call_id="1", name="fhir_search"),
                HumanMessage("Be brief.")]
    out = to_openai_messages(messages)
    assert [m["role"] for m in out] == ["user", "assistant", "user"]
    assert out[0]["content"] == "You are a clinician.\n\nWhat is the HbA1c?"
    assert out[2]["content"] == "fhir_search:\n```tool_output\nHbA1c 7.1 %\n```\n\nBe brief."
    # the same text the local backends put in their prompts
    assert [(m["role"].replace("assistant", "model"), m["content"]) for m in out] == to_turns(messages)


def test_a_conversation_ending_with_the_model_gets_an_empty_user_turn():
    out = to_openai_messages([HumanMessage("Q"), AIMessage("partial")])
    assert [m["role"] for m in out] == ["user", "assistant", "user"] and out[2]["content"] == ""


def test_merge_system_false_keeps_a_leading_system_role():
    out = to_openai_messages([SystemMessage("S"), HumanMessage("U"), SystemMessage("late")], merge_system=False)
    assert out == [{"role": "system", "content": "S"}, {"role": "user", "content": "U\n\nlate"}]


def test_images_become_openai_image_parts_in_place():
    msg = HumanMessage(content=[{"type": "text", "text": "Describe"},
                                {"type": "image", "base64": "AAAA", "mime_type": "image/jpeg"},
                                {"type": "text", "text": "briefly"}])
    out = to_openai_messages([SystemMessage("S"), msg])
    assert out[0]["content"] == [{"type": "text", "text": "S\n\nDescribe\n"},
                                 {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
                                 {"type": "text", "text": "\nbriefly"}]


# --------------------------------------------------------------------------- requests and responses

def test_plain_call_sends_merged_messages_and_parses_usage(server):
    server.push(200, completion("Hello there", prompt_tokens=21, completion_tokens=2, finish="length"))
    model = make(server, max_tokens=64)
    reply = model.invoke([SystemMessage("sys"), HumanMessage("hi")], stop=["<end_of_turn>"])
    assert reply.content == "Hello there"
    assert reply.usage_metadata == {"input_tokens": 21, "output_tokens": 2, "total_tokens": 23}
    meta = reply.response_metadata
    assert meta["finish_reason"] == "length" and meta["model"] == "served-model"
    assert meta["latency_s"] >= 0 and meta["structured_output"] is None
    body = server.requests[0]
    assert body["messages"] == [{"role": "user", "content": "sys\n\nhi"}]
    assert body["temperature"] == 0 and body["max_tokens"] == 64 and body["stop"] == ["<end_of_turn>"]
    assert "response_format" not in body


def test_json_schema_mode_sends_the_openai_form(server):
    model = make(server, structured_output="json_schema")
    reply = model.invoke("pick a tool", json_schema=SCHEMA)
    assert server.requests[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "action", "schema": SCHEMA, "strict": True}}
    assert reply.response_metadata["structured_output"] == "json_schema"


def test_json_object_mode_sends_the_llama_cpp_form(server):
    model = make(server, structured_output="json_object")
    reply = model.invoke("pick a tool", json_schema=SCHEMA)
    assert server.requests[0]["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert reply.response_metadata["structured_output"] == "json_object"


def test_none_mode_sends_no_response_format(server):
    make(server, structured_output="none").invoke("x", json_schema=SCHEMA)
    assert "response_format" not in server.requests[0]


def test_auto_falls_back_to_json_object_once_and_remembers(server):
    server.push(500, {"error": {"message": "Invalid response_format type json_schema", "type": "server_error"}})
    server.push(200, completion('{"tool": "a"}'))
    model = make(server)   # structured_output="auto"
    reply = model.invoke("x", json_schema=SCHEMA)
    assert reply.content == '{"tool": "a"}'
    assert reply.response_metadata["structured_output"] == "json_object"
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object"]
    assert model.structured_mode == "json_object"
    model.invoke("y", json_schema=SCHEMA)
    assert server.requests[2]["response_format"]["type"] == "json_object"   # remembered: no third json_schema try


def test_auto_does_not_fall_back_on_other_errors(server):
    server.push(400, {"error": {"message": "This model's maximum context length is 4096 tokens"}})
    with pytest.raises(OpenAICompatError, match="HTTP 400.*maximum context length") as info:
        make(server).invoke("x", json_schema=SCHEMA)
    assert info.value.status_code == 400
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- a server that refuses the grammar

@pytest.mark.parametrize("status,message", [
    (400, "Grammar error: unsupported JSON schema keyword 'propertyNames'"),          # vLLM / xgrammar
    (500, "failed to parse grammar: number of rules ... exceeds sane defaults"),       # a llama.cpp build that answers
])
def test_a_refused_grammar_falls_back_to_unconstrained_for_the_rest_of_the_run(server, status, message):
    server.push(status, {"error": {"message": message}})
    server.push(200, completion('{"tool": "a"}'))
    model = make(server, structured_output="json_object")
    reply = model.invoke("x", json_schema=SCHEMA)
    assert reply.content == '{"tool": "a"}'
    assert "response_format" in server.requests[0] and "response_format" not in server.requests[1]
    meta = reply.response_metadata
    assert meta["constrained"] is False and meta["structured_output"] == "none"
    assert meta["grammar_note"].startswith(f"server refused the grammar: HTTP {status}: ") and message[:20] in meta["grammar_note"]
    later = model.invoke("y", json_schema=SCHEMA)              # no second try with the grammar
    assert "response_format" not in server.requests[2] and later.response_metadata["constrained"] is False
    assert later.response_metadata["grammar_note"] == meta["grammar_note"]
    assert len(server.requests) == 3


def test_a_connection_dropped_while_compiling_the_grammar_falls_back(server):
    server.push(DROP, {})
    server.push(200, completion('{"answer": "ok"}'))
    reply = make(server, structured_output="json_object").invoke("x", json_schema=SCHEMA)
    assert reply.content == '{"answer": "ok"}' and reply.response_metadata["constrained"] is False
    assert "the connection dropped while the server compiled it" in reply.response_metadata["grammar_note"]
    assert ["response_format" in r for r in server.requests] == [True, False]


def test_a_server_that_died_on_the_grammar_is_named_as_such(server):
    server.push(DIE, {})
    model = make(server, structured_output="json_object", max_retries=0, timeout=3)
    with pytest.raises(OpenAICompatError, match="dies on grammars it cannot compile"):
        model.invoke("x", json_schema=SCHEMA)


def test_other_errors_with_a_grammar_are_not_taken_for_a_refusal(server):
    server.push(400, {"error": {"message": "This model's maximum context length is 4096 tokens"}})
    with pytest.raises(OpenAICompatError, match="maximum context length"):
        make(server, structured_output="json_object").invoke("x", json_schema=SCHEMA)
    assert len(server.requests) == 1


def test_the_planner_traces_the_fallback(server):
    from agent.planning import plan_turn

    server.push(400, {"error": {"message": "xgrammar: unsupported schema"}})
    server.push(200, completion('{"tool": "nope", "args": {}}'))         # unconstrained: the parser and repair take over
    server.push(200, completion('{"tool": "lookup", "args": {}}'))
    schemas = [{"name": "lookup", "description": "d", "parameters": {"type": "object", "properties": {}}}]
    turn = plan_turn(make(server, structured_output="json_object"), [HumanMessage("q")], schemas)
    assert turn.status == "ok" and [c.constrained for c in turn.calls] == [False, False]
    assert turn.calls[0].error.startswith("server refused the grammar: HTTP 400: xgrammar: unsupported schema")
    assert turn.calls[1].repair and "response_format" not in server.requests[2]


def test_retries_on_503_then_succeeds(server):
    server.push(503, {"error": {"message": "busy"}}, {"retry-after-ms": "1"})
    server.push(503, {"error": {"message": "busy"}})
    server.push(200, completion("finally"))
    reply = make(server, max_retries=2).invoke("x")
    assert reply.content == "finally" and len(server.requests) == 3


def test_gives_up_after_max_retries(server):
    for _ in range(3):
        server.push(503, {"error": {"message": "overloaded"}})
    with pytest.raises(OpenAICompatError, match="HTTP 503.*overloaded"):
        make(server, max_retries=1).invoke("x")
    assert len(server.requests) == 2


def test_404_names_the_model_and_lists_the_servers_models(server):
    server.push(404, {"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError"}})
    model = OpenAICompatibleChatModel(model="nope", base_url=server.url)
    with pytest.raises(OpenAICompatError, match=r"model 'nope' not found.*lists: other-model, served-model"):
        model.invoke("x")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    model = OpenAICompatibleChatModel(model="m", base_url=url, max_retries=1, retry_backoff_s=0.01)
    with pytest.raises(OpenAICompatError) as info:
        model.invoke("x")
    assert str(info.value) == f"cannot reach OpenAI-compatible server at {url}: connection refused"
    with pytest.raises(OpenAICompatError, match=f"cannot reach OpenAI-compatible server at {url}"):
        check_server(url)


def test_check_server_lists_models(server):
    info = check_server(server.url + "/")
    assert info["models"] == ["other-model", "served-model"] and info["base_url"] == server.url


def test_api_key_from_env(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    monkeypatch.setenv("MEDAGENT_OPENAI_API_KEY", "from-medagent")
    assert make(server).client.api_key == "from-medagent"
    monkeypatch.delenv("MEDAGENT_OPENAI_API_KEY")
    assert make(server).client.api_key == "from-openai"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert make(server).client.api_key == "EMPTY"
    assert make(server, api_key="given").client.api_key == "given"


def test_make_chat_model_builds_it_from_a_spec(server):
    from agent.models import make_chat_model

    model = make_chat_model(f"openai:served-model@{server.url}")
    assert isinstance(model, OpenAICompatibleChatModel) and model.invoke("x").content == "ok"


# --------------------------------------------------------------------------- a real llama.cpp server

REAL_URL = os.environ.get("MEDAGENT_TEST_OPENAI_URL", "").strip()
try:
    _llm_server_mark = pytest.mark.llm_server
except pytest.fail.Exception:   # --strict-markers and the marker is not registered (yet): skip logic only
    _llm_server_mark = None


def llm_server(fn):
    """Marks a test ``llm_server`` and skips it unless MEDAGENT_TEST_OPENAI_URL is set."""
    fn = pytest.mark.skipif(not REAL_URL, reason="MEDAGENT_TEST_OPENAI_URL is not set "
                                                 "(bash .ci/llama_server.sh start)")(fn)
    return _llm_server_mark(fn) if _llm_server_mark is not None else fn


def _real_model(**kw) -> OpenAICompatibleChatModel:
    served = check_server(REAL_URL)["models"]
    return OpenAICompatibleChatModel(model=served[0], base_url=REAL_URL, timeout=600, **kw)  # 2 shared cores


@llm_server
def test_real_server_plain_completion():
    model = _real_model(max_tokens=16)
    reply = model.invoke([SystemMessage("Answer in one word."), HumanMessage("The capital of France is")])
    assert isinstance(reply.content, str)
    usage = reply.usage_metadata
    assert usage["input_tokens"] > 5 and 0 < usage["output_tokens"] <= 16
    assert reply.response_metadata["finish_reason"] in ("stop", "length")


@llm_server
def test_real_server_json_object_constrained_completion():
    schema = {"type": "object",
              "properties": {"tool": {"type": "string", "enum": ["fhir_search", "final_answer"]},
                             "query": {"type": "string", "maxLength": 24}},
              "required": ["tool", "query"], "additionalProperties": False}
    model = _real_model(max_tokens=64)   # auto: learns the form this server takes
    reply = model.invoke([HumanMessage("Find the patient's latest HbA1c. Reply with a JSON tool call.")],
                         json_schema=schema)
    data = json.loads(reply.content)
    assert set(data) == {"tool", "query"}
    assert data["tool"] in ("fhir_search", "final_answer")
    assert isinstance(data["query"], str) and len(data["query"]) <= 24
    assert reply.response_metadata["structured_output"] in ("json_schema", "json_object")


@llm_server
def test_real_server_sees_the_system_text():
    # llama.cpp's "gemma" chat format drops system (and tool) messages; merge_system folds them in.
    model = _real_model(max_tokens=1)
    bare = model.invoke([HumanMessage("Hello")]).usage_metadata["input_tokens"]
    folded = model.invoke([SystemMessage("You are a careful clinician."), HumanMessage("Hello")])
    assert folded.usage_metadata["input_tokens"] >= bare + 5


def _action_schemas():
    """The planner's real action schemas: an unbound session, and one bound to a fixture patient
    with the record types narrowed to what the record holds (as ``--narrow`` does)."""
    import tempfile

    from agent.protocol.schema import action_schema, tool_schemas
    from agent.run import narrow_for
    from fhir_fixtures import PATIENTS, bundle_paths
    from tools.ehr import EhrSession
    from tools.fhir.store import EmbeddedStore

    store = EmbeddedStore(f"sqlite:///{tempfile.mkdtemp()}/fixtures.db")
    assert not store.load_paths(bundle_paths()).errors
    unbound = tool_schemas(EhrSession(store).tools())
    session = EhrSession(store, patient_id=PATIENTS["diabetic"].id)
    bound = tool_schemas(session.tools())
    return {"unbound": (unbound, action_schema(unbound)),
            "bound, narrowed": (bound, action_schema(bound, narrow=narrow_for(session)))}


@llm_server
@pytest.mark.parametrize("session_kind", ["unbound", "bound, narrowed"])
def test_real_server_compiles_the_planner_action_schema(session_kind):
    # llama-cpp-python's server died compiling the old schema (maxLength 2000); this one must compile
    # and constrain: the reply is one valid action, with no grammar fallback.
    from agent.protocol.prompting import planner_messages
    from agent.protocol.schema import schema_errors

    schemas, schema = _action_schemas()[session_kind]
    # The server's model is the Gemma 3 270M base model: shown the worked examples, as the product
    # shows base models, so it writes a short call (llama-cpp-python's grammar cannot bound an
    # integer's digits, and without examples it filled `limit` until max_tokens).
    messages = planner_messages("What was the patient's most recent HbA1c? Search the Observations.", schemas,
                                fewshot=True)
    model = _real_model(max_tokens=96, structured_output="json_object")
    reply = model.invoke(messages, json_schema=schema)
    meta = reply.response_metadata
    assert meta["constrained"] is True and "grammar_note" not in meta, meta
    assert meta["finish_reason"] == "stop", reply.content
    action = json.loads(reply.content)
    assert schema_errors(action, schema) == [], (action, schema_errors(action, schema))
