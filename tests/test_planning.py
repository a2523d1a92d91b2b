"""One planning turn with a scripted model: parse, validate, one repair turn, clean failure."""

from __future__ import annotations

import json

import pytest

from agent.models.scripted import ScriptedChatModel
from agent.planning import plan_turn
from agent.protocol.prompting import planner_messages
from agent.protocol.schema import tool_schemas
from tools.ehr import EhrSession

SCHEMAS = tool_schemas(EhrSession(backend=None).tools())  # schemas need signatures only
QUESTION = "What was the most recent HbA1c?"
GOOD = '{"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c"}}'


def _turn(outputs, **kwargs):
    model = ScriptedChatModel(outputs=outputs)
    result = plan_turn(model, planner_messages(QUESTION, SCHEMAS), SCHEMAS, **kwargs)
    return model, result


def test_a_valid_call_is_read_in_one_model_call():
    model, result = _turn([{"output": GOOD, "input_tokens": 900, "output_tokens": 20}])
    assert result.status == "ok" and not result.repaired and len(result.calls) == 1
    assert [(c.name, c.args) for c in result.parsed.calls] == [("search_records", {"resource_type": "Observation", "code": "HbA1c"})]
    assert (result.input_tokens, result.output_tokens) == (900, 20)
    assert "planner" in result.calls[0].prompts            # the prompt's name and hash ride along


def test_a_final_answer_is_read():
    _, result = _turn(['{"answer": "The record has no HbA1c result."}'])
    assert result.status == "ok" and result.parsed.kind == "answer"


@pytest.mark.parametrize("bad, fragment", [
    ("", "empty"),
    ('{"tool": "search_recrods", "args": {"resource_type": "Observation"}}', "search_records"),
    ('{"tool": "search_records", "args": {"code": "HbA1c"}}', "resource_type"),
    ('{"tool": "search_records", "args": {"resource_type": "Observation", "colour": "red"}}', "colour"),
    ('{"tool": "search_records", "args": {"resource_type": "Observation", "code": "Hb', "trunc"),
])
def test_a_bad_output_gets_one_repair_turn_that_shows_the_error(bad, fragment):
    model, result = _turn([bad, GOOD])
    assert result.status == "ok" and result.repaired and len(result.calls) == 2
    assert fragment.lower() in (result.calls[0].error or "").lower()
    repair_prompt = model.calls[1].text
    assert fragment.lower() in repair_prompt.lower()      # the model is shown what was wrong
    assert result.calls[1].repair and not result.calls[0].repair


def test_two_bad_outputs_fail_the_step_with_invalid_action():
    _, result = _turn(["", '{"tool": "nope", "args": {}}'])
    assert result.status == "invalid_action" and len(result.calls) == 2 and result.error


def test_no_repair_when_disabled():
    _, result = _turn([""], repair=False)
    assert result.status == "invalid_action" and len(result.calls) == 1


def test_a_failing_backend_is_a_model_error_not_an_exception():
    _, result = _turn([])  # the script is empty: the backend raises
    assert result.status == "model_error" and "ScriptExhausted" in result.error


class _Constrainable(ScriptedChatModel):
    supports_json_schema: bool = True


def test_the_action_schema_is_sent_when_the_backend_can_constrain():
    model = _Constrainable(outputs=[GOOD])
    result = plan_turn(model, planner_messages(QUESTION, SCHEMAS), SCHEMAS,
                       narrow={"search_records.resource_type": ["Observation", "Condition"]})
    schema = model.calls[0].json_schema
    assert result.calls[0].constrained and schema is not None
    assert "Condition" in json.dumps(schema) and "ImagingStudy" not in json.dumps(schema)   # narrowed
    thinking = _Constrainable(outputs=[GOOD])
    plan_turn(thinking, planner_messages(QUESTION, SCHEMAS, thinking=True), SCHEMAS, thinking=True)
    assert thinking.calls[0].json_schema is None              # no grammar in thinking mode
    plain = ScriptedChatModel(outputs=[GOOD])
    plan_turn(plain, planner_messages(QUESTION, SCHEMAS), SCHEMAS)
    assert plain.calls[0].json_schema is None
