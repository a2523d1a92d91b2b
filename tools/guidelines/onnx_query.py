"""Query-time encoding on ONNX Runtime: the same sentence-transformers weights, exported once.

Why: a guideline query is one short sentence. PyTorch eager spends about 27 ms of one core on
MiniLM's six layers for it, mostly per-operator overhead; ONNX Runtime runs the same graph in
about 12 ms (measured on this 2-core machine), with vectors equal to within 1e-6. So the index,
built with sentence-transformers, needs no re-embedding, and retrieval results do not change.

The graph is exported from the loaded model (``torch.onnx``) into the cache folder on first use,
keyed by the weights' path, size and mtime, and checked against PyTorch on probe sentences
before it is used. Anything unexpected (a pooling other than mean, an export error, a mismatch)
leaves the caller on PyTorch: this is a speed path, never a different answer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tools.cache import cache_dir

log = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROBES = ("a", "colorectal cancer screening age for average-risk adults",
          "which first-line drug for stage 2 hypertension in a patient with chronic kidney disease")
TOLERANCE = 1e-4          # max abs difference per unit-vector component against PyTorch
DISABLE_ENV = "MEDAGENT_ONNX_QUERIES"     # "0" keeps queries on PyTorch


class OnnxQueryEncoder:
    """Encodes a few texts at a time with mean pooling and L2 normalisation, as the model's
    sentence-transformers pipeline does."""

    def __init__(self, session: Any, tokenizer: Any, max_length: int, path: Path):
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.path = path
        self._feeds = [i.name for i in session.get_inputs()]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="np")
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in self._feeds}
        hidden = self.session.run(None, feeds)[0]
        mask = np.asarray(batch["attention_mask"], dtype=np.float32)[..., None]
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)


def onnx_query_encoder(st_model: Any, model_path: Path) -> OnnxQueryEncoder | None:
    """An ONNX Runtime encoder equal to ``st_model`` on short inputs, or None (with the reason
    logged) when the model's pipeline is not one this reproduces or the export does not match."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("onnxruntime is not installed: guideline queries run on PyTorch")
        return None
    reason = _unsupported(st_model)
    if reason:
        log.info("guideline queries run on PyTorch: %s", reason)
        return None
    target = cache_dir() / "onnx" / f"{model_path.name}-{_weights_key(model_path)}.onnx"
    try:
        _export(st_model, target)
        encoder = OnnxQueryEncoder(_session(target), st_model.tokenizer, int(st_model.max_seq_length), target)
        difference = _difference(encoder, st_model)
    except Exception as exc:  # noqa: BLE001 - any failure leaves the PyTorch path, which is correct
        log.warning("ONNX export of %s failed (%s): guideline queries run on PyTorch", model_path, exc)
        target.unlink(missing_ok=True)         # a corrupt cached graph is exported afresh next time
        return None
    if difference > TOLERANCE:
        log.warning("ONNX graph of %s differs from PyTorch by %.2g: not used", model_path, difference)
        return None
    return encoder


def _unsupported(st_model: Any) -> str | None:
    """Why this pipeline is not Transformer -> mean Pooling [-> Normalize], or None."""
    kinds = [type(module).__name__ for module in st_model]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k != "Normalize" for k in kinds[2:]):
        return f"pipeline {kinds} is not Transformer, Pooling, Normalize"
    pooling = st_model[1].get_config_dict()
    if "pooling_mode" in pooling:            # sentence-transformers 6: one named mode
        modes = [str(pooling["pooling_mode"])]
    else:                                    # earlier releases: one flag per mode
        modes = [k.removeprefix("pooling_mode_") for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    if modes not in (["mean"], ["mean_tokens"]):
        return f"pooling {modes} is not mean pooling"
    return None


def _weights_key(model_path: Path) -> str:
    parts = [str(model_path.resolve())]
    for weights in sorted(model_path.glob("*.safetensors")) + sorted(model_path.glob("*.bin")):
        stat = weights.stat()
        parts.append(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _export(st_model: Any, target: Path) -> None:
    """Write the encoder's graph to ``target`` unless an earlier run did."""
    if target.is_file():
        return
    import torch

    class LastHidden(torch.nn.Module):
        """The bare encoder with positional inputs: what the exporter traces."""

        def __init__(self, model: Any):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids, return_dict=True).last_hidden_state

    auto_model = st_model[0].auto_model.eval()
    sample = st_model.tokenizer(list(PROBES[1:]), padding=True, return_tensors="pt")
    args = tuple(sample.get(name, torch.zeros_like(sample["input_ids"])) for name in INPUTS)
    target.parent.mkdir(parents=True, exist_ok=True)
    # written beside the target and renamed: a second process never reads half a file
    with tempfile.NamedTemporaryFile(dir=target.parent, suffix=".part", delete=False) as tmp:
        partial = Path(tmp.name)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")      # tracer notes on shape checks; the probes verify the graph
            torch.onnx.export(LastHidden(auto_model), args, str(partial), input_names=list(INPUTS),
                              output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                              dynamic_axes={n: {0: "batch", 1: "tokens"} for n in (*INPUTS, "last_hidden_state")})
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # one thread: a 20-token query gains nothing from more, and a busy 2-core machine loses
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _difference(encoder: OnnxQueryEncoder, st_model: Any) -> float:
    """The largest component difference from PyTorch over the probes, singly and as one padded batch."""
    expected = np.asarray(st_model.encode(list(PROBES), normalize_embeddings=True, show_progress_bar=False,
                                          convert_to_numpy=True), dtype=np.float32)
    singly = np.concatenate([encoder.encode([text]) for text in PROBES])
    batched = encoder.encode(list(PROBES))
    return float(max(np.abs(singly - expected).max(), np.abs(batched - expected).max()))
