"""``medagent chat`` as a user sees it: driven in a pseudo-terminal (pexpect) and through a pipe,
with a scripted model over the fixture store; the screen is read with escape codes stripped.

The scripted model is started through a small launcher that makes it stream its output word by
word (optionally slowly) through LangChain's ``on_llm_new_token``, as the embedded and served
backends do, so the streaming path and Ctrl-C during a turn are exercised for real.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.trace.writer import load_trace
from fhir_fixtures import PATIENTS, bundle_paths
from tools.fhir.store import EmbeddedStore

pexpect = pytest.importorskip("pexpect")

MARIA = PATIENTS["diabetic"]
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?|[\r\x07]")
# prompt_toolkit turns bracketed paste on (ESC[?2004h) each time it starts a prompt, and redraws
# the prompt with the typed text on Enter: the first marks a NEW prompt ("Maria Garcia> ").
PROMPT = r"\x1b\[\?2004h[^\r\n]*?[a-z]>"

LAUNCHER = r"""
import os, re, sys, time
from agent.models.scripted import ScriptedChatModel

_generate = ScriptedChatModel._generate
DELAY = float(os.environ.get("CHAT_TEST_TOKEN_DELAY", "0"))

def streaming_generate(self, messages, stop=None, run_manager=None, **kwargs):
    result = _generate(self, messages, stop=stop, run_manager=None, **kwargs)
    if run_manager is not None:
        for piece in re.findall(r"\S+\s*|\s+", result.generations[0].message.content):
            time.sleep(DELAY)
            run_manager.on_llm_new_token(piece)
    return result

