#!/usr/bin/env bash
# A throw-away PostgreSQL server for the `postgres` tests (the embedded store on PostgreSQL).
#
#   bash .ci/pg_server.sh start   # install from Debian's packages if needed, initdb, start, print the URL
#   bash .ci/pg_server.sh stop    # stop the server started by `start`, by its pid, and wait for it
#
# Data, log and pid live in .ci/work/pg (git-ignored). Binds 127.0.0.1 only, trust auth, port
# MEDAGENT_PG_PORT (default 15432). PostgreSQL refuses to run as root, so it runs as `postgres`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.ci/work/pg"
PORT="${MEDAGENT_PG_PORT:-15432}"
PIDFILE="$WORK/server.pid"
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/medagent_test"

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
    local bin
    bin=$(pg_bin || true)
    if [ -z "$bin" ]; then
        echo "pg_server: installing PostgreSQL from Debian's packages" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
        bin=$(pg_bin)
    fi
    stop_quietly
    rm -rf "$WORK" && mkdir -p "$WORK/sock"
    [ "$(id -u)" = 0 ] && chown -R postgres "$WORK"
    as_postgres "$bin/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log"
    as_postgres "$bin/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $PORT -k $WORK/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >&2
    head -n 1 "$WORK/data/postmaster.pid" >"$PIDFILE"
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres medagent_test
    echo "$URL"
}

stop_quietly() {
    [ -f "$PIDFILE" ] || return 0
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid"  # PostgreSQL's fast shutdown
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
}

case "${1:-}" in
    start) start ;;
    stop) stop_quietly ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
