# Shared by the .ci/*_server.sh scripts (sourced). Needs PIDFILE, URLFILE and the caller's
# `say` and `alive PID` (is PID still our server?) functions.

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
