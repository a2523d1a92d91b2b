"""The chat's parts in-process: the streamed-answer reader, a turn in its worker thread (events
in order, stopping it, the session surviving a stopped turn) and the sessions index."""

from __future__ import annotations

import json
import threading
import time

from langchain_core.outputs import ChatResult

from agent.chat.sessions import SessionStore
from agent.chat.turn import AnswerStream, StreamTap, TurnWorker
from agent.models.scripted import ScriptedChatModel
from agent.run import build_graph, run_question
from agent.trace.writer import load_trace
from fhir_fixtures import PATIENTS

MARIA = PATIENTS["diabetic"]


class StreamingScripted(ScriptedChatModel):
    """Replays its script and streams each output character by character (``delay`` apart)."""

    delay: float = 0.0

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        result = super()._generate(messages, stop=stop, run_manager=None, **kwargs)
        if run_manager is not None:
            for ch in result.generations[0].message.content:
                time.sleep(self.delay)
                run_manager.on_llm_new_token(ch)
        return result


def test_answer_stream_reads_the_answer_as_it_grows():
    text = 'Line one\n"quoted" é \\ done'
    raw = json.dumps({"answer": text})
    stream, shown = AnswerStream(), ""
    for ch in raw:                                   # one character at a time: escapes arrive split
        shown += stream.feed(ch)
        assert text.startswith(shown)
    assert shown == text
    tool = AnswerStream()
    assert all(tool.feed(ch) == "" for ch in json.dumps({"tool": "search_records", "args": {"code": "answer"}}))


def _job(store, model, session_id, checkpointer, trace_path, question="What was her last HbA1c?"):
    def job(exporter):
        return run_question(question, backend=store, patient_id=MARIA.id, model=model, model_label="scripted",
                            trace_path=trace_path, session_id=session_id, checkpointer=checkpointer,
                            exporters=[exporter])
    return job


def _drain(worker: TurnWorker) -> list:
    events = []
    while True:
        event = worker.events.get(timeout=30)
        events.append(event)
        if event.kind == "done":
            return events


def test_a_turn_reports_model_starts_tokens_and_tool_calls_in_order(store, tmp_path):
    model = StreamingScripted(outputs=[json.dumps({"tool": "search_records", "args": {"resource_type": "Observation",
                                                                                      "code": "HbA1c"}}),
                                       json.dumps({"answer": "7.1 %"})])
    tap = StreamTap()
    model.callbacks = [tap]
    worker = TurnWorker(_job(store, model, None, None, tmp_path / "t.jsonl")).start()
    events = _drain(worker)
    kinds = [e.kind if e.kind != "record" else e.data.type for e in events]
    assert kinds[0] == "run_header" and kinds[-2:] == ["run_end", "done"]
    first_tool = kinds.index("tool_call")
    assert kinds.index("model_start") < kinds.index("token") < first_tool     # live, before the tool ran
    assert "model_start" in kinds[first_tool:] and "token" in kinds[first_tool:]
    stream = AnswerStream()
    shown = "".join(stream.feed(e.data) for e in events[first_tool:] if e.kind == "token")
    assert shown == "7.1 %" and worker.result.status == "completed"


def test_stopping_a_turn_ends_its_trace_as_interrupted_and_keeps_the_session(store, tmp_path):
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    first = ScriptedChatModel(outputs=[json.dumps({"answer": "Yes, type 2."})])
    run_question("Does she have diabetes?", backend=store, patient_id=MARIA.id, model=first, model_label="s",
                 session_id="s1", checkpointer=saver)
    slow = StreamingScripted(outputs=[json.dumps({"answer": "x" * 400})], delay=0.01)
    tap = StreamTap()
    slow.callbacks = [tap]
    trace = tmp_path / "stopped.jsonl"
    worker = TurnWorker(_job(store, slow, "s1", saver, trace, "And since when?")).start()
    while worker.events.get(timeout=30).kind != "token":
        pass
    started = time.perf_counter()
    worker.stop()
    assert worker.join(10) and time.perf_counter() - started < 5
    assert worker.stopped and worker.result is None and worker.error is None
    end = load_trace(trace)[-1]
    assert end.type == "run_end" and end.status == "interrupted"
    third = ScriptedChatModel(outputs=[json.dumps({"answer": "Since 2017."})])
    run_question("Since when?", backend=store, patient_id=MARIA.id, model=third, model_label="s",
                 session_id="s1", checkpointer=saver)
    assert "Earlier question: Does she have diabetes?" in third.calls[0].text   # the stopped turn lost nothing
    state = build_graph("react", saver).get_state({"configurable": {"thread_id": "s1"}}).values
    assert state["answer"] == "Since 2017." and threading.active_count() < 20


def test_sessions_index_lists_newest_first_and_finds_by_prefix(tmp_path):
    store = SessionStore(tmp_path)
    a = store.create("p1", "Maria Garcia", "scripted")
    time.sleep(1.1)
    b = store.create("p2", "James Okafor", "scripted")
    assert [s.id for s in store.list()] == [b.id, a.id]
    assert store.get(a.id[:5]).patient == "p1" and store.get("nope") is None
    assert store.next_trace_path(a.id).name == "turn-001.jsonl"
    assert SessionStore(tmp_path).get(b.id).patient_name == "James Okafor"   # another process reads the same index


def test_openai_compatible_backend_streams_pieces_to_the_callbacks():
    """A served model with ``streaming=True`` (what the chat sets) passes each piece on as it arrives."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.messages import HumanMessage

    from agent.models.openai_compat import OpenAICompatibleChatModel

    pieces = ['{"answer": "', "Seven ", "point ", 'one."}']
    requests: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            requests.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "served"}
            for i, piece in enumerate(pieces):
                done = "stop" if i == len(pieces) - 1 else None
                body = {**chunk, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": done}]}
                self.wfile.write(f"data: {json.dumps(body)}\n\n".encode())
                self.wfile.flush()
            usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
            self.wfile.write(f"data: {json.dumps({**chunk, 'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    got: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token, **kwargs):
            got.append(token)
    try:
        model = OpenAICompatibleChatModel(model="served", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1",
                                          streaming=True, callbacks=[Collect()])
        reply = model.invoke([HumanMessage("Last HbA1c?")])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got == pieces and reply.content == "".join(pieces) and requests[0]["stream"] is True
    assert reply.usage_metadata["input_tokens"] == 12 and reply.usage_metadata["output_tokens"] == 4
    assert reply.response_metadata["finish_reason"] == "stop"


def test_answers_render_as_markdown_keeping_tag_like_text():
    import io

    from agent.chat.render import Renderer
    from agent.run import RunResult

    out = io.StringIO()
    result = RunResult(answer="**Last** value: <value> <unit> (Observation/<id>); HbA1c <7 %", status="completed",
                       cited_ids=["Observation/x"], steps=1, model_calls=1, input_tokens=5, output_tokens=2)
    Renderer(plain=False, file=out).answer(result, "", 1.5)
    text = out.getvalue()
    assert "Last value: <value> <unit> (Observation/<id>); HbA1c <7 %" in text and "**" not in text
    assert "cited: Observation/x" in text and "1 step · 5 → 2 tokens · 1.5 s" in text
