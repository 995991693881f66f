"""The stand-in's `POST /v1/embeddings` over real HTTP, through the dedalus-labs SDK: deterministic,
normalised vectors whose cosines follow shared words, the API's limits with its error shapes, and its
replies citing the numbered sources a request gives it."""

from __future__ import annotations

import math

import dedalus_labs
import httpx
import pytest

from .standin_control import StandIn

SMALL = "openai/text-embedding-3-small"


def sdk(standin: StandIn) -> dedalus_labs.Dedalus:
    return dedalus_labs.Dedalus(api_key="test", base_url=standin.url, max_retries=0)


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def embeddings_post(standin: StandIn, body: dict) -> httpx.Response:
    return standin.http.post("/v1/embeddings", json=body, headers={"Authorization": "Bearer test"})


def test_vectors_are_deterministic_normalised_and_as_wide_as_the_model_or_dimensions(standin):
    texts = ["the cat sat on the mat", "the cat sat on the mat", "dogs bark at night"]
    answer = sdk(standin).embeddings.create(model=SMALL, input=texts)
    assert [item.index for item in answer.data] == [0, 1, 2]
    assert answer.model == SMALL
    vectors = [item.embedding for item in answer.data]
    assert {len(vector) for vector in vectors} == {1536}
    assert vectors[0] == vectors[1] != vectors[2]
    assert all(math.isclose(math.sqrt(sum(x * x for x in v)), 1.0) for v in vectors)
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (6 + 6 + 5, 17)

    large = sdk(standin).embeddings.create(model="text-embedding-3-large", input="hello")
    assert len(large.data[0].embedding) == 3072
    short = sdk(standin).embeddings.create(model=SMALL, input="hello", dimensions=64)
    assert len(short.data[0].embedding) == 64
    again = sdk(standin).embeddings.create(model=SMALL, input=["hello"], dimensions=64)
    assert again.data[0].embedding == short.data[0].embedding


def test_a_querys_cosines_follow_the_words_it_shares(standin):
    documents = [
        "bananas are yellow fruit",
        "the red apple orchard in autumn",
        "apple pie recipe with red apple slices and cinnamon",
        "stock market prices fell",
    ]
    answer = sdk(standin).embeddings.create(model=SMALL, input=["red apple recipe", *documents])
    query, *vectors = [item.embedding for item in answer.data]
    order = sorted(range(len(documents)), key=lambda index: -cosine(query, vectors[index]))
    assert order[:2] == [2, 1]
    assert cosine(query, vectors[0]) == cosine(query, vectors[3]) == 0.0


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"model": SMALL, "input": [f"text {i}" for i in range(2049)]}, "invalid_request", "input"),
        ({"model": SMALL, "input": ["x" * 32_000] * 40}, "max_tokens_per_request", "input"),
        ({"model": SMALL, "input": ["x" * 40_000]}, "context_length_exceeded", "input"),
        ({"model": SMALL, "input": ["fine", ""]}, "invalid_request", "input"),
        ({"model": SMALL, "input": []}, "invalid_request", "input"),
        ({"model": SMALL, "input": "hi", "dimensions": 4096}, "invalid_value", "dimensions"),
        ({"model": "text-embedding-ada-002", "input": "hi", "dimensions": 8}, "invalid_value", "dimensions"),
        ({"model": "openai/gpt-5.1", "input": "hi"}, "model_not_found", "model"),
    ],
)
def test_the_apis_limits_are_refused_with_its_error_shape(standin, body, code, param):
    response = embeddings_post(standin, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert error["message"]
    [record] = standin.requests()
    assert (record["kind"], record["outcome"]) == ("embedding", "error_status")


def test_the_sdk_raises_the_apis_refusal_and_the_log_keeps_a_summary(standin):
    with pytest.raises(dedalus_labs.BadRequestError, match="max 300000 tokens per request"):
        sdk(standin).embeddings.create(model=SMALL, input=["y" * 30_000] * 41)
    [record] = standin.requests()
    assert record["body"] == {"model": SMALL, "dimensions": None, "inputs": 41, "tokens": 41 * 7500}


def test_a_scripted_status_answers_the_next_embeddings_request(standin):
    standin.embeddings_script({"status": 503})
    assert embeddings_post(standin, {"model": SMALL, "input": "hi"}).status_code == 503
    assert embeddings_post(standin, {"model": SMALL, "input": "hi"}).status_code == 200
    assert [record["outcome"] for record in standin.requests()] == ["error_status", "completed"]


def test_a_request_without_a_key_is_refused(standin):
    response = standin.http.post("/v1/embeddings", json={"model": SMALL, "input": "hi"})
    assert response.status_code == 401


SOURCES = (
    "Answer from the numbered sources below; cite each source you use as [n].\n\n"
    "[1] The lighthouse keeper lit the lamp at dusk.\n\n"
    "[2] Tides rise twice a day along the harbour.\nA second line of the second source.\n\n"
    "[3] Lighthouse lamps burned whale oil before kerosene.\n"
)


def completion_text(standin: StandIn, messages: list[dict]) -> str:
    answer = sdk(standin).chat.completions.create(model="openai/gpt-5.1", messages=messages)
    return answer.choices[0].message.content


def test_a_reply_cites_the_system_messages_sources_that_share_the_questions_words(standin):
    text = completion_text(
        standin,
        [
            {"role": "system", "content": SOURCES},
            {"role": "user", "content": "Who lit the lighthouse lamp? [[standin tokens=40]]"},
        ],
    )
    assert text.startswith("According to the sources [1] [3]: “The lighthouse keeper lit the lamp” [1];")
    assert "[2]" not in text


def test_sources_in_the_user_message_are_cited_and_left_out_of_the_question(standin):
    user = "When do the tides rise?\n\n" + SOURCES.split("\n\n", 1)[1]
    text = completion_text(standin, [{"role": "user", "content": user}])
    assert text.strip() == "According to the sources [2]: “Tides rise twice a day along” [2]."
    longer = completion_text(standin, [{"role": "user", "content": user + " [[standin tokens=60]]"}])
    assert "You asked: “When do the tides rise?”" in longer


def test_no_source_shares_the_questions_words_and_the_reply_says_so(standin):
    text = completion_text(
        standin, [{"role": "system", "content": SOURCES}, {"role": "user", "content": "python decorators"}]
    )
    assert text.startswith("None of the sources given speaks of this.")
    assert "[1]" not in text


def test_an_out_of_order_number_is_part_of_a_sources_text(standin):
    system = "[1] Alpha centauri is a star.\n[3] beta line is still the first source.\n[2] Gamma rays."
    text = completion_text(
        standin,
        [
            {"role": "system", "content": system},
            {"role": "user", "content": "beta gamma [[standin tokens=30]]"},
        ],
    )
    assert text.startswith("According to the sources [1] [2]:")
