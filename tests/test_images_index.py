"""The image index, tools and CLI end to end with a tiny random SiglipModel saved to a folder:
the real code path (from_pretrained, tokenizer, our preprocessing, FAISS, SQLite), no download."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.images import ImageEncoder, ImageIndex, ImageIndexError, ImageTools, image_tools, record_images, unavailable_reason
from tools.images.readers import read_entries, read_image

from test_images_readers import pydicom_data_dir, pydicom_test_file  # tests/ is on sys.path (no package)

skimage_data = pytest.importorskip("skimage.data")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LOGIT_SCALE, LOGIT_BIAS = math.log(10.0), -5.0


def build_tiny_siglip(folder: Path, image_size: int = 32, dim: int = 32) -> Path:
    """A random SigLIP with a word-level tokenizer, saved as a MedSigLIP folder would be."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipModel

    words = ("a an the of with and no normal chest x-ray radiograph ct mri scan retina fundus photograph "
             "histology pneumonia effusion leg knee brain diabetic retinopathy").split()
    vocab = {"<pad>": 0, "<unk>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                         eos_token_id=2),
        vision_config=dict(image_size=image_size, patch_size=8, hidden_size=dim, intermediate_size=2 * dim,
                           num_hidden_layers=1, num_attention_heads=2))
    model = SiglipModel(config)
    with torch.no_grad():
        model.logit_scale.fill_(LOGIT_SCALE)
        model.logit_bias.fill_(LOGIT_BIAS)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
        "resample": 2, "rescale_factor": 1 / 255, "size": {"height": image_size, "width": image_size}}))
    return folder


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory) -> Path:
    return build_tiny_siglip(tmp_path_factory.mktemp("tiny-siglip"))


@pytest.fixture(scope="session")
def encoder(encoder_dir) -> ImageEncoder:
    return ImageEncoder(encoder_dir, batch_size=4)


def make_folder(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage_data.retina()).save(folder / "retina.png")
    Image.fromarray(skimage_data.microaneurysms()).save(folder / "microaneurysms.png")
    Image.fromarray(skimage_data.immunohistochemistry()).save(folder / "ihc.jpg", quality=95)
    data = pydicom_data_dir()
    for src in (data / "RG1_UNCI.dcm", data / "RG3_UNCR.dcm", data / "emri_small_RLE.dcm",
                data / "emri_small_jpeg_ls_lossless.dcm", pydicom_test_file("CT_small.dcm"), pydicom_test_file("MR_small.dcm")):
        shutil.copy(src, folder / src.name)
    (folder / "labels.csv").write_text(
        "path,patient_id,labels,report,site\n"
        "retina.png,pat-1,diabetic retinopathy|fundus,Fundus photograph of the left eye,clinic A\n"
        "RG1_UNCI.dcm,pat-2,normal chest,No acute cardiopulmonary findings,\n")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, encoder):
    folder = make_folder(tmp_path_factory.mktemp("images"))
    index = ImageIndex(tmp_path_factory.mktemp("index") / "idx")
    report = index.add_folder(folder, encoder, labels_csv=folder / "labels.csv")
    return folder, index, report


def test_encoder_reads_its_folder_and_returns_unit_vectors(encoder):
    assert encoder.dim == 32 and encoder.preprocess.size == 32 and encoder.device in ("cpu", "cuda")
    pixels = encoder.preprocess([Image.new("RGB", (50, 70), (255, 0, 0))])
    assert pixels.shape == (1, 3, 32, 32) and pixels.dtype == np.float32
    assert np.allclose(pixels[0, 0], 1.0) and np.allclose(pixels[0, 1], -1.0)  # (x/255 - 0.5) / 0.5
    vecs = encoder.encode_texts(["normal chest x-ray", "retina", "x"] * 3)  # more than one batch
    assert vecs.shape == (9, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs[0], vecs[3], atol=1e-5)


