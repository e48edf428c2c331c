#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 and print its URL (used by .ci/run).
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=${LANTERN_PG_DIR:-/tmp/lantern-pg}
PORT=${LANTERN_PG_PORT:-55432}
as_pg() { su postgres -s /bin/bash -c "$*"; }
if ! as_pg "$PGBIN/pg_ctl -D $DIR status" >/dev/null 2>&1; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chown postgres "$DIR"
  as_pg "$PGBIN/initdb -D $DIR -A trust -U postgres" >/dev/null
  as_pg "$PGBIN/pg_ctl -D $DIR -o '-c listen_addresses=127.0.0.1 -p $PORT -k /tmp' -l $DIR/log -w start" >/dev/null
fi
as_pg "psql -h 127.0.0.1 -p $PORT -U postgres -tc \"SELECT 1 FROM pg_database WHERE datname='lantern_test'\"" \
  | grep -q 1 || as_pg "psql -h 127.0.0.1 -p $PORT -U postgres -c 'CREATE DATABASE lantern_test'" >/dev/null
echo "postgresql://postgres@127.0.0.1:$PORT/lantern_test"
