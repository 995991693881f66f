#!/usr/bin/env bash
# Create an admin account (a Django superuser) in the database `make run` uses: its embedded SQLite,
# unless DATABASE_URL says otherwise. Arguments go to `manage.py createsuperuser`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-venv.sh requirements.txt
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"  # as make run: no secret key to set for a local account
.venv/bin/python manage.py migrate --no-input -v0
exec .venv/bin/python manage.py createsuperuser "$@"