def test_index_report_and_manifest(built, encoder):
    folder, index, report = built
    assert report.added == 8 and report.unchanged == 0
    assert [Path(p).name for p, _ in report.failed] == ["emri_small_jpeg_ls_lossless.dcm"]
    m = index.manifest()
    assert (m["model"], m["dim"], m["count"], m["factory"]) == (encoder.name, 32, 8, "Flat")


def test_every_image_finds_itself_first(built, encoder):
    folder, index, _ = built
    for row in index.rows():
        hits = index.search(encoder.encode_images([read_image(row["path"])])[0], k=3)
        assert hits[0].row["path"] == row["path"], row["path"]
        assert hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_resized_copy_ranks_next_to_its_original(built, encoder, tmp_path):
    folder, index, _ = built
    Image.fromarray(skimage_data.retina()).resize((900, 900)).save(tmp_path / "retina_small.png")
    read_image(folder / "RG1_UNCI.dcm").resize((800, 760)).save(tmp_path / "chest_small.jpg", quality=92)
    tools = ImageTools(index.path, encoder.path, encoder)
    for query, original in (("retina_small.png", "retina.png"), ("chest_small.jpg", "RG1_UNCI.dcm")):
        result = tools.search_images(query_image=str(tmp_path / query), k=3)
        assert result.ok, result.error
        assert Path(result.resources[0]["path"]).name == original
        assert result.resources[0]["score"] > 0.98


def test_text_and_combined_queries_run(built, encoder):
    folder, index, _ = built
    tools = ImageTools(index.path, encoder.path, encoder)
    result = tools.search_images(query_text="chest x-ray with effusion", k=4)
    assert result.ok and len(result.ids) == 4 and all(i.startswith("Image/") for i in result.ids)
    scores = [h["score"] for h in result.resources]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    assert result.text.splitlines()[1].startswith("rank | score | id")
    both = tools.search_images(query_image=str(folder / "retina.png"), query_text="fundus photograph", k=2)
    assert both.ok and both.resources[0]["score"] < 0.9999  # the average of two queries, not the image alone


def test_csv_and_dicom_metadata_reach_the_hits(built, encoder):
    folder, index, _ = built
    retina = index.rows("path = ?", (str(folder / "retina.png"),))[0]
    assert (retina["patient_id"], retina["labels"]) == ("pat-1", "diabetic retinopathy; fundus")
    assert retina["report"].startswith("Fundus photograph") and retina["extra"] == {"site": "clinic A"}
    chest = index.rows("path = ?", (str(folder / "RG1_UNCI.dcm"),))[0]
    assert (chest["modality"], chest["body_part"], chest["patient_id"]) == ("CR", "CHEST", "pat-2")
    mr = index.rows("path = ?", (str(folder / "emri_small_RLE.dcm"),))[0]
    assert mr["frame"] == 5 and mr["modality"] == "MR"


def test_reindex_skips_unchanged_and_follows_changes(encoder, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(skimage_data.retina()).save(folder / "a.png")
    Image.fromarray(skimage_data.microaneurysms()).save(folder / "b.png")
    shutil.copy(pydicom_test_file("CT_small.dcm"), folder / "c.dcm")
    index = ImageIndex(tmp_path / "idx")
    assert index.add_folder(folder, encoder).added == 3

    calls = []
    real = encoder.encode_images
    encoder.encode_images = lambda images: calls.append(len(images)) or real(images)  # type: ignore[method-assign]
    try:
        again = index.add_folder(folder, encoder)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 3) and calls == []
        os.utime(folder / "a.png", (1, 1))  # touched, same bytes: hashed, not re-encoded
        assert index.add_folder(folder, encoder).unchanged == 3 and calls == []
        Image.fromarray(skimage_data.immunohistochemistry()).save(folder / "a.png")  # new content
        (folder / "b.png").unlink()
        changed = index.add_folder(folder, encoder)
        assert (changed.added, changed.updated, changed.removed) == (0, 1, 1) and calls == [1]
    finally:
        del encoder.encode_images
    assert index.manifest()["count"] == 2
    ihc = encoder.encode_images([Image.fromarray(skimage_data.immunohistochemistry())])[0]
    hit = index.search(ihc, k=1)[0]
    assert Path(hit.row["path"]).name == "a.png" and hit.score == pytest.approx(1.0, abs=1e-4)


