#!/usr/bin/env bash
# A throw-away PostgreSQL server for the `postgres` tests (the embedded store on PostgreSQL).
#
#   bash .ci/pg_server.sh start   # install from Debian's packages if needed, initdb, start, print the URL
#   bash .ci/pg_server.sh stop    # stop the server started by `start`, by its pid, and wait for it
#
# The pid file and the cluster's location live in .ci/work/pg (git-ignored); the cluster itself
# (data, socket, log) lives in a fresh temporary directory owned by the server's user, because
# PostgreSQL refuses to run as root, so it runs as `postgres`, which may not be able to reach
# the checkout (a clone under a 0700 `mktemp -d` directory, a home directory). `stop` removes
# it. Binds 127.0.0.1 only, trust auth, port MEDAGENT_PG_PORT (default 15432).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/.ci/work/pg"
PORT="${MEDAGENT_PG_PORT:-15432}"
PIDFILE="$WORK/server.pid"
ROOTFILE="$WORK/cluster-dir"   # where the cluster of the running server lives
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/medagent_test"

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

as_postgres() {
    # from /: the postgres user may not be allowed into the current directory (the checkout)
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
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
    rm -rf "$WORK" && mkdir -p "$WORK"
    local cluster
    cluster=$(mktemp -d "${TMPDIR:-/tmp}/medagent-pg.XXXXXX")
    echo "$cluster" >"$ROOTFILE"
    mkdir -p "$cluster/sock"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$cluster"; fi
    as_postgres "$bin/initdb" -D "$cluster/data" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log"
    as_postgres "$bin/pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $PORT -k $cluster/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >&2 || { cat "$cluster/server.log" >&2 2>/dev/null; exit 1; }
    head -n 1 "$cluster/data/postmaster.pid" >"$PIDFILE"
    as_postgres "$bin/createdb" -h 127.0.0.1 -p "$PORT" -U postgres medagent_test
    echo "$URL"
}

stop_quietly() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid=$(cat "$PIDFILE")
        if kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid"  # PostgreSQL's fast shutdown
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
        fi
        rm -f "$PIDFILE"
    fi
    if [ -f "$ROOTFILE" ]; then
        rm -rf "$(cat "$ROOTFILE")"
        rm -f "$ROOTFILE"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_quietly ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
