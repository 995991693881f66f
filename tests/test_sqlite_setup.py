"""`make run`'s embedded default, SQLite, from nothing: every migration applies, a turn is stored and its
reply's end is written with its usage ledger entry.

The suite runs on Postgres; SQLite rebuilds a table to add most columns, which a database view over it
(the admin's daily usage) must survive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The suite's session opens the test database whatever the module; this test itself runs beside it.
pytestmark = pytest.mark.django_db

TURN = """
from conversations.models import Agent, DailyUsage, Message
from conversations.chat.replies import reply_finish
from conversations.chat.reply_end import ReplyEnd
from conversations.owners import ConversationRef, Owner
from conversations.chat.turns import TurnRequest, turns_store
from conversations.protocol import TurnOptions
Agent.objects.create(slug="brief", name="Brief", model_names=["openai/gpt-5.1"], instructions="Be brief.")
owner = Owner(session_key="sqlite-browser")
request = TurnRequest(
    ref=ConversationRef(owner.key, "s1"), owner=owner, content="hi", options=TurnOptions(agent="brief")
)
(turn,) = turns_store([request])
streamed_by = Message.objects.get(pk=turn.reply_id).streamed_by
usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
ending = ReplyEnd("complete", usage=usage)
end = dict(reply_id=turn.reply_id, streamed_by=streamed_by, content="ho", end=ending)
ended, again = reply_finish(**end), reply_finish(**end)
row = DailyUsage.objects.values_list("replies", "total_tokens")[0]
print(turn.models, turn.instructions, ended, again, row)
"""


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py` with these arguments in that environment; fail the test if it fails."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_a_fresh_sqlite_database_migrates_and_stores_a_turn(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "DJANGO_DEBUG": "1",
        "REDIS_URL": "",
    }
    manage(env, "migrate", "--no-input", "-v", "0")
    turn = manage(env, "shell", "-c", TURN)
    # The reply's end wrote its ledger entry, once; the daily-usage view reads it.
    assert "['openai/gpt-5.1'] Be brief. True False (1, 7)" in turn.stdout
