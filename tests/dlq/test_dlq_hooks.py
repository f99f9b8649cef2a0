"""The DLQ hook methods on both transports (requests and httpx), against one fake DLQ.

Every test runs twice through ``call_hook``: the requests hook and the httpx hook share the wire, so
both must send the same requests and read the same answers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_qstash.dlq import DLQRunIncomplete, build_dlq_filter, retry_overrides
from airflow_qstash.errors import QStashAPIError
from airflow_qstash.filters import BulkCancelFilterError, NoFilterError
from airflow_qstash.wire import DLQPage
from tests.conftest import TEST_TOKEN
from tests.dlq.fake_dlq import FakeDLQ


def dlq_requests(fake: FakeDLQ, method: str, path: str = "/v2/dlq") -> list[list[tuple[str, str]]]:
    return [seen.query for seen in fake.seen if (seen.method, seen.path) == (method, path)]


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize(("n", "batch_size"), [(0, 100), (1, 100), (100, 100), (101, 100), (250, 100), (7, 3)])
def test_delete_follows_the_cursor_until_none_comes_back(call_hook, fake: FakeDLQ, n: int, batch_size: int):
    fake.add(n, "report")
    fake.add(5, "other")

    summary = call_hook("dlq_delete", labels="report", batch_size=batch_size)

    assert summary["deleted"] == n
    assert fake.ids("report") == set()
    assert len(fake.ids("other")) == 5
    queries = dlq_requests(fake, "DELETE")
    assert summary["requests"] == len(queries) == max(1, math.ceil(n / batch_size))
    assert all(("label", "report") in query and ("count", str(batch_size)) in query for query in queries)
    assert [dict(q).get("cursor") is not None for q in queries] == [False] + [True] * (len(queries) - 1)


def test_delete_sends_every_filter_under_its_spec_name(call_hook, fake: FakeDLQ):
    call_hook(
        "dlq_delete",
        message_ids="m1",
        urls="https://a.example/x",
        url_groups="g",
        schedule_ids="s",
        queue_names="q",
        labels="l",
        flow_control_keys="k",
        caller_ips="1.2.3.4",
        response_statuses=[500, 503],
        from_date=1_714_521_600_000,
        to_date=1_714_608_000_000,
    )
    [query] = dlq_requests(fake, "DELETE")
    assert query == [
        ("messageId", "m1"),
        ("url", "https://a.example/x"),
        ("topicName", "g"),
        ("scheduleId", "s"),
        ("queueName", "q"),
        ("label", "l"),
        ("flowControlKey", "k"),
        ("callerIp", "1.2.3.4"),
        ("responseStatus", "500"),
        ("responseStatus", "503"),
        ("fromDate", "1714521600000"),
        ("toDate", "1714608000000"),
        ("count", "100"),
    ]


def test_delete_by_ids_splits_into_requests_of_100(call_hook, fake: FakeDLQ):
    fake.add(250, "report")
    ids = sorted(fake.ids())
    summary = call_hook("dlq_delete", dlq_ids=ids)
    assert summary["deleted"] == 250
    assert [sum(1 for name, _ in q if name == "dlqIds") for q in dlq_requests(fake, "DELETE")] == [100, 100, 50]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, NoFilterError, "delete_all=True"),
        ({"hosts": "a.example"}, BulkCancelFilterError, "DLQ endpoints reject"),
        ({"paths": "/x"}, BulkCancelFilterError, "DLQ endpoints reject"),
        ({"dlq_ids": ["d"], "labels": "a"}, BulkCancelFilterError, "cannot be combined"),
        ({"labels": ""}, BulkCancelFilterError, "labels is empty"),
        ({"labels": "a", "batch_size": 101}, BulkCancelFilterError, "from 1 to 100"),
        ({"labels": "a", "max_requests": 0}, BulkCancelFilterError, "max_requests"),
        ({"dlq_ids": ["."]}, BulkCancelFilterError, None),
    ],
)
def test_delete_refusals_happen_before_any_request(call_hook, fake: FakeDLQ, kwargs, error, match):
    if kwargs.get("dlq_ids") == ["."]:  # an id is a query value here, not a path segment: it is sent
        call_hook("dlq_delete", **kwargs)
        assert dlq_requests(fake, "DELETE") == [[("dlqIds", "."), ("count", "100")]]
        return
    with pytest.raises(error, match=match):
        call_hook("dlq_delete", **kwargs)
    assert fake.seen == []


def test_delete_all_sends_no_filter(call_hook, fake: FakeDLQ):
    fake.add(3, "a")
    fake.add(2, "b")
    assert call_hook("dlq_delete", delete_all=True)["deleted"] == 5
    assert dlq_requests(fake, "DELETE") == [[("count", "100")]]


def test_delete_takes_a_filter_object_but_not_both(call_hook, fake: FakeDLQ):
    fake.add(2, "a")
    assert call_hook("dlq_delete", build_dlq_filter("delete", labels="a"))["deleted"] == 2
    with pytest.raises(ValueError, match="not both"):
        call_hook("dlq_delete", build_dlq_filter("delete", labels="a"), labels="b")


def test_delete_stops_at_max_requests_with_the_totals(call_hook, fake: FakeDLQ):
    fake.add(10, "a")
    with pytest.raises(DLQRunIncomplete, match="max_requests=2 reached") as info:
        call_hook("dlq_delete", labels="a", batch_size=3, max_requests=2)
    assert info.value.summary["deleted"] == 6
    assert info.value.summary["requests"] == 2
    assert len(fake.ids("a")) == 4


def test_delete_refuses_a_repeated_cursor_that_deletes_nothing(call_hook, fake: FakeDLQ):
    fake.script = {1: (200, {"deleted": 0, "cursor": "c"}, {}), 2: (200, {"deleted": 0, "cursor": "c"}, {})}
    with pytest.raises(DLQRunIncomplete, match="same cursor"):
        call_hook("dlq_delete", labels="a")
    assert len(fake.seen) == 2


@pytest.mark.parametrize(
    "body", [{"cursor": "x"}, {"deleted": -1}, {"deleted": "3"}, {"deleted": 1, "cursor": 5}, ["deleted"]]
)
def test_delete_a_malformed_answer_is_a_clear_error(call_hook, fake: FakeDLQ, body: Any):
    fake.script = {1: (200, body, {})}
    with pytest.raises(DLQRunIncomplete, match="DLQ delete answer"):
        call_hook("dlq_delete", labels="a")


def test_delete_retries_a_server_error_then_continues(call_hook, fake: FakeDLQ):
    fake.add(150, "a")
    fake.script = {2: (503, {"error": "busy"}, {})}
    assert call_hook("dlq_delete", labels="a")["deleted"] == 150
    assert len(fake.seen) == 3


def test_an_error_answer_that_echoes_the_token_is_redacted(call_hook, fake: FakeDLQ):
    fake.script = {1: (401, {"error": f"bad token Bearer {TEST_TOKEN} and {TEST_TOKEN}"}, {})}
    with pytest.raises(DLQRunIncomplete) as info:
        call_hook("dlq_delete", labels="a")
    assert TEST_TOKEN not in str(info.value)
    assert TEST_TOKEN not in str(info.value.summary)
    assert "401" in str(info.value)


# --------------------------------------------------------------------------- retry


def test_retry_sends_the_overrides_and_reports_the_new_ids(call_hook, fake: FakeDLQ):
    fake.add(120, "a")
    fake.add(3, "b")
    summary = call_hook("dlq_retry", labels="a", headers=retry_overrides(retries=0, delay="10s"))
    assert summary["retried"] == 120
    assert summary["requests"] == 2
    assert summary["message_ids"] == [f"msg-dlq-a-{i:07d}" for i in range(120)]
    assert summary["overrides"] == {"Upstash-Retries": "0", "Upstash-Delay": "10s"}
    assert {headers["upstash-retries"] for _, headers in fake.retried} == {"0"}
    assert fake.ids() == fake.ids("b")
    for seen in fake.seen:
        assert seen.headers["authorization"] == f"Bearer {TEST_TOKEN}"
        assert "count" not in dict(seen.query)  # the retry takes no count in the spec


def test_retry_reports_only_the_count_above_1000_ids(call_hook, fake: FakeDLQ):
    fake.add(1001, "a")
    summary = call_hook("dlq_retry", labels="a")
    assert summary["retried"] == 1001
    assert summary["message_ids"] is None


def test_retry_all_is_needed_for_no_filter(call_hook, fake: FakeDLQ):
    with pytest.raises(NoFilterError, match="retry_all=True"):
        call_hook("dlq_retry")
    assert fake.seen == []
    fake.add(2, "a")
    assert call_hook("dlq_retry", retry_all=True)["retried"] == 2


def test_retry_of_ids_skips_the_ones_that_vanished(call_hook, fake: FakeDLQ):
    fake.add(10, "a")
    ids = sorted(fake.ids())
    gone = {ids[2], ids[7]}
    fake.entries = [e for e in fake.entries if e["dlqId"] not in gone]

    summary = call_hook("dlq_retry", dlq_ids=ids)

    assert summary["retried"] == 8
    assert summary["vanished"] == 2
    assert fake.entries == []
    assert {dlq_id for dlq_id, _ in fake.retried} == set(ids) - gone
    # Bounded: a 404 halves the list; each id is retried exactly once.
    assert len([dlq_id for dlq_id, _ in fake.retried]) == 8
    assert summary["requests"] <= 2 * len(ids)


def test_retry_of_ids_all_gone_retries_nothing_and_succeeds(call_hook, fake: FakeDLQ):
    fake.add(1, "b")
    summary = call_hook("dlq_retry", dlq_ids=["dlq-x-1", "dlq-x-2"])
    assert (summary["retried"], summary["vanished"]) == (0, 2)
    assert fake.ids() == {"dlq-b-0000000"}


def test_retry_of_a_filter_sends_again_after_a_404(call_hook, fake: FakeDLQ):
    fake.add(30, "a")
    fake.script = {1: (404, {"error": "some messages were not found"}, {})}
    summary = call_hook("dlq_retry", labels="a")
    assert summary["retried"] == 30
    assert summary["not_found_answers"] == 1
    # the 404, one check that the DLQ API is there, then the retry again
    assert [(s.method, s.path) for s in fake.seen] == [
        ("POST", "/v2/dlq/retry"),
        ("GET", "/v2/dlq"),
        ("POST", "/v2/dlq/retry"),
    ]


def test_retry_gives_up_after_404s_in_a_row(call_hook, fake: FakeDLQ):
    fake.add(3, "a")
    fake.intercept = lambda seen, _: (404, {"error": "gone"}, {}) if seen.method == "POST" else None
    with pytest.raises(DLQRunIncomplete, match="404 5 times in a row"):
        call_hook("dlq_retry", labels="a")
    assert len([s for s in fake.seen if s.method == "POST"]) == 5
    assert len(fake.ids("a")) == 3


def test_retry_404s_between_pages_that_make_progress_are_not_in_a_row(call_hook, fake: FakeDLQ):
    fake.add(700, "a")
    posts = iter(range(1, 10_000))

    def every_other_post_404(seen, _):
        if seen.method == "POST" and next(posts) % 2:
            return 404, {"error": "some messages were not found"}, {}
        return None

    fake.intercept = every_other_post_404
    summary = call_hook("dlq_retry", labels="a")
    assert summary["retried"] == 700
    assert summary["not_found_answers"] == 7  # more 404s than the bound, never two in a row
    assert fake.entries == []


def test_retry_404_from_a_base_url_without_a_dlq_fails_instead_of_passing_as_vanished(call_hook, fake: FakeDLQ):
    fake.intercept = lambda seen, _: (404, {"error": "Not Found"}, {})
    with pytest.raises(DLQRunIncomplete, match="no QStash DLQ API at this base URL"):
        call_hook("dlq_retry", dlq_ids=["d1", "d2", "d3"])
    assert len(fake.seen) == 2


def test_retry_other_client_errors_fail_at_once(call_hook, fake: FakeDLQ):
    fake.script = {1: (400, {"error": "bad header"}, {})}
    with pytest.raises(DLQRunIncomplete, match="400: bad header"):
        call_hook("dlq_retry", labels="a")
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    "body",
    [{"responses": [{"deduplicated": True}]}, {"responses": {}}, {"cursor": "c"}, {"responses": [{"messageId": 3}]}],
)
def test_retry_a_malformed_answer_is_a_clear_error(call_hook, fake: FakeDLQ, body: Any):
    fake.script = {1: (201, body, {})}
    with pytest.raises(DLQRunIncomplete, match="DLQ retry answer"):
        call_hook("dlq_retry", labels="a")


def test_retry_counts_deduplicated_answers(call_hook, fake: FakeDLQ):
    fake.script = {1: (201, {"responses": [{"messageId": "m1", "deduplicated": True}, {"messageId": "m2"}]}, {})}
    summary = call_hook("dlq_retry", labels="a")
    assert (summary["retried"], summary["deduplicated"]) == (2, 1)


# --------------------------------------------------------------------------- list and single delete


def test_list_returns_one_page_and_its_cursor(call_hook, fake: FakeDLQ):
    fake.add(5, "a")
    page = call_hook("list_dlq", labels="a", count=2)
    assert isinstance(page, DLQPage)
    assert [m["dlqId"] for m in page.messages] == ["dlq-a-0000000", "dlq-a-0000001"]
    assert page.cursor == "dlq-a-0000001"
    last = call_hook("list_dlq", labels="a", count=100, cursor="dlq-a-0000003")
    assert ([m["dlqId"] for m in last.messages], last.cursor) == (["dlq-a-0000004"], None)
    assert fake.seen[0].query == [("label", "a"), ("count", "2")]


def test_list_without_a_filter_lists_everything(call_hook, fake: FakeDLQ):
    fake.add(3, "a")
    assert len(call_hook("list_dlq").messages) == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"dlq_ids": ["d"]}, "dlqIds"), ({"flow_control_keys": "k"}, "flowControlKey"), ({"count": 101}, "count")],
)
def test_list_refuses_what_the_list_endpoint_does_not_take(call_hook, fake: FakeDLQ, kwargs, match):
    with pytest.raises(BulkCancelFilterError, match=match):
        call_hook("list_dlq", **kwargs)
    assert fake.seen == []


def test_delete_one_entry_sends_its_id_as_one_path_segment(call_hook, fake: FakeDLQ):
    fake.entries = [{"dlqId": "a/b?c", "label": "x", "responseStatus": 500}]
    call_hook("delete_dlq_message", "a/b?c")
    assert fake.seen[0].path == "/v2/dlq/a%2Fb%3Fc"


@pytest.mark.parametrize("dlq_id", ["", " ", ".", "..", "./.", "%2e%2E", "a/.."])
def test_delete_one_refuses_ids_that_collapse_the_path(call_hook, fake: FakeDLQ, dlq_id: str):
    with pytest.raises(BulkCancelFilterError) as info:
        call_hook("delete_dlq_message", dlq_id)
    assert str(info.value).startswith("dlq_id"), str(info.value)
    assert fake.seen == []


def test_delete_one_missing_is_a_404_error(call_hook, fake: FakeDLQ):
    with pytest.raises(QStashAPIError, match="404"):
        call_hook("delete_dlq_message", "nope")
