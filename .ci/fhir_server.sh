#!/usr/bin/env bash
# A real FHIR R4 server for the fhir_server tests: sekmet-fhir (FastAPI + SQLite), from PyPI.
#
#   bash .ci/fhir_server.sh start   # install if needed, start, wait for /metadata, print the base URL
#   bash .ci/fhir_server.sh stop    # stop the server started by `start` (by its pid) and wait for it
#   bash .ci/fhir_server.sh url     # print the base URL
#
# Everything lives in .ci/work/ (git-ignored): the venv (sekmet-venv/), the config (sekmet.yaml), the
# SQLite database (sekmet-data/, kept between runs: delete it for an empty server), sekmet.pid and
# sekmet.log. The server binds 127.0.0.1 only, with its workflow simulator off (it would react to
# writes with resources of its own) and no request-body logging.
#
# Environment: MEDAGENT_SEKMET_PORT (default 18080), MEDAGENT_SEKMET_PYTHON (a Python >= 3.11 for the
# venv), MEDAGENT_SEKMET_START_TIMEOUT (seconds, default 30), MEDAGENT_SEKMET_UNPINNED=1 to install
# sekmet's dependencies without the tested pins below.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SEKMET_VERSION=0.1.1
# sha256 of sekmet_fhir-0.1.1-py3-none-any.whl on PyPI (a new, single-author package: verify it).
SEKMET_SHA256=602284a347c26070fbc0ac5e373e9f86c162c0922ae5b23d66ed4e1ea405a409

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.ci/work"
VENV="$WORK/sekmet-venv"
CONFIG="$WORK/sekmet.yaml"
PIDFILE="$WORK/sekmet.pid"
LOG="$WORK/sekmet.log"
URLFILE="$WORK/sekmet.url"
HOST=127.0.0.1
PORT="${MEDAGENT_SEKMET_PORT:-18080}"
URL="http://$HOST:$PORT/fhir"
START_TIMEOUT="${MEDAGENT_SEKMET_START_TIMEOUT:-30}"

say() { echo "fhir_server: $*" >&2; }
die() { say "error: $*"; exit 1; }

write_constraints() {  # the dependency versions sekmet 0.1.1 was tested with
    cat >"$1" <<'EOF'
annotated-doc==0.0.7
annotated-types==0.8.0
antlr4-python3-runtime==4.13.2
anyio==4.16.0
certifi==2026.10.19.post1
cffi==2.1.1
click==8.5.1
cryptography==50.0.2
Faker==40.63.0
fastapi==0.165.0
fhir.resources==8.3.0
fhir_core==1.1.12
fhirpathpy==2.2.4
h11==0.16.0
httpcore==1.0.9
httptools==0.9.0
httpx==0.28.1
idna==3.20
Jinja2==3.1.6
jsonpatch==1.48
jsonpointer==3.12
lxml==6.1.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
opentelemetry-api==1.45.2
pycparser==3.12
pydantic==2.14.4
pydantic_core==2.50.5
Pygments==2.21.0
PyJWT==2.15.1
python-dateutil==2.9.0.post0
python-dotenv==1.2.4
python-multipart==0.0.34
PyYAML==6.0.4
rich==15.0.0
shellingham==1.5.4
six==1.17.0
starlette==1.10.0
typer==0.29.2
typing-inspection==0.4.5
typing_extensions==4.16.0
uvicorn==0.54.0
uvloop==0.23.0
watchfiles==1.3.0
websockets==17.4
EOF
}

install() {
    local marker="$VENV/.medagent-sekmet-$SEKMET_VERSION"
    [[ -f "$marker" && -x "$VENV/bin/sekmet" ]] && return 0
    local py
    py="$(find_python 11 "${MEDAGENT_SEKMET_PYTHON:-}" python3.13 python3.12 python3.11 python3)" \
        || die "sekmet-fhir needs Python >= 3.11 (set MEDAGENT_SEKMET_PYTHON)"
    say "installing sekmet-fhir==$SEKMET_VERSION into $VENV (python: $py)"
    rm -rf "$VENV" "$WORK/sekmet-dl"
    "$py" -m venv "$VENV" || die "could not create a venv with $py (on Debian/Ubuntu: apt-get install python3-venv)"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input -q)
    "${pip[@]}" download --no-deps --only-binary=:all: -d "$WORK/sekmet-dl" "sekmet-fhir==$SEKMET_VERSION" \
        || die "could not download sekmet-fhir==$SEKMET_VERSION from PyPI"
    local wheel="$WORK/sekmet-dl/sekmet_fhir-$SEKMET_VERSION-py3-none-any.whl"
    [[ -f "$wheel" ]] || die "expected $wheel"
    local sum
    sum="$("$VENV/bin/python" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$wheel")"
    [[ "$sum" == "$SEKMET_SHA256" ]] || die "sha256 mismatch for $wheel: got $sum, expected $SEKMET_SHA256"
    local constraints=()
    if [[ "${MEDAGENT_SEKMET_UNPINNED:-0}" != 1 ]]; then
        write_constraints "$WORK/sekmet-constraints.txt"
        constraints=(-c "$WORK/sekmet-constraints.txt")
    fi
    "${pip[@]}" install "${constraints[@]}" "$wheel" || die "pip install of sekmet-fhir failed"
    touch "$marker"
}

write_config() {
    mkdir -p "$WORK/sekmet-data" "$WORK/sekmet-run"
    cat >"$CONFIG" <<EOF
# written by .ci/fhir_server.sh; regenerated on every start
base_url: $URL
host: $HOST
port: $PORT
data_dir: $WORK/sekmet-data
db_path: $WORK/sekmet-data/sekmet.db
own_private_key_path: $WORK/sekmet-run/keys/sekmet_private.pem
max_body_log: 0
log_inbound: false
server_auth:
  types: [none]
simulator:
  enabled: false
EOF
}

alive() {  # is pid $1 a running sekmet process?
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null && ps -o args= -p "$1" 2>/dev/null | grep -q sekmet
}

answers() { url_ok "$1/metadata"; }  # does the server at $1 answer?

start() {
    mkdir -p "$WORK"
    reuse_running "/metadata" && return 0
    local pid
    rm -f "$PIDFILE" "$URLFILE"
    install
    port_busy && die "port $PORT on $HOST is already in use (set MEDAGENT_SEKMET_PORT to a free port)"
    write_config
    say "starting sekmet on $URL (log: $LOG)"
    echo "--- $(date -u +%FT%TZ) start" >>"$LOG"
    (cd "$WORK/sekmet-run" && exec nohup "$VENV/bin/sekmet" serve --config "$CONFIG" >>"$LOG" 2>&1 </dev/null) &
    pid=$!
    echo "$pid" >"$PIDFILE"
    local deadline=$((SECONDS + START_TIMEOUT))
    until answers "$URL"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG" >&2 || true
            rm -f "$PIDFILE"
            die "sekmet exited during startup (see $LOG)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOG" >&2 || true
            stop
            die "sekmet did not answer $URL/metadata within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    echo "$URL" >"$URLFILE"
    say "ready (pid $pid)"
    echo "$URL"
}

stop() { stop_by_pidfile "sekmet process"; }

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) cat "$URLFILE" 2>/dev/null || echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
