"""MedSigLIP (any SigLIP checkpoint) from a local folder: L2-normalised image and text embeddings.

The preprocessing is SigLIP's, done here with PIL and numpy because transformers 5's
``SiglipImageProcessor`` needs torchvision, which this project does not install: resize to
the model's square size (the resample filter from ``preprocessor_config.json``, else
bilinear), rescale by 1/255, normalise with mean 0.5 and std 0.5, NCHW float32. Text is
tokenised to exactly 64 tokens (``padding="max_length"``), as the model was trained.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

TEXT_TOKENS = 64
CONFIGURE_HINT = (
    "No image encoder is configured. Image search needs MedSigLIP (google/medsiglip-448) in a local "
    "folder: download it once where you have hub access (e.g. `huggingface-cli download "
    "google/medsiglip-448 --local-dir ~/models/medsiglip-448`, after accepting its terms), then pass "
    "`--encoder ~/models/medsiglip-448`, set MEDAGENT_IMAGE_ENCODER, or put `image_encoder = \"...\"` "
    "in the medagent config file. No package registry ships SigLIP weights; none is downloaded at run time.")

_RESAMPLE = {0: Image.Resampling.NEAREST, 1: Image.Resampling.LANCZOS, 2: Image.Resampling.BILINEAR,
             3: Image.Resampling.BICUBIC, 4: Image.Resampling.BOX, 5: Image.Resampling.HAMMING}


class EncoderError(Exception):
    """The encoder folder is missing or is not a SigLIP model with a tokenizer."""


class Preprocess:
    """SigLIP's image preprocessing, read from the model folder (``preprocessor_config.json``)."""

    def __init__(self, size: int, mean: Sequence[float] = (0.5,) * 3, std: Sequence[float] = (0.5,) * 3,
                 rescale: float = 1 / 255, resample: int = 2):
        self.size, self.rescale, self.resample = size, rescale, _RESAMPLE.get(int(resample), Image.Resampling.BILINEAR)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)

    @classmethod
    def from_folder(cls, folder: Path, image_size: int) -> "Preprocess":
        config_file = folder / "preprocessor_config.json"
        if not config_file.is_file():
            return cls(image_size)
        cfg = json.loads(config_file.read_text())
        size = cfg.get("size", image_size)
        size = size.get("height", size.get("shortest_edge", image_size)) if isinstance(size, dict) else int(size)
        return cls(int(size), cfg.get("image_mean", (0.5,) * 3), cfg.get("image_std", (0.5,) * 3),
                   float(cfg.get("rescale_factor", 1 / 255)), int(cfg.get("resample", 2)))

    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        batch = []
        for img in images:
            img = img.convert("RGB").resize((self.size, self.size), self.resample)
            arr = np.asarray(img, dtype=np.float32) * self.rescale
            batch.append(((arr - self.mean) / self.std).transpose(2, 0, 1))
        return np.stack(batch).astype(np.float32)


def _features(output: Any) -> Any:
    """transformers 5 returns a ModelOutput (pooled features in ``pooler_output``); 4.x a tensor."""
    return getattr(output, "pooler_output", output)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class ImageEncoder:
    """Embeds images and texts into one space; ``dim`` floats each, unit length."""

    def __init__(self, path: str | Path, device: str | None = None, batch_size: int = 8):
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise EncoderError(f"{folder} is not a model folder (no config.json). {CONFIGURE_HINT}")
        import torch
        from transformers import AutoTokenizer, SiglipModel

        self.torch = torch
        self.path = folder
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        try:
            self.model = SiglipModel.from_pretrained(folder).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(f"cannot load a SigLIP model and tokenizer from {folder}: {exc}") from exc
        config = self.model.config
        self.preprocess = Preprocess.from_folder(folder, config.vision_config.image_size)
        self.dim = int(config.vision_config.hidden_size)
        self.name = folder.name  # e.g. medsiglip-448: recorded in the index, checked on search
        self.logit_scale = float(self.model.logit_scale.detach().float().cpu().item())
        self.logit_bias = float(self.model.logit_bias.detach().float().cpu().item())

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, dim) float32, each row unit length."""
        out = []
        for start in range(0, len(images), self.batch_size):
            pixels = self.torch.from_numpy(self.preprocess(images[start:start + self.batch_size])).to(self.device)
            with self.torch.inference_mode():
                feats = _features(self.model.get_image_features(pixel_values=pixels))
            out.append(feats.float().cpu().numpy())
        return _normalised(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)).astype(np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32, each row unit length."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(list(texts[start:start + self.batch_size]), padding="max_length",
                                    max_length=TEXT_TOKENS, truncation=True, return_tensors="pt")
            # input_ids only: SigLIP was trained without an attention mask over the padding
            # (its tokenizer returns none); passing one changes the embeddings.
            with self.torch.inference_mode():
                feats = _features(self.model.get_text_features(input_ids=tokens["input_ids"].to(self.device)))
            out.append(feats.float().cpu().numpy())
        return _normalised(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)).astype(np.float32)

    def zero_shot(self, image_vector: np.ndarray, label_vectors: np.ndarray) -> list[float]:
        """SigLIP's per-label probability: sigmoid(cosine x exp(logit_scale) + logit_bias)."""
        logits = (label_vectors @ image_vector).astype(np.float64) * math.exp(self.logit_scale) + self.logit_bias
        return [float(p) for p in 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))]
