.PHONY: run test lint format bench

run:  ## serve the chat page and admin on http://127.0.0.1:8000 (embedded defaults)
	scripts/run.sh

.PHONY: admin
admin:  ## create an admin account for make run's database (asks for a name and a password)
	scripts/admin.sh

.PHONY: serve
serve:  ## production: one Daphne instance on CHAT_PORT (default 8000), DJANGO_DEBUG must be off
	scripts/serve.sh

test:  ## the whole suite on the machine's Postgres + Redis, browser tests included
	scripts/test.sh

lint:
	scripts/setup-venv.sh requirements-test.txt
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench:
	scripts/setup-venv.sh requirements-test.txt
	.venv/bin/python -m bench
