#!/usr/bin/env bash
# Run the whole test suite on the machine's Postgres and Redis, after installing what it needs:
# the pinned test requirements and Debian's chromium for the browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements-test.txt
scripts/setup-frontend.sh

if ! command -v chromium >/dev/null 2>&1; then
  echo "Installing Debian chromium for the browser tests..."
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x /usr/sbin/nginx ]; then
  echo "Installing Debian nginx for the proxy test (tests/test_nginx.py)..."
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nginx >/dev/null
fi

# The services run before every session; start them if one is down.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/chat}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"

set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing." >&2
  exit 1
fi
exit "$status"
