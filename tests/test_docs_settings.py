"""docs/configuration.md is the list of settings: every environment variable the settings or the scripts
read has a row there, and every row names a variable something still reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGURATION = ROOT / "docs" / "configuration.md"
# Read by the settings, never set by an operator: the test suite's switch.
INTERNAL = {"CHAT_TEST_SUITE"}


def settings_read() -> set[str]:
    text = (ROOT / "chatproject" / "settings.py").read_text()
    read = re.findall(r"(?:os\.environ\.get|env_bool|env_float|env_list|env_json)\(\s*\"([A-Z0-9_]+)\"", text)
    read += re.findall(r"env=\"([A-Z0-9_]+)\"", text)  # dj_database_url's
    return set(read) - INTERNAL


def scripts_read() -> set[str]:
    names: set[str] = set()
    for script in (ROOT / "scripts").glob("*.sh"):
        names.update(re.findall(r"\$\{((?:CHAT|DJANGO|DEDALUS)_[A-Z0-9_]+|PYTHON)[:}]", script.read_text()))
    return names


def documented() -> set[str]:
    """The variables named in the first column of the configuration tables."""
    names: set[str] = set()
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z0-9_]+)`", first_cell))
    return names


def test_every_setting_has_a_row() -> None:
    assert settings_read() >= {"DATABASE_URL", "REDIS_URL", "DEDALUS_API_KEY", "CHAT_RATE_LIMIT"}
    missing = sorted((settings_read() | scripts_read()) - documented())
    assert not missing, f"read but not in docs/configuration.md: {missing}"


def test_every_row_is_read() -> None:
    stale = sorted(documented() - settings_read() - scripts_read())
    assert not stale, f"in docs/configuration.md but read by nothing: {stale}"
