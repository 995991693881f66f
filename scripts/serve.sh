#!/usr/bin/env bash
# Production run command of one instance: install the pinned requirements, migrate, collect the static
# files, then replace this shell with Daphne (so SIGTERM from systemd, Docker or Kubernetes reaches Daphne
# and starts the graceful drain). Run N of these on different CHAT_PORTs behind deploy/nginx.conf.
#
#   CHAT_BIND_HOST   address to bind (default 127.0.0.1: only the proxy may reach an instance, since
#                    --proxy-headers trusts X-Forwarded-For / X-Forwarded-Proto)
#   CHAT_PORT        port (default 8000)
#   CHAT_SERVE_MIGRATE=0  skip `migrate` (e.g. instances on several hosts; migrate once in the release step)
# Everything else (DATABASE_URL, REDIS_URL, DJANGO_*, CHAT_*) is read by the settings: see docs/configuration.md.
set -euo pipefail
cd "$(dirname "$0")/.."

case "$(echo "${DJANGO_DEBUG:-}" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')" in
  1 | true | yes | on)
    echo "scripts/serve.sh refuses to run with DJANGO_DEBUG on: it is the production command (use make run)." >&2
    exit 2
    ;;
esac

export DJANGO_STATIC_ROOT="${DJANGO_STATIC_ROOT:-$PWD/staticfiles}"
export PYTHONUNBUFFERED=1 # log lines reach journald / docker logs as they are written

# Instances started together on one host would race to install, migrate and collect: take turns (the lock
# is this script's own file, released when the subshell ends, so Daphne does not hold it).
(
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  scripts/setup-venv.sh requirements.txt
  scripts/setup-frontend.sh
  if [ "${CHAT_SERVE_MIGRATE:-1}" != 0 ]; then
    .venv/bin/python manage.py migrate --no-input
  fi
  .venv/bin/python manage.py collectstatic --no-input -v0
) 9<"$0"

# Daphne's flags:
# --proxy-headers              client address from X-Forwarded-For, scheme (https, wss) from X-Forwarded-Proto
# --ping-interval/-timeout     ping a socket idle for 20 s, drop it after 30 s without a pong: dead clients
#                              go, and nginx's proxy_read_timeout never fires on a live socket
# --websocket_timeout 86400    a socket lives at most a day, then the page reconnects (and resumes)
# --websocket_connect_timeout  5 s for a handshake
# --http-timeout 60            an HTTP request with no response started by then gets 503 (nginx waits 60 s
#                              too); a started one is cut after 60 s without a byte, not by its age
#                              (chatproject/daphne_timeouts.py), so a chat completion, which writes every
#                              CHAT_API_PING_SECONDS, lasts as long as its model takes
# --application-close-timeout  a consumer gets 10 s to finish after its client left (replies live on in
#                              their own task, so this is only the socket's clean-up)
# Request bodies need no flag: importing chatproject.asgi gives Daphne a request that parses no form body
# and refuses one over its path's limit while it arrives (chatproject/daphne_requests.py).
# The frame size limit stays Daphne's 1 MiB, above CHAT_MAX_FRAME_BYTES, so an oversized frame gets the
# app's `message_too_long` instead of a protocol close. With CHAT_LOG_FORMAT=json Daphne's plain-text
# access log is off (-v 0): nginx logs every request, with its request id.
verbosity=1
if [ "${CHAT_LOG_FORMAT:-plain}" = json ]; then verbosity=0; fi

exec .venv/bin/daphne \
  -b "${CHAT_BIND_HOST:-127.0.0.1}" -p "${CHAT_PORT:-8000}" \
  --proxy-headers \
  --ping-interval 20 --ping-timeout 30 \
  --websocket_timeout 86400 --websocket_connect_timeout 5 \
  --http-timeout 60 --application-close-timeout 10 \
  -v "$verbosity" \
  chatproject.asgi:application
