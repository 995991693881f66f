#!/usr/bin/env bash
# Create an admin account (a Django superuser) in the database `make run` uses: its embedded Postgres
# (started for the command when make run is not running), unless DATABASE_URL says otherwise. Arguments go
# to `manage.py createsuperuser`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements.txt
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"  # as make run: no secret key to set for a local account
database_dir="${CHAT_EMBEDDED_POSTGRES_DIR:-.data/postgres}"
if [ -z "${DATABASE_URL:-}" ]; then
  if ! database="$(.venv/bin/python scripts/embedded-postgres.py start "$database_dir")"; then
    echo "Could not start the embedded Postgres (its log: $database_dir/log)." >&2
    exit 1
  fi
  export DATABASE_URL="${database% *}"
  if [ "${database##* }" = started ]; then  # not make run's: stopped again when the account is made
    trap '.venv/bin/python scripts/embedded-postgres.py stop "$database_dir"' EXIT
  fi
fi
.venv/bin/python manage.py migrate --no-input -v0
.venv/bin/python manage.py createsuperuser "$@"
