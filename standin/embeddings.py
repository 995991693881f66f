"""The stand-in's `POST /v1/embeddings`: deterministic vectors, a hashed bag of words normalised to
length 1, so texts sharing more words lie closer and a test can assert the order of a search. The API's
limits are enforced with its error shapes. Free of Django, like the stand-in."""

from __future__ import annotations

import math
import re
import zlib
from typing import Any

# The models and their native widths, named bare or with their provider (`openai/...`); `dimensions`
# shortens a text-embedding-3 model's vectors.
MODEL_WIDTHS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_INPUTS = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8192
# Tokens are counted as the project estimates them: a token per four characters, rounded up.
CHARS_PER_TOKEN = 4

WORD_RE = re.compile(r"\w+")


class EmbeddingRefused(ValueError):
    """The request breaks one of the API's rules; `code` and `param` are the API's error fields."""

    def __init__(self, message: str, *, code: str | None = None, param: str | None = "input") -> None:
        super().__init__(message)
        self.code = code
        self.param = param


def input_tokens(text: str) -> int:
    """The tokens the stand-in counts for one input."""
    return -(-len(text) // CHARS_PER_TOKEN)


def vector_of(text: str, width: int) -> list[float]:
    """The text's words (lowercased) counted into `width` buckets by their CRC-32, normalised to length 1.
    A text without words points along the first axis."""
    counts = [0.0] * width
    for word in WORD_RE.findall(text.lower()):
        counts[zlib.crc32(word.encode()) % width] += 1.0
    norm = math.sqrt(sum(count * count for count in counts))
    if norm == 0:
        counts[0] = 1.0
        return counts
    return [count / norm for count in counts]


def inputs_checked(body: Any) -> tuple[str, list[str], int]:
    """The request's model, its inputs (a string becomes a list of one) and the vectors' width; raise
    EmbeddingRefused for what the API refuses."""
    if not isinstance(body, dict):
        raise EmbeddingRefused("standin: request body must be a JSON object", param=None)
    model = body.get("model")
    if not isinstance(model, str) or model.removeprefix("openai/") not in MODEL_WIDTHS:
        raise EmbeddingRefused(f"The model `{model}` does not exist.", code="model_not_found", param="model")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
        raise EmbeddingRefused("'$.input' is invalid: a string or a non-empty list of strings is expected.")
    if len(inputs) > MAX_INPUTS:
        raise EmbeddingRefused(f"'$.input' is too long: at most {MAX_INPUTS} items, got {len(inputs)}.")
    if any(text == "" for text in inputs):
        raise EmbeddingRefused("'$.input' is invalid: an input cannot be an empty string.")
    for text in inputs:
        if (tokens := input_tokens(text)) > MAX_TOKENS_PER_INPUT:
            raise EmbeddingRefused(
                f"This model's maximum context length is {MAX_TOKENS_PER_INPUT} tokens, however you"
                f" requested {tokens} tokens in an input.",
                code="context_length_exceeded",
            )
    total = sum(input_tokens(text) for text in inputs)
    if total > MAX_TOKENS_PER_REQUEST:
        raise EmbeddingRefused(
            f"Requested {total} tokens, max {MAX_TOKENS_PER_REQUEST} tokens per request",
            code="max_tokens_per_request",
        )
    return model, inputs, _width(model, body.get("dimensions"))


def _width(model: str, dimensions: Any) -> int:
    native = MODEL_WIDTHS[model.removeprefix("openai/")]
    if dimensions is None:
        return native
    if "text-embedding-3" not in model:
        raise EmbeddingRefused(
            "This model does not support specifying dimensions.", code="invalid_value", param="dimensions"
        )
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= native:
        raise EmbeddingRefused(
            f"'$.dimensions' must be a whole number from 1 to {native}.",
            code="invalid_value",
            param="dimensions",
        )
    return dimensions


def embeddings_answer(model: str, inputs: list[str], width: int) -> dict[str, Any]:
    """The API's answer: a vector per input in order, the model and the usage."""
    tokens = sum(input_tokens(text) for text in inputs)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": vector_of(text, width)}
            for index, text in enumerate(inputs)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
