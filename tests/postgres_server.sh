#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests: Debian's postgresql (installed here when
# missing and we are root), a fresh cluster under $PGTEST_DIR, listening on a Unix socket only.
# Prints nothing on success; writes the admin conninfo to $PGTEST_DIR/url, which the tests read.
# Where no server can be had, the reason goes to $PGTEST_DIR/UNAVAILABLE and the Postgres
# variants of the store tests say so when they skip.
set -uo pipefail
PGTEST_DIR=${PGTEST_DIR:-/tmp/tuneloop-pgtest}
PORT=${PGTEST_PORT:-54329}

fail() { mkdir -p "$PGTEST_DIR"; echo "$1" > "$PGTEST_DIR/UNAVAILABLE"; echo "postgres: $1" >&2; exit 0; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && { echo "$d"; return 0; }; done
  return 1
}

BIN=$(bindir) || {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
      > /tmp/tuneloop-postgres-install.log 2>&1 || fail "apt-get install postgresql failed (see /tmp/tuneloop-postgres-install.log)"
    BIN=$(bindir) || fail "postgresql installed but no initdb found"
  else
    fail "PostgreSQL is not installed and cannot be (needs root and apt-get)"
  fi
}

# initdb and postgres refuse to run as root: run them as the postgres user where we are root.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

if [ -f "$PGTEST_DIR/url" ] && as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" status >/dev/null 2>&1; then
  exit 0  # already running
fi
rm -rf "$PGTEST_DIR"
mkdir -p "$PGTEST_DIR"
[ "$(id -u)" = 0 ] && chown postgres: "$PGTEST_DIR"
as_owner "$BIN/initdb" -D "$PGTEST_DIR/data" -U postgres --auth=trust -E UTF8 \
  > "$PGTEST_DIR/initdb.log" 2>&1 || fail "initdb failed (see $PGTEST_DIR/initdb.log)"
as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -w \
  -o "-c listen_addresses='' -c unix_socket_directories=$PGTEST_DIR -p $PORT -c fsync=off" \
  start > /dev/null 2>&1 || fail "the server did not start (see $PGTEST_DIR/server.log)"
echo "host=$PGTEST_DIR port=$PORT user=postgres dbname=postgres" > "$PGTEST_DIR/url"
