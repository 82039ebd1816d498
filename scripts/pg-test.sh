#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian `postgresql` package; nothing is downloaded).
#
#   eval "$(scripts/pg-test.sh start)"     # sets RSIR_TEST_PG_URL and RSIR_TEST_PG_DIR
#   .venv/bin/python -m pytest -q          # the postgres-marked tests now run against it
#   scripts/pg-test.sh stop "$RSIR_TEST_PG_DIR"
#
# `start` makes a cluster in a new temp folder, listening on 127.0.0.1 at a free port (and on a unix
# socket inside that folder only), trust authentication, one database `rsir_test`, and prints
#   export RSIR_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/rsir_test
#   export RSIR_TEST_PG_DIR=/tmp/rsir-pg-XXXX
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (runuser).
# `stop DIR` stops that cluster and deletes its folder. Missing packages: scripts/system-deps.sh.
set -euo pipefail

die() { echo "pg-test: $*" >&2; exit 1; }

pg_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return; }
  die "PostgreSQL server binaries not found: apt-get install -y postgresql (or scripts/system-deps.sh)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a command as the cluster owner: ourselves, or `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a 'postgres' user (the Debian package makes one)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local bin dir port
  bin=$(pg_bindir)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/rsir-pg-XXXXXX")
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"; }
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" >/dev/null; then
      as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres rsir_test \
        || { stop "$dir"; die "createdb failed"; }
      echo "export RSIR_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$port/rsir_test"
      echo "export RSIR_TEST_PG_DIR=$dir"
      return
    fi
  done
  tail -n 20 "$dir/server.log" >&2 || true
  rm -rf "$dir"
  die "the server did not start"
}

stop() {
  local dir=${1:-}
  [ -n "$dir" ] && [ -d "$dir/data" ] || die "usage: $0 stop DIR (the RSIR_TEST_PG_DIR printed by start)"
  case "$(basename "$dir")" in rsir-pg-*) ;; *) die "$dir is not a folder made by '$0 start'";; esac
  as_owner "$(pg_bindir)/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) die "usage: $0 start | stop DIR" ;;
esac
