"""Prometheus metrics of this process: what the relay costs and how replies end.

Each server instance exposes its own /metrics; scrape every instance (not through the load balancer).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

OPEN_SOCKETS = Gauge("chat_open_sockets", "Chat WebSockets open on this instance.")
REPLIES_IN_FLIGHT = Gauge("chat_replies_in_flight", "Replies this instance streams from upstream right now.")
REPLIES_FINISHED = Counter(
    "chat_replies_total", "Replies streamed by this instance, by final status.", ["status"]
)
UPSTREAM_FIRST_TOKEN = Histogram(
    "chat_upstream_first_token_seconds",
    "From the upstream request to its first event.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
RELAY_DELAY = Histogram(
    "chat_relay_delay_seconds",
    "Delay this server adds per chunk: read off the upstream socket to handed to every socket.",
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)
TOKENS_RELAYED = Counter(
    "chat_completion_tokens_total",
    "Completion tokens of finished replies (upstream usage), by model.",
    ["model"],
)
CHUNKS_RELAYED = Counter(
    "chat_chunks_relayed_total", "Chunk frames relayed from upstream, by model.", ["model"]
)
UPSTREAM_ERRORS = Counter(
    "chat_upstream_errors_total", "Replies that ended in an upstream failure, by code.", ["code"]
)
REFUSALS = Counter("chat_refusals_total", "Messages or sockets refused by a limit, by code.", ["code"])
DB_FLUSHES = Histogram(
    "chat_reply_db_flushes",
    "Saves of a reply's text while it streamed, per reply.",
    buckets=(0, 1, 2, 5, 10, 25, 50),
)
