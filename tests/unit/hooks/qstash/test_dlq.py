"""The DLQ hook methods on both transports (requests and httpx), against one fake DLQ.

Every test runs twice through ``call_hook``: the requests hook and the httpx hook share the wire, so
both must send the same requests and read the same answers.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashInputError, QStashRunIncomplete
from airflow_qstash.filters import DLQFilter
from airflow_qstash.inputs import retry_overrides
from airflow_qstash.protocol.dlq import DLQPage
from airflow_qstash.runs.common import MAX_ROUNDS_WITHOUT_PROGRESS
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import FakeDLQ


def dlq_requests(fake: FakeDLQ, method: str, path: str = "/v2/dlq") -> list[list[tuple[str, str]]]:
    return [seen.query for seen in fake.seen if (seen.method, seen.path) == (method, path)]


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize(("n", "batch_size"), [(0, 100), (1, 100), (100, 100), (101, 100), (250, 100), (7, 3)])
def test_delete_lists_the_selection_then_deletes_exactly_those_ids(call_hook, fake: FakeDLQ, n: int, batch_size: int):
    fake.add(n, "report")
    fake.add(5, "other")
    wanted = fake.ids("report")

    summary = call_hook("dlq_delete", labels="report", batch_size=batch_size)

    assert (summary["deleted"], summary["selected"]) == (n, n)
    assert fake.ids("report") == set()
    assert len(fake.ids("other")) == 5
    lists = dlq_requests(fake, "GET")
    deletes = dlq_requests(fake, "DELETE")
    assert len(lists) == summary["list_requests"] == max(1, math.ceil(n / 100))
    assert len(deletes) == math.ceil(n / batch_size)
    assert summary["requests"] == len(lists) + len(deletes)
    assert all(("label", "report") in query and ("count", "100") in query for query in lists)
    for query in deletes:  # only ids: QStash ignores every other filter next to dlqIds
        assert {name for name, _ in query} == {"dlqIds", "count"} and ("count", str(batch_size)) in query
    assert {value for query in deletes for name, value in query if name == "dlqIds"} == wanted


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
    [query] = dlq_requests(fake, "GET")  # the listing; GET /v2/dlq takes no flowControlKey: matched per entry
    assert dlq_requests(fake, "DELETE") == []  # nothing matched, nothing deleted
    assert query == [
        ("messageId", "m1"),
        ("url", "https://a.example/x"),
        ("topicName", "g"),
        ("scheduleId", "s"),
        ("queueName", "q"),
        ("label", "l"),
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
        ({}, QStashInputError, "delete_all=True"),
        ({"hosts": "a.example"}, QStashInputError, "DLQ endpoints reject"),
        ({"paths": "/x"}, QStashInputError, "DLQ endpoints reject"),
        ({"dlq_ids": ["d"], "labels": "a"}, QStashInputError, "cannot be combined"),
        ({"labels": ""}, QStashInputError, "labels is empty"),
        ({"labels": "a", "batch_size": 101}, QStashInputError, "from 1 to 100"),
        ({"labels": "a", "max_requests": 0}, QStashInputError, "max_requests"),
        # one id goes to DELETE /v2/dlq/{dlqId}: a dot segment would reach another path
        ({"dlq_ids": ["."]}, QStashInputError, "dot segment"),
    ],
)
def test_delete_refusals_happen_before_any_request(call_hook, fake: FakeDLQ, kwargs, error, match):
    with pytest.raises(error, match=match):
        call_hook("dlq_delete", **kwargs)
    assert fake.seen == []
    assert fake.probes == 0


def test_delete_all_sends_no_filter(call_hook, fake: FakeDLQ):
    fake.add(3, "a")
    fake.add(2, "b")
    fake_ids_before = fake.ids()
    assert call_hook("dlq_delete", delete_all=True)["deleted"] == 5
    assert dlq_requests(fake, "GET") == [[("count", "100")]]
    [query] = dlq_requests(fake, "DELETE")
    assert sorted(value for name, value in query if name == "dlqIds") == sorted(fake_ids_before)


@pytest.mark.parametrize(
    ("method", "flag", "done"), [("dlq_delete", "delete_all", "deleted"), ("dlq_retry", "retry_all", "retried")]
)
def test_a_run_with_no_filter_is_described_by_the_authors_flag(call_hook, fake: FakeDLQ, method, flag, done):
    """The summary's ``filters`` of a run of everything names the flag the author set and what it acts on,
    never the value object's inner name (``select_all``) nor the bulk cancel's ``ALL MESSAGES``."""
    fake.add(2, "a")
    summary = call_hook(method, **{flag: True})
    assert summary[done] == 2
    assert summary["filters"] == f"ALL DLQ ENTRIES ({flag}=True)"


def test_delete_takes_a_filter_object_but_not_both(call_hook, fake: FakeDLQ):
    fake.add(2, "a")
    assert call_hook("dlq_delete", DLQFilter.build(labels="a"))["deleted"] == 2
    with pytest.raises(ValueError, match="not both"):
        call_hook("dlq_delete", DLQFilter.build(labels="a"), labels="b")


def test_delete_stops_at_max_requests_with_the_totals(call_hook, fake: FakeDLQ):
    fake.add(10, "a")
    with pytest.raises(QStashRunIncomplete, match="max_requests=2 reached") as info:
        call_hook("dlq_delete", labels="a", batch_size=3, max_requests=2)
    assert info.value.summary["deleted"] == 3  # one listing request, one delete of 3
    assert info.value.summary["requests"] == 2
    assert len(fake.ids("a")) == 7
    assert "3 entries of the 10 selected" in str(info.value)


def test_a_bound_reached_while_listing_acts_on_nothing_and_says_what_to_change(call_hook, fake: FakeDLQ):
    fake.add(250, "a")
    expected = r"max_requests=2 reached while listing .*200 listed.*raise max_requests"
    with pytest.raises(QStashRunIncomplete, match=expected):
        call_hook("dlq_delete", labels="a", max_requests=2)
    assert dlq_requests(fake, "DELETE") == []
    assert len(fake.ids("a")) == 250


def test_delete_refuses_a_listing_that_repeats_its_cursor(call_hook, fake: FakeDLQ):
    page = {"messages": [{"dlqId": "d1"}], "cursor": "c"}
    fake.script = {1: (200, page, {}), 2: (200, page, {})}
    with pytest.raises(QStashRunIncomplete, match="cursor 'c' twice while listing"):
        call_hook("dlq_delete", labels="a")
    assert len(fake.seen) == 2


def test_delete_stops_on_a_repeated_cursor_that_deletes_nothing(call_hook, fake: FakeDLQ):
    fake.add(1, "a")
    fake.script = {n: (200, {"deleted": 0, "cursor": "c"}, {}) for n in range(2, 100)}
    expected = r"same cursor 'c' 4 times in a row .*no progress; 1 of the 1 selected"
    with pytest.raises(QStashRunIncomplete, match=expected):
        call_hook("dlq_delete", labels="a")
    assert len(fake.seen) == 1 + 1 + MAX_ROUNDS_WITHOUT_PROGRESS  # the listing, the first answer, the stalls


def test_retry_stops_on_a_repeated_cursor_that_retries_nothing(call_hook, fake: FakeDLQ):
    fake.add(2, "a")
    fake.script = {n: (201, {"responses": [], "cursor": "c"}, {}) for n in range(2, 100)}
    with pytest.raises(
        QStashRunIncomplete, match=r"4 times in a row without retrying: no progress; 2 of the 2 selected"
    ):
        call_hook("dlq_retry", labels="a")
    assert len(fake.seen) == 1 + 1 + MAX_ROUNDS_WITHOUT_PROGRESS


@pytest.mark.parametrize("dlq_id", [None, "", 7, "a,b"])
def test_delete_refuses_a_listed_entry_without_a_usable_id(call_hook, fake: FakeDLQ, dlq_id: Any):
    """An id with a comma would be read as two ids by QStash: acting on it could act on other entries."""
    fake.script = {1: (200, {"messages": [{"dlqId": "ok"}, {"dlqId": dlq_id}]}, {})}
    with pytest.raises(QStashRunIncomplete, match="without a usable dlqId"):
        call_hook("dlq_delete", labels="a")
    assert dlq_requests(fake, "DELETE") == []


@pytest.mark.parametrize(
    "body", [{"cursor": "x"}, {"deleted": -1}, {"deleted": "3"}, {"deleted": 1, "cursor": 5}, ["deleted"]]
)
def test_delete_a_malformed_answer_is_a_clear_error(call_hook, fake: FakeDLQ, body: Any):
    fake.add(1, "a")
    fake.script = {2: (200, body, {})}
    with pytest.raises(QStashRunIncomplete, match="DLQ delete answer"):
        call_hook("dlq_delete", labels="a")


def test_delete_retries_a_server_error_then_continues(call_hook, fake: FakeDLQ):
    fake.add(150, "a")
    fake.script = {2: (503, {"error": "busy"}, {})}
    assert call_hook("dlq_delete", labels="a")["deleted"] == 150
    assert len(fake.seen) == 5  # list, list (503), list again, delete, delete


def test_an_error_answer_that_echoes_the_token_is_redacted(call_hook, fake: FakeDLQ):
    fake.script = {1: (401, {"error": f"bad token Bearer {TEST_TOKEN} and {TEST_TOKEN}"}, {})}
    with pytest.raises(QStashRunIncomplete) as info:
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
    assert summary["requests"] == 4  # two listing pages, two retries of 100 and 20 ids
    assert summary["message_ids"] == [f"msg-dlq-a-{i:07d}" for i in range(120)]
    assert summary["overrides"] == {"Upstash-Retries": "0", "Upstash-Delay": "10s"}
    assert {headers["upstash-retries"] for _, headers in fake.retried} == {"0"}
    assert fake.ids() == fake.ids("b")
    for seen in fake.seen:
        assert seen.headers["authorization"] == f"Bearer {TEST_TOKEN}"
        if seen.method == "POST":
            assert "count" not in dict(seen.query)  # the retry takes no count in the spec


def test_retry_reports_only_the_count_above_1000_ids(call_hook, fake: FakeDLQ):
    fake.add(1001, "a")
    summary = call_hook("dlq_retry", labels="a")
    assert summary["retried"] == 1001
    assert summary["message_ids"] is None


def test_retry_all_is_needed_for_no_filter(call_hook, fake: FakeDLQ):
    with pytest.raises(QStashInputError, match="retry_all=True"):
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


def test_retry_of_a_filter_skips_entries_that_vanish_after_the_listing(call_hook, fake: FakeDLQ):
    fake.add(30, "a")
    gone = {"dlq-a-0000003", "dlq-a-0000020"}

    def vanish_after_listing(seen, state):
        if seen.method == "POST":  # deleted by someone else between the listing and the retry
            state.entries = [e for e in state.entries if e["dlqId"] not in gone]
        return None

    fake.intercept = vanish_after_listing
    summary = call_hook("dlq_retry", labels="a")
    assert (summary["retried"], summary["vanished"], summary["selected"]) == (28, 2, 30)
    assert fake.entries == []


def test_retry_when_every_post_404s_ends_with_all_vanished_and_bounded(call_hook, fake: FakeDLQ):
    fake.add(3, "a")
    fake.intercept = lambda seen, _: (404, {"error": "gone"}, {}) if seen.method == "POST" else None
    summary = call_hook("dlq_retry", labels="a")
    assert (summary["retried"], summary["vanished"]) == (0, 3)
    assert len([s for s in fake.seen if s.method == "POST"]) == 5  # 3 ids: halved to single ids, 2n - 1 requests
    assert len(fake.ids("a")) == 3


def test_retry_404_from_a_base_url_without_a_dlq_fails_instead_of_passing_as_vanished(call_hook, fake: FakeDLQ):
    fake.intercept = lambda seen, _: (404, {"error": "Not Found"}, {})
    with pytest.raises(QStashRunIncomplete, match="no QStash DLQ API at this base URL"):
        call_hook("dlq_retry", dlq_ids=["d1", "d2", "d3"])
    assert len(fake.seen) == 2


def test_retry_other_client_errors_fail_at_once(call_hook, fake: FakeDLQ):
    fake.script = {1: (400, {"error": "bad header"}, {})}
    with pytest.raises(QStashRunIncomplete, match="400: bad header"):
        call_hook("dlq_retry", labels="a")
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    "body",
    [{"responses": [{"deduplicated": True}]}, {"responses": {}}, {"cursor": "c"}, {"responses": [{"messageId": 3}]}],
)
def test_retry_a_malformed_answer_is_a_clear_error(call_hook, fake: FakeDLQ, body: Any):
    fake.add(1, "a")
    fake.script = {2: (201, body, {})}
    with pytest.raises(QStashRunIncomplete, match="DLQ retry answer"):
        call_hook("dlq_retry", labels="a")


def test_retry_counts_deduplicated_answers(call_hook, fake: FakeDLQ):
    fake.add(2, "a")
    fake.script = {2: (201, {"responses": [{"messageId": "m1", "deduplicated": True}, {"messageId": "m2"}]}, {})}
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
    with pytest.raises(QStashInputError, match=match):
        call_hook("list_dlq", **kwargs)
    assert fake.seen == []


def test_delete_one_entry_sends_its_id_as_one_path_segment(call_hook, fake: FakeDLQ):
    fake.entries = [{"dlqId": "a/b?c", "label": "x", "responseStatus": 500}]
    call_hook("delete_dlq_message", "a/b?c")
    assert fake.seen[0].path == "/v2/dlq/a%2Fb%3Fc"


@pytest.mark.parametrize("dlq_id", ["", " ", ".", "..", "./.", "%2e%2E", "a/.."])
def test_delete_one_refuses_ids_that_collapse_the_path(call_hook, fake: FakeDLQ, dlq_id: str):
    with pytest.raises(QStashInputError) as info:
        call_hook("delete_dlq_message", dlq_id)
    assert str(info.value).startswith("dlq_id"), str(info.value)
    assert fake.seen == []


def test_delete_one_missing_is_a_404_error(call_hook, fake: FakeDLQ):
    with pytest.raises(QStashAPIError, match="404"):
        call_hook("delete_dlq_message", "nope")
