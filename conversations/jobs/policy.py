"""What every job of the project shares: its queues, and how a failed one is tried again."""

from __future__ import annotations

from procrastinate import RetryStrategy

# The queues a worker takes jobs from: the periodic upkeep, and everything else.
UPKEEP_QUEUE = "upkeep"
DEFAULT_QUEUE = "default"
QUEUES = (DEFAULT_QUEUE, UPKEEP_QUEUE)


def retry_with_backoff(
    *, attempts: int = 5, base_seconds: int = 4, retry_exceptions: tuple[type[Exception], ...] | None = None
) -> RetryStrategy:
    """Try a failed job again up to `attempts` runs in all, waiting base, base², base³ ... seconds
    between them (4, 16, 64, 256 s by default): a brief outage is ridden out, a lasting one is not
    hammered. With `retry_exceptions`, only those are tried again."""
    return RetryStrategy(
        max_attempts=attempts - 1, exponential_wait=base_seconds, retry_exceptions=retry_exceptions
    )