ScriptedChatModel._generate = streaming_generate
from agent.cli.main import app
sys.argv[0] = "medagent"
app()
"""


def clean(text: str) -> str:
    return ANSI.sub("", text)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('chat') / 'store.db'}"
    assert EmbeddedStore(url).load_paths(bundle_paths()).errors == []
    return url


@pytest.fixture(scope="module")
def hba1c(store_url) -> dict:
    return EmbeddedStore(store_url).resources("Observation", [("patient", MARIA.id), ("code", "4548-4"),
                                                             ("_sort", "-date"), ("_count", "1")])[0]


@pytest.fixture
def env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDAGENT_") and k != "NO_COLOR"}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg"), PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm-256color",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return env


def script(path: Path, *outputs: str) -> str:
    path.write_text("".join(json.dumps({"output": o}) + "\n" for o in outputs))
    return f"scripted:{path}"


def call(tool: str, **args) -> str:
    return json.dumps({"tool": tool, "args": args})


def answer(text: str) -> str:
    return json.dumps({"answer": text})


class Chat:
    """One ``medagent chat`` process in a pseudo-terminal."""

    def __init__(self, args: list[str], env: dict, timeout: float = 60):
        self.child = pexpect.spawn(sys.executable, ["-c", LAUNCHER, "chat", *args], env=env, encoding="utf-8",
                                   timeout=timeout, dimensions=(50, 160))
        self.screen = ""

    def until(self, pattern: str = PROMPT) -> str:
        self.child.expect(pattern)
        text = clean(self.child.before + (self.child.after if isinstance(self.child.after, str) else ""))
        self.screen += text
        return text

    def send(self, line: str) -> str:
        self.child.sendline(line)
        return self.until()

    def exit_status(self) -> int | None:
        self.child.expect(pexpect.EOF)
        self.screen += clean(self.child.before)
        self.child.close()
        return self.child.exitstatus


def test_question_answer_tool_line_citations_footer_and_commands(store_url, hba1c, env, tmp_path):
    ref = f"Observation/{hba1c['id']}"
    llm = script(tmp_path / "s.jsonl", call("search_records", resource_type="Observation", code="HbA1c", limit=3),
                 answer(f"Her most recent **HbA1c** was {hba1c['valueQuantity']['value']} % ({ref})."))
    chat = Chat(["--llm", llm, "--store", store_url, "--data-dir", str(tmp_path / "chat")], env)
    start = chat.until()
    assert "No patient bound" in start
    assert "No patient is bound yet" in chat.send("What was her last HbA1c?")   # a question needs a patient
    assert "Did you mean /patient?" in chat.send("/pateint Garcia")
    both = chat.send("/patient Garcia")                                         # two Garcias: pick one
    assert "2 patients match" in both and MARIA.id in both and PATIENTS["asthma_child"].id in both
    card = chat.send(f"/patient {MARIA.id}")
    for part in ("Maria Garcia", "female", "Active problems", "Diabetes mellitus type 2", "Active medications",
                 "lisinopril", "Allergies", "penicillin", "Latest vitals", "Blood pressure"):
        assert part in card, part
    turn = chat.send("What was her last HbA1c?")
    assert re.search(r"⚙ search_records\(resource_type=Observation, code=HbA1c, limit=3\) → \d+ rows · \d+\.\d\d s",
                     turn), turn
    assert f"Her most recent HbA1c was {hba1c['valueQuantity']['value']} %" in turn   # Markdown rendered
    assert f"cited: {ref}" in turn and re.search(r"2 steps · [\d,]+ → [\d,]+ tokens · \d+\.\d s", turn)
    tree = chat.send("/trace")
    assert "question: What was her last HbA1c?" in tree and "tool search_records" in tree and "completed" in tree
    sources = chat.send("/sources")
    assert ref in sources and "Hemoglobin A1c" in sources
    helped = chat.send("/help")
    for name in ("/patient", "/summary", "/trace", "/sources", "/new", "/sessions", "/resume", "/model", "/redact",
                 "/confirm", "/save", "/quit"):
        assert name in helped, name
    saved = tmp_path / "conversation.md"
    chat.send(f"/save {saved}")
    text = saved.read_text()
    assert "## 1. What was her last HbA1c?" in text and f"`{ref}`" in text
    assert "No drafted order" in chat.send("/confirm")
    chat.child.sendline("/quit")
    assert chat.exit_status() == 0


def test_sessions_resume_across_two_processes(store_url, env, tmp_path):
    data = str(tmp_path / "chat")
    first = Chat(["-p", MARIA.id, "--llm", script(tmp_path / "a.jsonl", answer("Yes, type 2 diabetes since 2017.")),
                  "--store", store_url, "--data-dir", data], env)
    first.until()
    assert "Yes, type 2 diabetes since 2017." in first.send("Does she have diabetes?")
    first.child.sendeof()                                        # Ctrl-D leaves with status 0
    assert first.exit_status() == 0
    session_id = re.search(r"medagent chat --session (\w+)", first.screen).group(1)

    second = Chat(["--llm", script(tmp_path / "b.jsonl", answer("Metformin.")), "--store", store_url,
                   "--data-dir", data], env)
    second.until()
    listed = second.send("/sessions")
    assert session_id in listed and "Maria Garcia" in listed and "Does she have diabetes?" in listed
    resumed = second.send(f"/resume {session_id}")
    assert f"Resumed session {session_id}" in resumed and "#1 Does she have diabetes?" in resumed
    assert "Metformin." in second.send("What does she take for it?")
    second.child.sendline("/quit")
    assert second.exit_status() == 0

    from langgraph.checkpoint.sqlite import SqliteSaver

    from agent.run import build_graph
    saver = SqliteSaver(sqlite3.connect(str(Path(data) / "checkpoints.sqlite")))
    state = build_graph("react", saver).get_state({"configurable": {"thread_id": session_id}}).values
    assert [tuple(pair) for pair in state["conversation"]] == [("Does she have diabetes?",
                                                               "Yes, type 2 diabetes since 2017.")]
    traces = sorted((Path(data) / "sessions" / session_id).glob("turn-*.jsonl"))
    assert [t.name for t in traces] == ["turn-001.jsonl", "turn-002.jsonl"]


def test_ctrl_c_stops_the_turn_and_the_session_goes_on(store_url, env, tmp_path):
    env["CHAT_TEST_TOKEN_DELAY"] = "0.25"
    slow = " ".join(f"word{i}" for i in range(200))
    llm = script(tmp_path / "s.jsonl", answer(slow), answer("Second answer."))
    data = tmp_path / "chat"
    chat = Chat(["-p", MARIA.id, "--llm", llm, "--store", store_url, "--data-dir", str(data)], env)
    chat.until()
    chat.child.sendline("Tell me everything.")
    chat.until(r"word3")                                         # the answer is streaming
    chat.child.sendintr()
    stopped = chat.until()
    assert "Turn stopped" in stopped and "word199" not in stopped
    assert "Second answer." in chat.send("And briefly?")         # the session is still usable
    chat.child.sendline("/quit")
    assert chat.exit_status() == 0
    first, second = sorted(data.glob("sessions/*/turn-*.jsonl"))
    assert load_trace(first)[-1].status == "interrupted" and load_trace(second)[-1].status == "completed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_piped(lines: list[str], args: list[str], env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LAUNCHER, "chat", *args], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_a_dead_model_server_gets_a_clear_message_and_the_chat_goes_on(store_url, env, tmp_path):
    dead = f"openai:medgemma@http://127.0.0.1:{_closed_port()}/v1"
    fallback = script(tmp_path / "s.jsonl", answer("Answered by the other model."))
    done = run_piped(["Is anyone there?", f"/model {fallback}", "Is anyone there now?"],
                     ["-p", MARIA.id, "--llm", dead, "--store", store_url, "--data-dir", str(tmp_path / "chat")], env)
    assert done.returncode == 0, done.stderr
    assert "The model did not answer" in done.stdout and "connection refused" in done.stdout
    assert "The session is kept" in done.stdout and "Answered by the other model." in done.stdout


def test_piped_input_each_line_a_turn_plain_output(store_url, hba1c, env, tmp_path):
    ref = f"Observation/{hba1c['id']}"
    llm = script(tmp_path / "s.jsonl", call("search_records", resource_type="Observation", code="HbA1c"),
                 answer(f"{hba1c['valueQuantity']['value']} % ({ref})"), answer("It was lower before."))
    done = run_piped(["What was her last HbA1c?", "", "And before that?"],
                     ["-p", MARIA.id, "--llm", llm, "--store", store_url, "--data-dir", str(tmp_path / "chat")], env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "\x1b" not in out                                     # plain: no escape codes in a pipe
    assert "> What was her last HbA1c?" in out and "> And before that?" in out
    assert "⚙ search_records(resource_type=Observation, code=HbA1c)" in out and f"cited: {ref}" in out
    assert "It was lower before." in out and "Session " in out


def test_no_color_in_a_terminal_gives_plain_text(store_url, env, tmp_path):
    env["NO_COLOR"] = "1"
    chat = Chat(["-p", MARIA.id, "--llm", script(tmp_path / "s.jsonl", answer("Plain *answer*.")),
                 "--store", store_url, "--data-dir", str(tmp_path / "chat")], env)
    chat.until()
    chat.child.sendline("Anything?")
    chat.child.expect(PROMPT)
    raw = chat.child.before
    assert "Plain *answer*." in clean(raw)                        # streamed as text, not rendered Markdown
    body = raw.split("Anything?", 1)[-1]
    colour = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-8]|9[0-7]|4[0-8])(?:;[0-9;]*)?m")
    assert not colour.search(body.split("tokens")[0])               # no colour codes in the turn's output
    chat.child.sendline("/quit")
    assert chat.exit_status() == 0


@pytest.mark.slow
def test_embedded_model_two_related_questions_quit_resume_third(store_url, env, tmp_path):
    data = str(tmp_path / "chat")
    args = ["-p", MARIA.id, "--store", store_url, "--data-dir", data, "--max-steps", "4"]
    first = run_piped(["What was her most recent HbA1c?", "And the one before that?"], args, env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(" tokens · ") == 2, first.stdout
    session_id = re.search(r"medagent chat --session (\w+)", first.stdout).group(1)
    third = run_piped(["What medications is she on?"], ["--session", session_id, *args[2:]], env, timeout=600)
    assert third.returncode == 0 and f"Resumed session {session_id}" in third.stdout
    assert " tokens · " in third.stdout
    assert len(list((Path(data) / "sessions" / session_id).glob("turn-*.jsonl"))) == 3


def test_confirm_submits_the_drafted_order_only_in_a_writable_session(env, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert EmbeddedStore(url).load_paths(bundle_paths()).errors == []
    before = len(EmbeddedStore(url).resources("MedicationRequest", [("patient", MARIA.id)]))
    outputs = [call("draft_order", kind="MedicationRequest", code="metformin", dosage_text="500 mg twice daily"),
               answer("Drafted metformin 500 mg twice daily for your review: /confirm to submit it.")]
    args = ["-p", MARIA.id, "--store", url, "--data-dir", str(tmp_path / "chat")]
    lines = ["/redact on", "Draft metformin 500 mg twice daily.", "/confirm yes"]
    refused = run_piped(lines, [*args, "--llm", script(tmp_path / "a.jsonl", *outputs)], env)
    assert refused.returncode == 0, refused.stderr
    assert "⚙ draft_order(" in refused.stdout and "read-only" in refused.stdout and "nothing was written" in refused.stdout
    assert len(EmbeddedStore(url).resources("MedicationRequest", [("patient", MARIA.id)])) == before
    header = json.loads(sorted((tmp_path / "chat").glob("sessions/*/turn-001.jsonl"))[0].read_text().splitlines()[0])
    assert header["redacted"] is True                            # /redact on reached the next turn's trace

    stored = run_piped(lines, [*args, "--llm", script(tmp_path / "b.jsonl", *outputs)],
                       {**env, "MEDAGENT_READ_ONLY": "false"})
    assert stored.returncode == 0, stored.stderr
    assert re.search(r"stored MedicationRequest/\S+", stored.stdout), stored.stdout
    assert len(EmbeddedStore(url).resources("MedicationRequest", [("patient", MARIA.id)])) == before + 1
