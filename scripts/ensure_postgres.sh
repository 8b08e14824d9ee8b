#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for tests/test_workshop_store.py (`make test` runs this first): a cluster in
# /tmp/kvlab-pg/data on 127.0.0.1:54329 with trust auth on loopback, database kvlab_test, and the SQLAlchemy
# URL written to /tmp/kvlab-pg/url, where the tests read it. Binaries: PATH, else /usr/lib/postgresql/*/bin,
# else (as root on Debian/Ubuntu) apt-get install postgresql. Idempotent: a server already up only gets its
# URL file rewritten. It never fails `make test`: when no server can be started it says why and exits 0, and
# the PostgreSQL half of the store tests skips, giving the same reason.
# Overrides (for trying the script, not needed normally): KVLAB_PG_DIR, KVLAB_PG_PORT, KVLAB_PG_LIBDIR.
set -uo pipefail

DIR=${KVLAB_PG_DIR:-/tmp/kvlab-pg}
PORT=${KVLAB_PG_PORT:-54329}
LIBDIR=${KVLAB_PG_LIBDIR:-/usr/lib/postgresql}
DB=kvlab_test
DATA=$DIR/data
URL_FILE=$DIR/url
URL="postgresql+psycopg://postgres@127.0.0.1:$PORT/$DB"

say() { echo "postgres: $*"; }
# The reason goes to the reason file too, so a skipped test can print it.
give_up() {
  echo "postgres: $* (the PostgreSQL store tests will skip)" >&2
  rm -f "$URL_FILE" 2>/dev/null
  { mkdir -p "$DIR" && echo "$*" >"$DIR/reason"; } 2>/dev/null
  exit 0
}

# A folder holding everything used here (Debian's /usr/lib/postgresql/N/bin does; a bare symlink on PATH is
# followed to it).
complete() { for t in initdb pg_ctl pg_isready psql; do [ -x "$1/$t" ] || return 1; done; }
find_bin() {
  local d
  d=$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || echo /nonexistent/pg_ctl)")")
  complete "$d" && { echo "$d"; return 0; }
  # Newest major version first.
  for d in $(ls -d "$LIBDIR"/*/bin 2>/dev/null | sort -rV); do
    complete "$d" && { echo "$d"; return 0; }
  done
  return 1
}

BIN=$(find_bin)
if [ -z "$BIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's postgresql package with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package index is refreshed only when the install fails without it.
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1; } ||
      give_up "apt-get install postgresql failed"
    BIN=$(find_bin) || give_up "postgresql was installed but no pg_ctl/initdb/psql/pg_isready was found under $LIBDIR/*/bin"
  else
    give_up "no pg_ctl/initdb/psql/pg_isready on PATH or under $LIBDIR/*/bin, and cannot install them (needs root and apt-get)"
  fi
fi

# initdb and postgres refuse to run as root: as root the cluster belongs to the postgres system user.
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || give_up "running as root but there is no postgres user to own the cluster"
  if command -v runuser >/dev/null; then
    as_owner() { runuser -u postgres -- "$@" 9>&-; }
  else
    as_owner() { su postgres -s /bin/sh -c "$(printf '%q ' "$@")" 9>&-; }
  fi
  mkdir -p "$DIR" && chown postgres: "$DIR" || give_up "cannot create $DIR for the postgres user"
else
  as_owner() { "$@" 9>&-; }
  mkdir -p "$DIR" || give_up "cannot create $DIR"
fi
chmod 755 "$DIR" 2>/dev/null

# Serialise concurrent runs (two `make test` at once) on one lock; without flock, go on unlocked. The server
# must not inherit the lock's descriptor (as_owner closes it), or it would hold the lock for its lifetime.
if command -v flock >/dev/null && { exec 9>>"$DIR/lock"; } 2>/dev/null; then
  flock -w 60 9 || give_up "another run of this script holds $DIR/lock"
fi

psql_q() { "$BIN/psql" -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -tAc "$1" 2>/dev/null; }

up() { "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; }

if ! up; then
  version=$("$BIN/pg_ctl" --version | grep -oE '[0-9]+' | head -1)
  # A cluster from another major version (or a half-made one) cannot be started by these binaries; it holds
  # nothing but test data, so it is made again.
  if [ -d "$DATA" ] && [ "$(cat "$DATA/PG_VERSION" 2>/dev/null)" != "$version" ]; then
    say "removing the unusable cluster in $DATA" >&2
    as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1
    rm -rf "$DATA"
  fi
  if [ ! -d "$DATA" ]; then
    say "creating a cluster in $DATA with $BIN/initdb"
    as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 ||
      { rm -rf "$DATA"; give_up "initdb failed (see $DIR/initdb.log)"; }
    # Loopback only, on its own port and socket folder; durability is not wanted for test data.
    cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  fi
  say "starting the server on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DIR/server.log" -w -t 30 start >/dev/null 2>&1 ||
    give_up "pg_ctl start failed (see $DIR/server.log)"
fi

[ "$(psql_q "select 1")" = 1 ] ||
  give_up "a server answers on 127.0.0.1:$PORT but does not let user postgres in without a password"
if [ "$(psql_q "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
  psql_q "create database $DB" >/dev/null || [ "$(psql_q "select 1 from pg_database where datname = '$DB'")" = 1 ] ||
    give_up "cannot create database $DB"
fi

if [ "$(cat "$URL_FILE" 2>/dev/null)" != "$URL" ]; then
  echo "$URL" >"$URL_FILE.tmp.$$" && mv -f "$URL_FILE.tmp.$$" "$URL_FILE" || give_up "cannot write $URL_FILE"
fi
rm -f "$DIR/reason" 2>/dev/null
say "$URL"
exit 0
