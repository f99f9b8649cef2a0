"""
The wire without a transport: endpoints and path segments, how each answer is read, the bulk-cancel query,
filter comparison, bulk-action answers, and the sans-IO procedures driven by a scripted driver.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import pytest

from airflow_qstash.config import RetryPolicy
from airflow_qstash.exceptions import QStashActionConflict, QStashAPIError, QStashInputError, QStashRetryableError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.inputs import has_dot_segment
from airflow_qstash.protocol import calls as protocol_calls
from airflow_qstash.protocol import messages
from airflow_qstash.protocol.answers import has_rate_limit_headers, rate_limit_wait, read_answer
from airflow_qstash.protocol.calls import Call, Effect, Sleep, filter_requests, split_ids
from airflow_qstash.protocol.endpoints import (
    BULK_CANCEL,
    CANCEL_MESSAGE,
    ENDPOINTS,
    GET_BULK_ACTION,
    LIST_BULK_ACTIONS,
    MAX_URL_LENGTH,
    path_segment,
)
from airflow_qstash.protocol.messages import (
    ActionStarted,
    BatchCancelled,
    BulkAction,
    bulk_cancel_requests,
    filter_key,
    get_bulk_action,
    list_bulk_actions,
    read_bulk_action,
    read_bulk_cancel_answer,
    start_bulk_cancel,
)
from airflow_qstash.runs.bulk_cancel import bulk_cancel_total

BASE_URL = "https://qstash.test"
POLICY = RetryPolicy()
FILTER_CALL = Call(BULK_CANCEL, (("label", "a"), ("async", "true")), conflict_aware=True)
IDS_CALL = Call(BULK_CANCEL, (("messageIds", "m1"),))

Reply = Any  # an answer, an exception to throw in, or a callable of the Call giving either


def drive(
    procedure: protocol_calls.Procedure[Any], replies: Iterable[Reply], effects: list[Effect] | None = None
) -> tuple[Any, list[Effect]]:
    """
    Run a procedure as a hook would: the next reply for each Call, nothing for a Sleep. Every effect is
    appended to ``effects`` (pass a list to keep them when the procedure ends in an error).
    """
    pending = iter(replies)
    effects = [] if effects is None else effects
    value: Any = None
    error: BaseException | None = None
    for _ in range(1000):
        try:
            effect = procedure.throw(error) if error is not None else procedure.send(value)
        except StopIteration as done:
            return done.value, effects
        effects.append(effect)
        value, error = None, None
        if isinstance(effect, Call):
            reply = next(pending)
            reply = reply(effect) if callable(reply) else reply
            if isinstance(reply, BaseException):
                error = reply
            else:
                value = reply
    raise AssertionError("the procedure did not end within 1000 effects")


def calls(effects: list[Effect]) -> list[Call]:
    return [effect for effect in effects if isinstance(effect, Call)]


def sleeps(effects: list[Effect]) -> list[float]:
    return [effect.seconds for effect in effects if isinstance(effect, Sleep)]


def action(action_id: str, state: str = "IN_PROGRESS", **fields: Any) -> dict[str, Any]:
    return {"actionId": action_id, "state": state, "total": 5, "processed": 1, "filter": {"label": ["a"]}, **fields}


def conflict(status: int = 412) -> QStashActionConflict:
    return QStashActionConflict(f"QStash DELETE /v2/messages failed with {status}: conflict", http_status=status)


# --------------------------------------------------------------------------- endpoints and path segments


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS.values() if "{id}" in e.path], ids=lambda e: e.path)
@pytest.mark.parametrize("bad_id", [".", "..", " . ", "./.", "a/..", "%2e%2e", "..\\", "", "  ", None, 5, b".."])
def test_every_endpoint_with_an_id_refuses_an_id_that_is_not_one_segment(endpoint, bad_id):
    with pytest.raises(QStashInputError):
        endpoint.url_path(bad_id)
    with pytest.raises(QStashInputError):
        Call(endpoint, path_id=bad_id)  # refused when the request is made, not when it is sent


@pytest.mark.parametrize(
    ("value", "segment"),
    [("msg_1", "msg_1"), ("a/b", "a%2Fb"), ("a b?#", "a%20b%3F%23"), ("50%", "50%25"), ("..a", "..a"), ("ü", "%C3%BC")],
)
def test_an_id_is_one_percent_encoded_segment(value, segment):
    assert path_segment(value, "message_id") == segment
    assert CANCEL_MESSAGE.url_path(value) == f"/v2/messages/{segment}"
    assert GET_BULK_ACTION.url_path(value) == f"/v2/bulkActions/{segment}"


def test_an_endpoint_without_an_id_ignores_none():
    assert BULK_CANCEL.url_path() == "/v2/messages"
    assert Call(LIST_BULK_ACTIONS, (("count", "1"),)).path == "/v2/bulkActions"


def test_endpoints_are_declared_once_with_their_methods():
    declared = {name: (e.method, e.path) for name, e in ENDPOINTS.items()}
    assert {
        "bulk_cancel": ("DELETE", "/v2/messages"),
        "cancel_message": ("DELETE", "/v2/messages/{id}"),
        "list_bulk_actions": ("GET", "/v2/bulkActions"),
        "get_bulk_action": ("GET", "/v2/bulkActions/{id}"),
        "list_queues": ("GET", "/v2/queues"),
    }.items() <= declared.items()


# --------------------------------------------------------------------------- reading answers


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


# --------------------------------------------------------------------------- the bulk-cancel query


@pytest.mark.parametrize(
    ("bulk_filter", "count", "query"),
    [
        (BulkCancelFilter.build(labels=["a", "b"]), None, [("label", "a"), ("label", "b"), ("async", "true")]),
        (BulkCancelFilter.build(labels="a"), 10, [("label", "a"), ("count", "10"), ("async", "true")]),
        (BulkCancelFilter.build(cancel_all=True), None, [("async", "true")]),
        (BulkCancelFilter.build(message_ids=["m1", "m2"]), None, [("messageIds", "m1"), ("messageIds", "m2")]),
        (BulkCancelFilter.build(message_ids="m1"), 5, [("messageIds", "m1"), ("count", "5")]),
    ],
)
def test_bulk_cancel_query_asks_for_async_only_on_filter_cancels(bulk_filter, count, query):
    assert bulk_cancel_requests(bulk_filter, count, BASE_URL) == [query]


def test_a_long_id_list_is_split_under_the_url_limit_without_async():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    parts = bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), 500, BASE_URL)
    assert len(parts) > 1
    assert [value for part in parts for name, value in part if name == "messageIds"] == ids
    for part in parts:
        assert ("async", "true") not in part
        assert part[-1] == ("count", "500")
        assert len(f"{BASE_URL}{BULK_CANCEL.path}?{urlencode(part)}") <= MAX_URL_LENGTH


@pytest.mark.parametrize("count", [0, 501, -1, "x", True, 1.5])
def test_a_bad_count_is_refused_while_encoding(count):
    with pytest.raises(QStashInputError, match="count"):
        bulk_cancel_requests(BulkCancelFilter.build(labels="a"), count, BASE_URL)


@pytest.mark.parametrize(
    ("value", "dotted"),
    [
        *[(".", True), ("..", True), ("a/..", True), ("a\\.", True), ("%2e%2E", True), ("a/%2E/b", True)],
        *[("a.b", False), ("...", False), ("msg_1", False), ("a/b", False), ("%2e%2e%2e", False)],
    ],
)
def test_one_dot_segment_judgement_for_path_ids_and_filter_values(value, dotted):
    """A path id and a filter value (``message_ids``) are judged by the same :func:`has_dot_segment`."""
    assert has_dot_segment(value) is dotted
    path_refused = filter_refused = False
    try:
        path_segment(value, "message_id")
    except QStashInputError:
        path_refused = True
    try:
        BulkCancelFilter.build(message_ids=[value])
    except QStashInputError as err:
        filter_refused = "dot segment" in str(err)
    assert path_refused is filter_refused is dotted


# --------------------------------------------------------------------------- the one id splitter


def _ids(n, width=28):
    return [f"msg_{i:0{width}d}" for i in range(n)]


def _url(path, part):
    return f"{BASE_URL}{path}?{urlencode(part)}"


def test_split_ids_measures_the_url_as_sent_to_the_character():
    ids = _ids(3)
    exact = len(_url("/v2/messages", [("messageIds", i) for i in ids] + [("count", "500")]))
    fits = split_ids("messageIds", ids, [("count", "500")], BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - exact)
    assert fits == [[*(("messageIds", i) for i in ids), ("count", "500")]]
    parts = split_ids(
        "messageIds", ids, [("count", "500")], BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - exact + 1
    )
    assert len(parts) == 2


@pytest.mark.parametrize("reserve", [0, 1000, 3700])
def test_split_ids_makes_disjoint_parts_in_order_that_fit_with_the_params(reserve):
    ids = _ids(2000)
    params = [("count", "100"), ("async", "true")]
    parts = split_ids("messageIds", ids, params, BASE_URL, "/v2/messages", reserve=reserve)
    assert len(parts) > 1
    for part in parts:
        assert part[-2:] == params
        assert len(_url("/v2/messages", part)) <= MAX_URL_LENGTH - reserve
    assert [value for part in parts for name, value in part if name == "messageIds"] == ids


def test_split_ids_counts_percent_encoding():
    ids = [f"ü/{i:04d}&" for i in range(300)]  # each id grows from 8 to 16 characters when encoded
    parts = split_ids("messageIds", ids, (), BASE_URL, "/v2/messages", reserve=MAX_URL_LENGTH - 500)
    assert all(len(_url("/v2/messages", part)) <= 500 for part in parts)
    assert [value for part in parts for _, value in part] == ids


def test_split_ids_keeps_at_most_max_ids_a_part_and_no_ids_make_no_parts():
    assert [len(part) for part in split_ids("dlqIds", [f"d{i}" for i in range(25)], (), BASE_URL, "/v2/dlq", 10)] == [
        10,
        10,
        5,
    ]
    assert split_ids("dlqIds", [], (), BASE_URL, "/v2/dlq", 10) == []


def test_split_ids_refuses_one_id_longer_than_a_url_naming_the_argument():
    with pytest.raises(QStashInputError, match=r"message_ids value .xxx.*too long"):
        split_ids("messageIds", ["short", "x" * 5000], (), BASE_URL, "/v2/messages", what="message_ids")


def test_filter_requests_refuses_filters_that_do_not_fit_one_url():
    bulk_filter = BulkCancelFilter.build(labels=[f"label-{i}-" + "y" * 40 for i in range(100)])
    with pytest.raises(QStashInputError, match="more than the 4096"):
        filter_requests(bulk_filter, BASE_URL, "/v2/messages")


def test_both_callers_use_the_one_splitter():
    """The bulk cancel's message ids and the DLQ's ids are split by :func:`split_ids`, nowhere else."""
    from airflow_qstash.protocol import dlq

    assert "split_message_ids" not in vars(BulkCancelFilter)
    assert not hasattr(dlq, "_split_ids") and not hasattr(dlq, "dlq_multi_requests")
    ids = _ids(1500)
    assert bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), 500, BASE_URL) == split_ids(
        "messageIds", ids, [("count", "500")], BASE_URL, BULK_CANCEL.path
    )


# --------------------------------------------------------------------------- comparing filters


def test_filter_key_ignores_order_commas_and_the_non_filter_parameters():
    ours = filter_key([("queueName", "q"), ("label", "b"), ("label", "a"), ("count", "10"), ("async", "true")])
    assert ours == {"label": ("a", "b"), "queueName": ("q",)}
    assert filter_key({"label": ["a,b"], "queueName": ["q"]}) == ours
    assert filter_key({"label": ["b", "a"], "queueName": "q", "cursor": "c1"}) == ours
    assert filter_key({"label": [" a ", "b,"], "queueName": ["q"], "url": []}) == ours


@pytest.mark.parametrize(
    "other",
    [
        {"label": ["a"], "queueName": ["q"]},
        {"label": ["a", "b", "c"], "queueName": ["q"]},
        {"label": ["a", "b"]},
        {"label": ["a", "b"], "queueName": ["q"], "fromDate": ["1"]},
        {"labels": ["a", "b"], "queueName": ["q"]},
        {},
    ],
)
def test_filter_key_tells_other_filters_apart(other):
    assert filter_key(other) != filter_key([("label", "a"), ("label", "b"), ("queueName", "q")])


def test_the_filter_of_a_cancel_all_is_empty():
    assert filter_key([("count", "5"), ("async", "true")]) == {} == filter_key({})


# --------------------------------------------------------------------------- bulk-cancel and bulk-action answers


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"actionId": "act_1"}, ActionStarted("act_1")),
        ({"actionId": "act_1", "cancelled": 0}, ActionStarted("act_1")),
        ({"cancelled": 0}, BatchCancelled(0)),
        ({"cancelled": 12}, BatchCancelled(12)),
        ({"actionId": "", "cancelled": 3}, BatchCancelled(3)),
    ],
)
def test_read_bulk_cancel_answer(answer, expected):
    assert read_bulk_cancel_answer(answer) == expected


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        (None, "neither"),
        ({}, "neither"),
        ({"total": 3}, "neither"),
        ({"actionId": " "}, "neither"),
        ({"cancelled": -1}, "no valid 'cancelled'"),
        ({"cancelled": 1.5}, "no valid 'cancelled'"),
        ({"cancelled": False}, "no valid 'cancelled'"),
    ],
)
def test_read_bulk_cancel_answer_refuses_anything_else(answer, fragment):
    with pytest.raises(QStashAPIError, match=fragment):
        read_bulk_cancel_answer(answer)


def test_read_bulk_action_reads_the_documented_fields():
    got = read_bulk_action(
        action("act_1", state="FINISHED", total=7, processed=7, createdAt=10, completedAt=20, kind="cancel")
    )
    assert got == BulkAction("act_1", "FINISHED", 7, 7, 10, 20, {"label": ("a",)})
    assert got.finished


@pytest.mark.parametrize(
    "fields",
    [{"createdAt": "10"}, {"createdAt": None}, {"completedAt": 1.5}],
)
def test_read_bulk_action_drops_unreadable_timestamps(fields):
    got = read_bulk_action(action("act_1", **fields))
    assert (got.created_at if "createdAt" in fields else got.completed_at) is None


@pytest.mark.parametrize(
    "answer",
    [
        [],
        {"state": "IN_PROGRESS", "total": 1, "processed": 0},
        action("a", actionId=None),
        action("a", state="CANCELLED"),
        action("a", total=None),
        action("a", processed=-2),
        action("a", filter="label=a"),
    ],
)
def test_read_bulk_action_refuses_a_malformed_action(answer):
    with pytest.raises(QStashAPIError):
        read_bulk_action(answer)


# --------------------------------------------------------------------------- procedures


def test_get_bulk_action_is_one_call():
    got, effects = drive(get_bulk_action("act/1"), [action("act/1")])
    assert got.action_id == "act/1"
    assert [(c.method, c.path, c.params) for c in calls(effects)] == [("GET", "/v2/bulkActions/act%2F1", ())]


def test_list_bulk_actions_follows_cursors_until_none():
    got, effects = drive(
        list_bulk_actions("FINISHED", page_size=2),
        [
            {"bulkActions": [action("a1", "FINISHED")], "cursor": "c1"},
            {"bulkActions": [], "cursor": "c2"},
            {"bulkActions": [action("a2", "FINISHED")]},
        ],
    )
    assert [item.action_id for item in got] == ["a1", "a2"]
    assert [c.params for c in calls(effects)] == [
        (("count", "2"), ("state", "FINISHED")),
        (("count", "2"), ("state", "FINISHED"), ("cursor", "c1")),
        (("count", "2"), ("state", "FINISHED"), ("cursor", "c2")),
    ]


@pytest.mark.parametrize("page_size", [0, 1001])
def test_list_bulk_actions_refuses_a_page_size_out_of_range(page_size):
    with pytest.raises(QStashInputError, match="page_size"):
        drive(list_bulk_actions(page_size=page_size), [])


def test_list_bulk_actions_is_bounded_by_max_list_pages(monkeypatch):
    monkeypatch.setattr(messages, "MAX_LIST_PAGES", 3)
    fresh = iter(range(100))
    with pytest.raises(QStashAPIError, match="did not end within 3 pages"):
        drive(list_bulk_actions(), [lambda call: {"bulkActions": [], "cursor": f"c{next(fresh)}"}] * 10)


def test_a_page_error_reaches_the_caller():
    with pytest.raises(QStashAPIError, match="boom"):
        drive(list_bulk_actions(), [QStashAPIError("boom")])


PARAMS = [("label", "a"), ("async", "true")]


def test_start_bulk_cancel_returns_the_answer_of_one_call():
    got, effects = drive(start_bulk_cancel(PARAMS), [{"actionId": "act_1"}])
    assert got == ActionStarted("act_1")
    assert [(c.method, c.path, c.params, c.conflict_aware) for c in calls(effects)] == [
        ("DELETE", "/v2/messages", tuple(PARAMS), True)
    ]


def test_a_cancel_by_ids_is_not_conflict_aware():
    _, effects = drive(start_bulk_cancel([("messageIds", "m1")]), [{"cancelled": 1}])
    assert calls(effects)[0].conflict_aware is False


def test_the_one_request_start_raises_a_conflict_for_the_run_to_judge():
    """The protocol sends one start and reads its answer; joining a running action is the run's policy."""
    effects: list[Effect] = []
    with pytest.raises(QStashActionConflict):
        drive(start_bulk_cancel(PARAMS), [conflict()], effects)
    assert [c.endpoint for c in calls(effects)] == [BULK_CANCEL]


def test_bulk_cancel_total_adds_the_counts_of_a_split_id_list():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    parts = bulk_cancel_requests(BulkCancelFilter.build(message_ids=ids), None, BASE_URL)
    got, effects = drive(
        bulk_cancel_total(BulkCancelFilter.build(message_ids=ids), None, BASE_URL),
        [{"cancelled": index + 1} for index in range(len(parts))],
    )
    assert got == BatchCancelled(sum(range(1, len(parts) + 1)))
    assert len(calls(effects)) == len(parts) > 1


def test_bulk_cancel_total_refuses_a_bulk_action_for_a_split_id_list():
    ids = [f"msg_{i:030d}" for i in range(1500)]
    with pytest.raises(QStashAPIError, match="split message_ids cancel with a bulk action"):
        drive(bulk_cancel_total(BulkCancelFilter.build(message_ids=ids), None, BASE_URL), [{"actionId": "a"}] * 5)


def test_bulk_cancel_total_returns_a_started_action():
    got, effects = drive(bulk_cancel_total(BulkCancelFilter.build(labels="a"), 100, BASE_URL), [{"actionId": "a"}])
    assert got == ActionStarted("a")
    assert calls(effects)[0].params == (("label", "a"), ("count", "100"), ("async", "true"))
