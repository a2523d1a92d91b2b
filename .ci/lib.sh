# Shared by the .ci/*_server.sh scripts (sourced). Needs PIDFILE, URLFILE and the caller's
# `say`, `die` and `alive PID` (is PID still our server?) functions, and HOST, PORT, URL.

# stop_by_pidfile WHAT: TERM the server whose pid is in $PIDFILE, wait up to 15 s, then KILL.
stop_by_pidfile() {
    local what="$1"
    if [[ ! -f "$PIDFILE" ]]; then
        say "not running (no $PIDFILE)"; return 0
    fi
    local pid
    pid="$(cat "$PIDFILE")"
    if alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 75); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "pid $pid did not stop on TERM within 15 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
        say "stopped (pid $pid)"
    else
        say "pid $pid is not a running $what; removing the stale pid file"
    fi
    rm -f "$PIDFILE" "$URLFILE"
}

# url_ok URL: does URL answer HTTP 200 within 2 s?
url_ok() {
    python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

port_busy() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

# reuse_running PROBE: when the server in $PIDFILE still runs and answers its URL + PROBE, print
# the URL and succeed; when it runs but does not answer, stop with an error; else fail quietly.
reuse_running() {
    local probe="$1" pid="" running
    [[ -f "$PIDFILE" ]] && pid="$(cat "$PIDFILE")"
    alive "$pid" || return 1
    running="$(cat "$URLFILE" 2>/dev/null || echo "$URL")"
    if url_ok "$running$probe"; then
        say "already running (pid $pid)"; echo "$running"; return 0
    fi
    die "pid $pid is running but $running$probe does not answer; run '$0 stop' first"
}

# find_python MINOR CANDIDATE...: print the first candidate (empty ones skipped) that is an
# installed Python 3.MINOR or newer; fail when none is.
find_python() {
    local minor="$1" py
    shift
    for py in "$@"; do
        [[ -n "$py" ]] && command -v "$py" >/dev/null 2>&1 || continue
        if "$py" -c "import sys; sys.exit(sys.version_info < (3, $minor))" 2>/dev/null; then
            echo "$py"; return 0
        fi
    done
    return 1
}
