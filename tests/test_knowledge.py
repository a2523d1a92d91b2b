"""Which knowledge tools a run offers (agent/knowledge.py), and the agent citing a guideline."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from agent.knowledge import knowledge_tools
from agent.run import run_question
from agent.models.scripted import ScriptedChatModel
from fhir_fixtures import PATIENTS

MARIA = PATIENTS["diabetic"]


def _settings(**kw):
    return SimpleNamespace(**{"guidelines": "starter", "image_encoder": None, "image_index": None, **kw})


def test_guidelines_are_offered_unless_off_and_images_only_with_an_encoder(tmp_path):
    assert [t.__name__ for t in knowledge_tools(_settings(), MARIA.id)] == ["search_guidelines"]
    assert knowledge_tools(_settings(guidelines="off"), MARIA.id) == []
    # an encoder folder without a model or an index: image tools stay off rather than failing later
    assert knowledge_tools(_settings(guidelines="off", image_encoder=str(tmp_path)), MARIA.id) == []


def test_the_planner_sees_search_guidelines_beside_the_record_tools(store):
    model = ScriptedChatModel(outputs=[json.dumps({"answer": "no tools needed"})])
    run_question("What is the HbA1c goal?", backend=store, patient_id=MARIA.id, model=model, model_label="scripted",
                 extra_tools=knowledge_tools(_settings(), MARIA.id))
    prompt = model.calls[0].text
    assert "search_guidelines(" in prompt and "search_records(" in prompt


@pytest.mark.slow
def test_an_answer_cites_the_record_and_the_guideline(store, tmp_path, monkeypatch):
    """'Is her last HbA1c at goal?' reads the record and the guideline and cites both (builds the
    starter index with MiniLM on first use: slow)."""
    monkeypatch.setenv("MEDAGENT_CACHE_DIR", str(tmp_path / "cache"))
    tools = knowledge_tools(_settings(), MARIA.id)
    hits = tools[0]("HbA1c goal for adults with diabetes", 3)
    assert hits.ok and hits.ids[0].startswith("Guideline/")
    obs = store.resources("Observation", [("patient", MARIA.id), ("code", "4548-4"), ("_sort", "-date"), ("_count", "1")])[0]
    model = ScriptedChatModel(outputs=[
        json.dumps({"tool": "search_records", "args": {"resource_type": "Observation", "code": "HbA1c", "limit": 1}}),
        json.dumps({"tool": "search_guidelines", "args": {"query": "HbA1c goal for adults with diabetes", "k": 3}}),
        json.dumps({"answer": f"Her last HbA1c was {obs['valueQuantity']['value']} % (Observation/{obs['id']}); "
                              f"the usual goal is below 7 % ({hits.ids[0]})."}),
    ])
    result = run_question("Is her last HbA1c at goal?", backend=store, patient_id=MARIA.id, model=model,
                          model_label="scripted", extra_tools=tools)
    assert result.status == "completed"
    assert f"Observation/{obs['id']}" in result.cited_ids and hits.ids[0] in result.cited_ids
    # chat's /sources turns the guideline citation into a readable line with its source
    from agent.chat.commands import source_text

    chat = SimpleNamespace(settings=_settings(), patient_id=MARIA.id, backend=store)
    line = source_text(chat, hits.ids[0])
    assert line.startswith(hits.ids[0] + ": ") and "http" in line


def test_an_image_goes_with_the_question_to_the_model_and_into_the_trace(store, tmp_path):
    from skimage import data as skdata
    from PIL import Image

    png = tmp_path / "retina.png"
    Image.fromarray(skdata.retina()[::8, ::8]).save(png)
    model = ScriptedChatModel(outputs=[json.dumps({"answer": "a fundus photograph"})])
    trace = tmp_path / "run.jsonl"
    result = run_question("What does this image show?", backend=store, patient_id=MARIA.id, model=model,
                          model_label="scripted", image=png, trace_path=trace)
    assert result.status == "completed"
    question = next(m for m in model.calls[0].messages if isinstance(m.content, list))
    kinds = [b["type"] for b in question.content]
    assert kinds == ["text", "image"] and question.content[1]["mime_type"] == "image/png"
    assert "An image is attached (shown to you)" in question.content[0]["text"]
    header = json.loads(trace.read_text().splitlines()[0])
    assert header["config"]["image"]["path"] == str(png.resolve()) and len(header["config"]["image"]["sha256"]) == 64
    # a text-only backend: the image is not sent, and a bad path is refused up front
    text_only = ScriptedChatModel(outputs=[json.dumps({"answer": "cannot see it"})])
    run_question("What does this image show?", backend=store, patient_id=MARIA.id, model=text_only,
                 model_label="scripted", image=png, image_to_model=False)
    assert all(isinstance(m.content, str) for m in text_only.calls[0].messages)
    with pytest.raises(ValueError, match="does not exist"):
        run_question("?", backend=store, patient_id=MARIA.id, model=text_only, model_label="scripted",
                     image=tmp_path / "missing.png")


def test_a_dicom_image_is_windowed_into_a_png_block():
    from test_images_readers import pydicom_data_dir  # tests/ is on sys.path (no package)

    from agent.images_in import load_question_image

    image = load_question_image(pydicom_data_dir() / "RG1_UNCI.dcm")   # a CR chest radiograph
    assert image.block["mime_type"] == "image/png" and len(image.block["base64"]) > 1000


def test_chat_image_command_sends_the_image_with_the_next_question_only(store, tmp_path):
    from PIL import Image

    from agent.chat.commands import COMMANDS

    png = tmp_path / "x.png"
    Image.new("RGB", (32, 32), "white").save(png)
    app = SimpleNamespace(next_image=None, r=SimpleNamespace(info=lambda *a: None, warn=lambda *a: None))
    COMMANDS["/image"].handler(app, str(tmp_path / "missing.png"))
    assert app.next_image is None          # refused now, not after the question
    COMMANDS["/image"].handler(app, str(png))
    assert app.next_image == str(png)
