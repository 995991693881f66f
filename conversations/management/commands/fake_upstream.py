"""Management command that runs the local Dedalus API stand-in (see conversations/standin.py)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from conversations.standin import run


class Command(BaseCommand):
    """Run the fake Dedalus chat-completions upstream in the foreground."""

    help = (
        "Run a local stand-in for the Dedalus chat-completions API; point DEDALUS_BASE_URL at "
        "http://HOST:PORT to use it."
    )
    # The stand-in touches neither the database nor the project's apps, so it shouldn't wait on their checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        """Declare --host, --port, --tokens and --delay-ms."""
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=4010, help="port to bind; 0 picks a free one")
        parser.add_argument(
            "--tokens",
            type=int,
            default=None,
            help="every reply's length in tokens (default: the answer's own)",
        )
        parser.add_argument("--delay-ms", type=float, default=20.0, help="default delay before each token")

    def handle(self, *args: Any, **options: Any) -> None:
        """Serve until interrupted; returns nothing."""
        run(options["host"], options["port"], options["tokens"], options["delay_ms"])
