"""The only code that talks to Dedalus: every call to its API goes through this package.

- `client`: where the API is and what every request carries (the SDK's base URL, key and headers), the
  process's SDK client (one pool for the blocking calls) and each instance's aiohttp session;
- `errors`: what its failures become (UpstreamError, CatalogUnavailable, the readiness check's problem);
- `chat`: a streamed reply as plain events, and a short completion (a title);
- `reasoning`: the model's reasoning in the shapes gateways stream it, kept apart from the text;
- `catalog`: the model list, for the catalog and the readiness check;
- `ocr`: a scanned PDF's text;
- `embeddings`: texts made vectors, batched within the API's limits, each request in the usage ledger;
- `mcp_wire`: MCP servers on the wire, credentials encrypted to the authorisation server's key.

Callers use the names below; the SDK (`dedalus_labs`) is imported nowhere else.
"""

from __future__ import annotations

from .catalog import models_list, upstream_problem
from .chat import (
    Completion,
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolActivity,
    ToolCalls,
    completion_text,
    reply_stream,
)
from .client import UpstreamClient, upstream_client_create
from .embeddings import Embeddings, EmbeddingWidthMismatch, texts_embed
from .errors import CatalogUnavailable, sdk_error_name
from .ocr import OcrReading, ocr_read

__all__ = [
    "CatalogUnavailable",
    "Completion",
    "EmbeddingWidthMismatch",
    "Embeddings",
    "Event",
    "Finish",
    "OcrReading",
    "ReasoningDelta",
    "TextDelta",
    "ToolActivity",
    "ToolCalls",
    "UpstreamClient",
    "completion_text",
    "models_list",
    "ocr_read",
    "reply_stream",
    "sdk_error_name",
    "texts_embed",
    "upstream_client_create",
    "upstream_problem",
]
