"""Daphne's `--http-timeout`, applied to what hangs rather than to what lasts: a request whose response has
not started within the timeout still gets Daphne's 503, but a started response is cut only once the app
has sent it nothing for that long.

Daphne itself closes every HTTP response older than `--http-timeout`, even one streaming as it should, so a
chat completion (streamed, or whole and kept alive by whitespace) that outlasts it would end mid-reply.
Raising the flag instead would let a hung view hold its client as long; moving the timeout into the app
would need its own 503 and cancellation, which Daphne already has. So only the started case changes: the
API's responses write at least every CHAT_API_PING_SECONDS (which must stay below the timeout), and a
response that stalls for the whole timeout is still ended, as Daphne ended it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from daphne import http_protocol

logger = logging.getLogger(__name__)


class SilenceTimeoutRequest(http_protocol.WebRequest):
    """Daphne's request whose started response is timed by its silence (since the app last sent it
    something), and an unstarted one by its age, as Daphne times it."""

    last_sent = 0.0

    def handle_reply(self, message: dict[str, Any]) -> None:
        super().handle_reply(message)
        self.last_sent = time.time()

    def check_timeouts(self) -> None:
        timeout = self.server.http_timeout
        if not (timeout and self._response_started):
            super().check_timeouts()
        elif not self.finished and time.time() - self.last_sent > timeout:
            logger.warning("Application sent nothing for %s s while sending a response", timeout)
            self.finish()
