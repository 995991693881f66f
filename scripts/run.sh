#!/usr/bin/env bash
# Run the chat server on http://127.0.0.1:8000 with embedded defaults (SQLite, one process without Redis
# unless DATABASE_URL / REDIS_URL are set). Without DEDALUS_API_KEY it starts the local stand-in of the
# Dedalus API beside the server, so replies stream with no key at all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements.txt
scripts/setup-frontend.sh
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
.venv/bin/python manage.py migrate --no-input -v0
standin_pid=""
cleanup() { [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
if [ -z "${DEDALUS_API_KEY:-}" ]; then
  port="${CHAT_STANDIN_PORT:-4010}"
  .venv/bin/python -m standin --host 127.0.0.1 --port "$port" --delay-ms 30 &
  standin_pid=$!
  export DEDALUS_API_KEY="standin-no-key-needed" DEDALUS_BASE_URL="http://127.0.0.1:$port" \
    DEDALUS_AS_URL="http://127.0.0.1:$port" CHAT_STANDIN_NOTICE=1
  echo "No DEDALUS_API_KEY set: replies come from the local stand-in on port $port."
fi
echo "Chat: http://127.0.0.1:8000/   Admin: http://127.0.0.1:8000/admin/ (python manage.py createsuperuser)"
.venv/bin/python manage.py runserver "${CHAT_BIND:-127.0.0.1:8000}"
