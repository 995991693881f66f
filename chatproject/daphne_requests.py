"""Daphne's HTTP request, bounded: it parses no form body and refuses a body over its path's limit while the
body arrives, before Daphne has buffered it.

Daphne builds each HTTP request from `daphne.http_protocol.WebRequest` (its HTTPFactory looks the name up
for every connection), a Twisted `Request`. Left as it is, Twisted parses every form POST into
`request.args` on the event loop (Daphne never reads them: a 200 MiB multipart body cost 2.4 GB and stalled
every socket for seconds), and Daphne hands the app a body only once all of it has arrived. So
`BoundedRequest` turns that parsing off and holds the body to `request_bodies.body_limit` as it comes: a
Content-Length over the limit is answered at once, from the headers; a chunked body, as soon as it passes
the limit. The 413 is the middleware's, `{"code", "message"}`; the rest of the body is read and dropped
for at most CHAT_REFUSED_BODY_DRAIN_SECONDS (so a client that sends it all before reading sees the answer
instead of a reset), then the connection closes.

It builds on `daphne_timeouts.SilenceTimeoutRequest`, so a long stream outlives `--http-timeout` while a
request that never answers still gets Daphne's 503. `install()` puts it in Daphne's place;
chatproject/asgi.py calls it, so every way this project runs Daphne (`daphne chatproject.asgi:application`
in scripts/serve.sh and the tests, `manage.py runserver`) has it before it listens.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote

from daphne import http_protocol
from django.conf import settings

from .daphne_timeouts import SilenceTimeoutRequest
from .request_bodies import REFUSAL_STATUS, BodyLimit, body_limit, refusal_log

logger = logging.getLogger(__name__)


def request_path(target: bytes) -> str:
    """The path of a request line's target, as Daphne gives it to the app (percent-escapes decoded)."""
    return unquote(target.split(b"?", 1)[0].decode("ascii", "replace"))


class BoundedRequest(SilenceTimeoutRequest):
    """Daphne's request (a started response timed by its silence: chatproject/daphne_timeouts.py) without
    Twisted's form parsing, whose body is counted against its path's limit as it arrives and refused (413,
    then drained and closed) once over it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self.body_path = ""
        self.body_limit: BodyLimit | None = None
        self.body_received = 0
        self.body_refused = False
        self._drain_end: Any = None

    def gotLength(self, length: int | None) -> None:  # noqa: N802 (Twisted's name)
        # The headers are in; the request line's target is the HTTP/1.1 channel's until the body has
        # arrived. (An HTTP/2 stream has none: its bodies are left to the middleware.)
        target = getattr(self.channel, "_path", None)
        if isinstance(target, bytes):
            self.body_path = request_path(target).removeprefix(self.server.root_path)
            self.body_limit = body_limit(self.body_path)
            if length is not None and length > self.body_limit.max_bytes:
                self._refuse(length)
                return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
        if self.body_refused:
            return  # drained: read and dropped
        self.body_received += len(data)
        if self.body_limit is not None and self.body_received > self.body_limit.max_bytes:  # chunked
            self._refuse(None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if self.body_refused:  # all of a refused body was drained: the answer is out, nothing is left to do
            self._close()
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        if self._drain_end is not None and self._drain_end.active():
            self._drain_end.cancel()
        super().connectionLost(reason)

    def _refuse(self, length: int | None) -> None:
        assert self.body_limit is not None
        refusal_log(self.body_path, self.body_limit, length)
        self.body_refused = True
        if self.content is not None:  # what a chunked body had brought
            self.content.close()
            self.content = None
        # Twisted answers `Expect: 100-continue` after gotLength: this answer is final, no 100 may follow it.
        self.requestHeaders.removeHeader(b"Expect")
        head = [b"HTTP/1.1 %d Request Entity Too Large" % REFUSAL_STATUS]
        head += [name + b": " + value for name, value in self.body_limit.refusal_headers()]
        self.channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + self.body_limit.refusal_body())
        self._drain_end = self.channel.callLater(settings.CHAT_REFUSED_BODY_DRAIN_SECONDS, self._close)

    def _close(self) -> None:
        if self._drain_end is not None and self._drain_end.active():
            self._drain_end.cancel()
        if self.channel is not None:
            self.channel.loseConnection()


def install() -> None:
    """Make Daphne build its HTTP requests as BoundedRequest (at once for connections it accepts later)."""
    http_protocol.WebRequest = BoundedRequest
