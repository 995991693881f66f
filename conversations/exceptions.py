"""Errors a chat client sees, each with a stable code it can branch on (codes listed in DESIGN.md)."""


class ChatError(Exception):
    """An error the client sees, with a code it can branch on (and any details, e.g. `retry_after`)."""

    def __init__(self, code: str, message: str, **details: object) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class UpstreamError(ChatError):
    """The Dedalus API answered with an error or broke the stream."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "upstream_error",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message)
        self.retryable, self.retry_after = retryable, retry_after


class SessionExpired(ChatError):
    """The session a socket connected with has ended (logout, expiry): it may start no more turns."""

    def __init__(self) -> None:
        super().__init__("session_expired", "Your session has ended; reload the page to sign in again.")
