"""
How each answer is read (:mod:`airflow_qstash.protocol.answers`): a 2xx is its JSON, a 3xx is never
followed, a conflict on a filter cancel is an action conflict, a 429 with rate-limit headers and a 5xx are
retried, a client error names the status and QStash's text, and the rate-limit headers give the wait.
"""

from __future__ import annotations

import time

import pytest

from airflow_qstash.config import RetryPolicy
from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError, QStashRetryableError
from airflow_qstash.protocol.answers import has_rate_limit_headers, rate_limit_wait, read_answer
from airflow_qstash.protocol.calls import Call
from airflow_qstash.protocol.endpoints import BULK_CANCEL

POLICY = RetryPolicy()
FILTER_CALL = Call(BULK_CANCEL, (("label", "a"), ("async", "true")), conflict_aware=True)
IDS_CALL = Call(BULK_CANCEL, (("messageIds", "m1"),))


@pytest.mark.parametrize(("body", "expected"), [("", None), ("  ", None), ('{"a": 1}', {"a": 1}), ("[1]", [1])])
def test_a_2xx_answer_is_its_parsed_json(body, expected):
    assert read_answer(FILTER_CALL, 200, {}, body, POLICY) == expected
    assert read_answer(FILTER_CALL, 202, {}, body, POLICY) == expected


def test_a_2xx_answer_that_is_not_json_is_an_error():
    with pytest.raises(QStashAPIError, match="200 with a body that is not JSON") as info:
        read_answer(FILTER_CALL, 200, {}, "<html>", POLICY)
    assert info.value.http_status == 200


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_a_3xx_is_never_followed(status):
    with pytest.raises(QStashAPIError) as info:
        read_answer(FILTER_CALL, status, {"Location": "https://elsewhere.test/v2/messages"}, "", POLICY)
    assert not isinstance(info.value, QStashRetryableError | QStashActionConflict)
    assert f"answered {status} redirecting to https://elsewhere.test/v2/messages" in str(info.value)
    assert info.value.http_status == status


@pytest.mark.parametrize("status", [412, 429])
def test_a_conflict_on_a_filter_cancel_is_an_action_conflict(status):
    with pytest.raises(QStashActionConflict) as info:
        read_answer(FILTER_CALL, status, {}, '{"error": "in progress"}', POLICY)
    assert info.value.http_status == status
    assert info.value.api_error == "in progress"
    assert not isinstance(info.value, QStashRetryableError)  # tenacity must not retry it as "slow down"


def test_a_412_elsewhere_is_a_plain_error_and_a_header_less_429_a_rate_limit():
    with pytest.raises(QStashAPIError) as info:
        read_answer(IDS_CALL, 412, {}, '{"error": "nope"}', POLICY)
    assert type(info.value) is QStashAPIError
    with pytest.raises(QStashRetryableError) as retry:
        read_answer(IDS_CALL, 429, {}, "", POLICY)
    assert retry.value.wait is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Burst-RateLimit-Reset": "NOW+2"},
        {"Burst-RateLimit-Remaining": "0"},
        {"Burst-RateLimit-Limit": "100"},
        {"RateLimit-Reset": "NOW+2"},
        {"RateLimit-Remaining": "0"},
        {"RateLimit-Limit": "1000"},
        {"Retry-After": "2"},
    ],
)
def test_a_429_with_any_rate_limit_header_is_a_rate_limit_even_on_a_filter_cancel(headers):
    now = int(time.time())
    headers = {k: str(now + 2) if v == "NOW+2" else v for k, v in headers.items()}
    assert has_rate_limit_headers(headers)
    with pytest.raises(QStashRetryableError):
        read_answer(FILTER_CALL, 429, headers, '{"error": "slow down"}', POLICY)


def test_a_429_whose_reset_is_further_than_the_policy_allows_fails_at_once():
    headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(time.time()) + 3600)}
    with pytest.raises(QStashAPIError, match="max_rate_limit_wait=60 s") as info:
        read_answer(FILTER_CALL, 429, headers, "", POLICY)
    assert type(info.value) is QStashAPIError


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_a_5xx_is_retryable(status):
    with pytest.raises(QStashRetryableError, match=f"failed with {status}: busy"):
        read_answer(FILTER_CALL, status, {}, '{"error": "busy"}', POLICY)


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (401, '{"error": "invalid token"}', "401: invalid token. Check the token in the connection's password."),
        (404, '{"error": "not found"}', "404: not found. Check the connection's host."),
        (400, "plain failure", "400: plain failure"),
        (422, "", "422: (empty body)"),
        (400, '{"error": 5}', '400: {"error": 5}'),
    ],
)
def test_a_client_error_names_the_status_and_qstash_s_text(status, body, text):
    with pytest.raises(QStashAPIError) as info:
        read_answer(FILTER_CALL, status, {}, body, POLICY)
    assert type(info.value) is QStashAPIError
    assert str(info.value) == f"QStash DELETE /v2/messages failed with {text}"


def test_an_error_text_is_kept_short():
    with pytest.raises(QStashAPIError) as info:
        read_answer(FILTER_CALL, 400, {}, "y" * 10_000, POLICY)
    assert len(str(info.value)) < 400


# --------------------------------------------------------------------------- rate-limit headers


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Burst-RateLimit-Remaining": "0", "Burst-RateLimit-Reset": "110", "RateLimit-Reset": "200"}, 10),
        (
            {
                "Burst-RateLimit-Remaining": "5",
                "Burst-RateLimit-Reset": "110",
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": "200",
            },
            100,
        ),
        ({"Burst-RateLimit-Reset": "103"}, 3),
        ({"RateLimit-Reset": "104"}, 4),
        ({"Retry-After": "7"}, 7),
        ({"Burst-RateLimit-Reset": "90"}, 0),  # a reset in the past: go now
        ({"Retry-After": "-3"}, 0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Burst-RateLimit-Reset": "inf", "Retry-After": "2"}, 2),
        ({}, None),
    ],
)
def test_rate_limit_wait(headers, expected):
    assert rate_limit_wait(headers, now=100.0) == expected
