#!/usr/bin/env bash
# Run the chat server on http://127.0.0.1:8000 with embedded defaults (SQLite, one process without Redis
# unless DATABASE_URL / REDIS_URL are set). Without DEDALUS_API_KEY it starts the local stand-in of the
# Dedalus API beside the server, so replies stream with no key at all.
# With Postgres it starts one background-jobs worker beside the server (manage.py chat_worker).
set -euo pipefail
cd "$(dirname "$0")/.."
bind="${CHAT_BIND:-127.0.0.1:8000}"
standin_port="${CHAT_STANDIN_PORT:-4010}"
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
.venv/bin/python manage.py migrate --no-input -v0
standin_pid=""
worker_pid=""
cleanup() {
  [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null
  true
}
trap cleanup EXIT INT TERM
if [ -z "${DEDALUS_API_KEY:-}" ]; then
  .venv/bin/python -m standin --host 127.0.0.1 --port "$standin_port" --delay-ms 30 &
  standin_pid=$!
  export DEDALUS_API_KEY="standin-no-key-needed" DEDALUS_BASE_URL="http://127.0.0.1:$standin_port" \
    DEDALUS_AS_URL="http://127.0.0.1:$standin_port" CHAT_STANDIN_NOTICE=1
  echo "No DEDALUS_API_KEY set: replies come from the local stand-in on port $standin_port."
fi
# The background jobs' queue lives in Postgres (the settings say whether the database is, .env included).
if [ "$(.venv/bin/python manage.py shell -v0 -c 'from django.conf import settings; print(int(settings.JOBS_QUEUE))')" = 1 ]; then
  .venv/bin/python manage.py chat_worker &
  worker_pid=$!
  echo "Background jobs: one worker (manage.py chat_worker) beside the server."
else
  echo "SQLite: no background jobs; the periodic upkeep (retention, attachments' clean-up, model catalog) is not run."
fi
echo "Chat: http://$bind/   Admin: http://$bind/admin/   First admin account: make admin"
.venv/bin/python manage.py runserver "$bind"
