"""Deploy-safe settings: the documented production environment passes `check --deploy` with no warning,
the server refuses to start without a secret key, and every page carries a CSP with no inline script.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .processes import ROOT

# The production settings docs/operations.md documents (a made-up secret of the right strength).
PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "k7#Qz9!vR2@pL5$wX8^mN3&bT6*yH1(cJ4)fG0_dS-+eA=uK;iO:lP",
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_SECURE_HSTS_PRELOAD": "1",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "1",
    "CHAT_METRICS_TOKEN": "a-long-random-scrape-token",
    "CHAT_CREDENTIALS_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def deploy_check_without(name: str) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy` failing on warnings, with the production settings but `name`."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != name}
    return manage("check", "--deploy", "--fail-level", "WARNING", env=env)


@pytest.mark.subprocess
def test_check_deploy_is_clean_with_the_documented_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNINGS" not in result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("missing", "code"),
    [("CHAT_METRICS_TOKEN", "conversations.W001"), ("CHAT_CREDENTIALS_KEYS", "conversations.W002")],
)
def test_check_deploy_warns_when_a_production_setting_is_missing(missing, code):
    """Metrics open to anyone; MCP credentials sealed with a key derived from the secret key."""
    result = deploy_check_without(missing)
    assert result.returncode != 0
    assert code in result.stderr
    assert missing in result.stderr


@pytest.mark.subprocess
def test_check_refuses_a_credentials_key_that_is_not_a_fernet_key_without_printing_it():
    result = manage("check", env={**PRODUCTION_ENV, "CHAT_CREDENTIALS_KEYS": "not-a-fernet-key"})
    assert result.returncode != 0
    assert "conversations.E001" in result.stderr
    assert "not-a-fernet-key" not in result.stderr


@pytest.mark.subprocess
def test_without_a_secret_key_and_debug_off_the_server_refuses_to_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/c/abc/", "/accounts/login/", "/admin/login/"])
def test_every_page_has_a_content_security_policy_without_inline_script(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = dict(
        directive.strip().split(" ", 1) for directive in response["Content-Security-Policy"].split(";")
    )
    assert policy["script-src"] == "'self'"
    assert "unsafe-inline" not in policy["script-src"]
    assert policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert b"<script>" not in response.content  # no inline script element on our pages
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db
def test_the_api_key_never_reaches_the_page(client, settings):
    settings.DEDALUS_API_KEY = "dsk-live-never-in-the-browser"
    assert b"dsk-live" not in client.get("/c/abc/").content


def logged_with_debug_on(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in a process set up as `make run` has Django (DEBUG on, none of our settings); its
    stderr is what the console shows."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAT_"))}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, "DJANGO_DEBUG": "1", "DJANGO_SETTINGS_MODULE": "chatproject.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.subprocess
def test_a_request_is_logged_once_with_debug_on_as_make_run_has_it():
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.channels.server').info('HTTP GET /c/x/ 200 [0.01, 127.0.0.1:1]')"
    )
    result = logged_with_debug_on(script)
    lines = [line for line in result.stderr.splitlines() if "HTTP GET /c/x/" in line]
    assert len(lines) == 1, result.stderr
    assert "django.channels.server" in lines[0]  # with its time, level and logger


@pytest.mark.subprocess
def test_a_refused_request_is_logged_once_by_the_access_log_not_again_as_a_warning():
    """A 4xx is the client's: the access log (runserver's, Daphne's or nginx's) has its line; Django's
    "Not Found: ..." warning would be a second line for the same request."""
    script = (
        "import django; django.setup(); from django.test import Client; "
        "Client(raise_request_exception=False, HTTP_HOST='127.0.0.1')"
        ".get('/api/conversations/nothing-here/')"
    )
    result = logged_with_debug_on(script)
    assert "nothing-here" not in result.stderr, result.stderr


@pytest.mark.django_db
def test_the_pages_have_a_favicon_and_favicon_ico_finds_it(client):
    page = client.get("/c/icon/").content.decode()
    assert '<link rel="icon" href="/static/conversations/favicon.svg" type="image/svg+xml">' in page
    response = client.get("/favicon.ico")
    assert (response.status_code, response["Location"]) == (301, "/static/conversations/favicon.svg")
    icon = client.get("/static/conversations/favicon.svg")
    assert icon.status_code == 200
    assert b"<svg" in b"".join(icon.streaming_content)
