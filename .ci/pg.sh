#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 and print its URL (used by .ci/run and `make test-pg`).
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=${PGDATA_DIR:-/tmp/lantern-pg}
PORT=${PGPORT_TEST:-55432}
if ! "$PGBIN/pg_ctl" -D "$DIR" status >/dev/null 2>&1; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  chown postgres "$DIR"
  su postgres -c "$PGBIN/initdb -D $DIR -A trust -U postgres" >/dev/null
  su postgres -c "$PGBIN/pg_ctl -D $DIR -o '-c listen_addresses=127.0.0.1 -p $PORT -k /tmp' -l $DIR/log -w start" >/dev/null
  su postgres -c "psql -h 127.0.0.1 -p $PORT -U postgres -c 'CREATE DATABASE lantern_test'" >/dev/null
fi
echo "postgresql://postgres@127.0.0.1:$PORT/lantern_test"