def test_each_frame_as_its_own_entry(encoder, tmp_path):
    folder = tmp_path / "mf"
    folder.mkdir()
    shutil.copy(pydicom_data_dir() / "emri_small_RLE.dcm", folder)
    index = ImageIndex(tmp_path / "idx")
    index.add_folder(folder, encoder, frames="each")
    rows = index.rows()
    assert [r["frame"] for r in rows] == list(range(10))
    frame7 = read_entries(folder / "emri_small_RLE.dcm", "each")[7].image
    hit = index.search(encoder.encode_images([frame7])[0], k=1)[0]
    assert hit.row["frame"] == 7 and hit.citation_id.endswith("-f7")


def test_classify_image_is_siglip_sigmoid(built, encoder):
    folder, index, _ = built
    tools = ImageTools(index.path, encoder.path, encoder)
    labels = ["normal chest x-ray", "pneumonia", "retina fundus photograph"]
    result = tools.classify_image(str(folder / "RG1_UNCI.dcm"), labels)
    assert result.ok, result.error
    img = encoder.encode_images([read_image(folder / "RG1_UNCI.dcm")])[0]
    txt = encoder.encode_texts(labels)
    expected = {lab: 1 / (1 + math.exp(-(float(t @ img) * 10.0 - 5.0))) for lab, t in zip(labels, txt)}
    got = {r["label"]: r["probability"] for r in result.resources}
    assert got == pytest.approx(expected, abs=1e-5)
    assert [r["label"] for r in result.resources] == sorted(expected, key=expected.get, reverse=True)
    sha = index.rows("path = ?", (str(folder / "RG1_UNCI.dcm"),))[0]["sha256"]
    assert result.ids == [f"Image/{sha[:12]}"]  # an indexed image is cited


def test_bound_session_hides_other_patients_identity(built, encoder):
    folder, index, _ = built
    tools = ImageTools(index.path, encoder.path, encoder, patient_id="pat-2")
    hits = tools.search_images(query_image=str(folder / "retina.png"), k=8).resources
    retina = next(h for h in hits if h["metadata"].get("labels") == "diabetic retinopathy; fundus")
    assert retina["path"] is None and retina["metadata"]["patient_id"] == "(another patient)"
    assert "report" not in retina["metadata"] and "site" not in retina["metadata"]
    own = next(h for h in hits if h["metadata"].get("patient_id") == "pat-2")
    assert own["metadata"]["report"].startswith("No acute") and own["path"].endswith("RG1_UNCI.dcm")


def test_tool_failures_are_results(built, encoder):
    folder, index, _ = built
    tools = ImageTools(index.path, encoder.path, encoder)
    assert "query_image" in tools.search_images().error
    assert "no such file" in tools.search_images(query_image=str(folder / "nope.png")).error
    assert "JPEG-LS" in tools.classify_image(str(folder / "emri_small_jpeg_ls_lossless.dcm"), ["x"]).error
    assert tools.classify_image(str(folder / "retina.png"), []).error


def test_index_refuses_another_model(built):
    _, index, _ = built
    other = type("Enc", (), {"name": "medsiglip-448", "dim": 1152})()
    with pytest.raises(ImageIndexError, match="same model"):
        index.check_encoder(other)


def test_tools_offered_only_with_encoder_and_index(built, encoder_dir, tmp_path):
    _, index, _ = built
    assert image_tools(index.path, None) == []
    assert image_tools(index.path, tmp_path) == []  # a folder without a model
    assert image_tools(tmp_path / "no-index", encoder_dir) == []
    assert [t.__name__ for t in image_tools(index.path, encoder_dir)] == ["search_images", "classify_image"]
    assert "MedSigLIP" in unavailable_reason(index.path, None)
    assert "medagent images index" in unavailable_reason(tmp_path / "no-index", encoder_dir)
    assert unavailable_reason(index.path, encoder_dir) is None


