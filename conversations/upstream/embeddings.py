"""The API's embeddings (`POST /v1/embeddings`): texts made vectors, in batches within the API's limits. A
blocking call, on the process's SDK client (which retries 429s, 5xx answers and broken connections with
backoff), for a worker thread. Each request is billed in the usage ledger as it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from ..exceptions import UpstreamError
from ..models import UsageEntry
from ..usage_ledger import call_entry_write, input_cost, tokens_estimate
from .client import sdk_client
from .errors import sdk_errors

# The API's limits for one request.
MAX_INPUTS = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8192
# A batch is filled by the project's estimate (a token per four characters), which a tokenizer's count
# can exceed for scripts other than Latin ones; a third of the request's limit is held back for that.
TOKENS_PER_BATCH = MAX_TOKENS_PER_REQUEST * 2 // 3
TIMEOUT_S = 60.0
RETRIES = 3


class EmbeddingWidthMismatch(UpstreamError):
    """The API's vectors are not as wide as the knowledge base's pinned width."""

    def __init__(self, *, model: str, expected: int, got: int) -> None:
        super().__init__(
            f"The model service gave {model} vectors of width {got}, not the {expected} expected.",
            code="upstream_embedding_width",
        )


class Embeddings(NamedTuple):
    """A vector per text, in the texts' order, and the usage of every request made for them."""

    vectors: list[list[float]]
    prompt_tokens: int
    requests: int


def texts_batched(texts: Sequence[str]) -> Iterator[range]:
    """The index ranges of `texts` to send together: at most MAX_INPUTS texts and TOKENS_PER_BATCH
    estimated tokens a request. Raise ValueError for an empty text or one over an input's limit."""
    start, tokens = 0, 0
    for index, text in enumerate(texts):
        cost = tokens_estimate(len(text))
        if not text:
            raise ValueError(f"text {index} is empty: the API refuses empty input")
        if cost > MAX_TOKENS_PER_INPUT:
            raise ValueError(
                f"text {index} is about {cost} tokens, over the {MAX_TOKENS_PER_INPUT} an input may be"
            )
        if index > start and (index - start == MAX_INPUTS or tokens + cost > TOKENS_PER_BATCH):
            yield range(start, index)
            start, tokens = index, 0
        tokens += cost
    if start < len(texts):
        yield range(start, len(texts))


def texts_embed(
    texts: Sequence[str], *, model: str, width: int, owner_key: str, dimensions: int | None = None
) -> Embeddings:
    """Embed `texts` with `model`, asking for `dimensions` when given (text-embedding-3 models), and check
    every vector is `width` wide: vectors are never padded or cut, a mismatch raises
    EmbeddingWidthMismatch. Each request's usage is billed to `owner_key` as it returns (at the catalog's
    input price when the catalog prices `model`, else tokens only). Raise ValueError, before any request,
    for `dimensions` other than `width` or a text the API would refuse; UpstreamError when the service
    fails after its retries (requests already made stay billed)."""
    if dimensions is not None and dimensions != width:
        raise ValueError(f"dimensions {dimensions} ask for vectors other than the {width} expected")
    client = sdk_client(timeout=TIMEOUT_S, max_retries=RETRIES)
    vectors: list[list[float]] = []
    prompt_tokens = requests = 0
    batches = list(texts_batched(texts))  # every text checked before the first request is paid
    for batch in batches:
        with sdk_errors():
            response = client.embeddings.create(
                model=model, input=[texts[index] for index in batch], **_dimensions(dimensions)
            )
        requests += 1
        usage = {"prompt_tokens": response.usage.prompt_tokens, "total_tokens": response.usage.total_tokens}
        call_entry_write(
            kind=UsageEntry.Kind.EMBEDDING,
            owner_key=owner_key,
            model=response.model or model,
            usage=usage,
            cost=input_cost(model, usage["prompt_tokens"]),
        )
        prompt_tokens += usage["prompt_tokens"]
        vectors.extend(_vectors_checked(response.data, model=model, width=width, count=len(batch)))
    return Embeddings(vectors, prompt_tokens, requests)


def _dimensions(dimensions: int | None) -> dict[str, int]:
    return {} if dimensions is None else {"dimensions": dimensions}


def _vectors_checked(data: Sequence, *, model: str, width: int, count: int) -> list[list[float]]:
    """The batch's vectors in input order (the API says each one's index), each `width` wide."""
    ordered = sorted(data, key=lambda item: item.index)
    if [item.index for item in ordered] != list(range(count)):
        raise UpstreamError(f"The model service gave {len(ordered)} vectors for {count} texts.")
    for item in ordered:
        if len(item.embedding) != width:
            raise EmbeddingWidthMismatch(model=model, expected=width, got=len(item.embedding))
    return [list(item.embedding) for item in ordered]
