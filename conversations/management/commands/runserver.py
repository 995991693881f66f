"""`manage.py runserver` (Daphne's: HTTP and WebSockets), whose Ctrl-C drains as SIGTERM does under Daphne.

With the autoreloader (`make run`), Daphne runs in a thread of a child process and installs no signal
handler: Ctrl-C ended the process mid-reply, losing what replies in flight streamed since their last save,
and left them `streaming`. Here the reloader's parent waits for its child, and the child's main thread
stops the reactor, whose shutdown runs the relay's drain (replies get CHAT_SHUTDOWN_GRACE_SECONDS, then
are stored as interrupted with all they streamed) before the process exits. A second Ctrl-C stops at once.
Without the reloader Daphne's own handlers do the same.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from daphne.management.commands.runserver import Command as DaphneRunserverCommand
from django.conf import settings
from django.utils import autoreload

# Past the grace period: what the drain may take to store the replies and close the instance.
DRAIN_MARGIN_SECONDS = 15.0


class Command(DaphneRunserverCommand):
    def run(self, **options: Any) -> None:
        if options["use_reloader"]:
            in_child = os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true"
            signal.signal(signal.SIGINT, _child_interrupted if in_child else _parent_interrupted)
        super().run(**options)


def _parent_interrupted(signum: int, frame: Any) -> None:
    """The terminal sent Ctrl-C to the child too: let it drain and exit, which ends the reloader."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _child_interrupted(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from twisted.internet import reactor

    if reactor.running:
        stopped = threading.Event()

        def stop() -> None:
            reactor.addSystemEventTrigger("after", "shutdown", stopped.set)
            reactor.stop()

        reactor.callFromThread(stop)
        stopped.wait(settings.CHAT_SHUTDOWN_GRACE_SECONDS + DRAIN_MARGIN_SECONDS)
    raise KeyboardInterrupt