def test_record_side_matches_uids_then_patient(built):
    folder, index, _ = built
    import pydicom

    mr = pydicom.dcmread(folder / "MR_small.dcm", stop_before_pixels=True)
    series = {"resourceType": "ImagingStudy", "series": [{"uid": mr.SeriesInstanceUID}], "identifier": []}
    assert record_images(index, series).match == "series"
    study = {"resourceType": "ImagingStudy", "identifier": [{"system": "urn:dicom:uid",
                                                             "value": f"urn:oid:{mr.StudyInstanceUID}"}]}
    found = record_images(index, study)
    assert found.match == "study" and found.note() == "1 image indexed (study UID)"
    other = {"resourceType": "ImagingStudy", "subject": {"reference": "Patient/pat-2"}, "series": [{"uid": "1.2.3"}]}
    assert record_images(index, other).match == "patient"
    media = {"resourceType": "Media", "content": {"url": f"file://{folder / 'retina.png'}"}}
    assert record_images(index, media).match == "file"
    assert record_images(index, {"resourceType": "ImagingStudy", "series": [{"uid": "9.9"}]}).note() == ""


def test_cli_search_json_and_missing_encoder(built, encoder_dir, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from agent.cli import app

    folder, index, _ = built
    for var in ("MEDAGENT_CONFIG", "MEDAGENT_IMAGE_ENCODER", "MEDAGENT_IMAGE_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    runner = CliRunner()
    missing = runner.invoke(app, ["images", "search", "--text", "chest", "--index", str(index.path)])
    assert missing.exit_code == 1 and "MEDAGENT_IMAGE_ENCODER" in missing.output and "MedSigLIP" in missing.output
    monkeypatch.setenv("MEDAGENT_IMAGE_ENCODER", str(encoder_dir))
    result = runner.invoke(app, ["images", "search", "--image", str(folder / "retina.png"), "--index", str(index.path),
                                 "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    hits = data["hits"]
    assert len(hits) == 3 and Path(hits[0]["path"]).name == "retina.png"
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["metadata"]["patient_id"] == "pat-1" and hits[0]["metadata"]["site"] == "clinic A"
    info = runner.invoke(app, ["images", "info", "--index", str(index.path)])
    assert "image tools: available" in info.output


def test_imaging_study_rows_say_which_of_their_images_are_indexed(built, tmp_path):
    """The record side as the planner sees it: search_records and read_record on ImagingStudy."""
    import pydicom

    from agent.knowledge import record_notes
    from fhir_fixtures import PATIENTS, bundle_paths
    from tools.ehr import EhrSession
    from tools.fhir.store import EmbeddedStore

    folder, index, _ = built
    mr = pydicom.dcmread(folder / "MR_small.dcm", stop_before_pixels=True)
    store = EmbeddedStore(f"sqlite:///{tmp_path / 'records.db'}")
    assert not store.load_paths(bundle_paths()).errors
    patient = PATIENTS["diabetic"].id
    study = store.create({"resourceType": "ImagingStudy", "status": "available", "started": "2025-01-02",
                          "subject": {"reference": f"Patient/{patient}"},
                          "series": [{"uid": mr.SeriesInstanceUID, "modality": {"code": "MR"}}]})
    settings = type("S", (), {"image_index": str(index.path)})()
    session = EhrSession(store, patient_id=patient)
    session.row_notes = record_notes(settings)
    found = session.search_records("ImagingStudy")
    header = next(line for line in found.text.splitlines() if line.startswith("date | "))
    assert "images" in header.split(" | ") and "1 image indexed (series UID)" in found.text
    assert "images: 1 image indexed (series UID)" in session.read_record(f"ImagingStudy/{study['id']}").text
    # No index configured: no column, and nothing breaks.
    assert record_notes(type("S", (), {"image_index": str(tmp_path / "none")})()) == {}
    assert "images" not in EhrSession(store, patient_id=patient).search_records("ImagingStudy").text.split("\n")[1]
    store.close()
