"""
Bulk cancel against today's QStash (issue 12 item 1), on both hooks: ``async=true`` on filter cancels, the
two answer shapes, joining an identical running action after a 412 or a header-less 429, the bounded retry
of a start that conflicts with nothing to join, and reading and listing bulk actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashInputError, QStashRetryableError
from airflow_qstash.filters import BulkCancelFilter
from airflow_qstash.protocol.messages import ActionStarted, BatchCancelled, BulkAction
from airflow_qstash.runs.join import CONFLICT_ATTEMPTS, CONFLICT_BACKOFF
from tests.doubles.fake_qstash import Answer, HookClient, Sent
from tests.support.clock import pin_wall_clock

BULK = "/v2/messages"
ACTIONS = "/v2/bulkActions"
IN_PROGRESS_QUERY = "count=1000&state=IN_PROGRESS"

#: The filter most tests cancel with, and the same filter as QStash reports it on a bulk action.
OURS = BulkCancelFilter.build(labels=["a", "b"], queue_names="q")
OURS_QUERY = "queueName=q&label=a&label=b"


def action(action_id: str, state: str | None = "IN_PROGRESS", **fields: Any) -> dict[str, Any]:
    """A ``BulkAction`` object as QStash returns it."""
    return {
        "actionId": action_id,
        "kind": "cancel",
        "state": state,
        "total": 10,
        "processed": 3,
        "createdAt": 1_767_225_600_000,
        "filter": {"queueName": ["q"], "label": ["a", "b"]},
        **fields,
    }


def pages(
    by_cursor: dict[str | None, dict[str, Any]], expected_base: str = IN_PROGRESS_QUERY
) -> Callable[[Sent], Answer]:
    """A listing that answers by the request's ``cursor``; every request must carry ``expected_base`` first."""

    def answer(sent: Sent) -> Answer:
        params = parse_qsl(sent.query)
        cursor = dict(params).get("cursor")
        base = "&".join(f"{name}={value}" for name, value in params if name != "cursor")
        assert base == expected_base, sent.query
        return Answer(200, by_cursor[cursor])

    return answer


def deletes(client: HookClient) -> list[Sent]:
    return client.server.calls("DELETE", BULK)


def listings(client: HookClient) -> list[str]:
    return [sent.query for sent in client.server.calls("GET", ACTIONS)]


# --------------------------------------------------------------------------- starting a bulk cancel


@pytest.mark.parametrize(
    ("bulk_filter", "count", "query"),
    [
        pytest.param(OURS, None, f"{OURS_QUERY}&async=true", id="no-count"),
        pytest.param(OURS, 100, f"{OURS_QUERY}&count=100&async=true", id="count-then-async"),
        pytest.param(BulkCancelFilter.build(cancel_all=True), 500, "count=500&async=true", id="cancel-all"),
    ],
)
def test_a_filter_cancel_asks_for_a_bulk_action(client, bulk_filter, count, query):
    client.server.route("DELETE", BULK, Answer(202, {"actionId": "act_1"}))
    assert client.run("bulk_cancel_by_filter", bulk_filter, count) == ActionStarted("act_1", joined=False)
    assert [sent.query for sent in client.server.sent] == [query]
    assert client.sleeps == []


@pytest.mark.parametrize("count", [None, 500])
def test_a_cancel_by_ids_stays_synchronous(client, count):
    client.server.route("DELETE", BULK, Answer(200, {"cancelled": 2}))
    answer = client.run("bulk_cancel_by_filter", BulkCancelFilter.build(message_ids=["m1", "m2"]), count)
    assert answer == BatchCancelled(2)
    expected = "messageIds=m1&messageIds=m2" + ("" if count is None else f"&count={count}")
    assert [sent.query for sent in client.server.sent] == [expected]


def test_a_legacy_server_answers_a_batch(client):
    client.server.route("DELETE", BULK, Answer(200, {"cancelled": 7}))
    assert client.run("bulk_cancel_by_filter", OURS, 100) == BatchCancelled(7)
    assert len(client.server.sent) == 1


def test_an_action_id_wins_over_a_count_in_the_same_answer(client):
    client.server.route("DELETE", BULK, Answer(202, {"actionId": "act_9", "cancelled": 0}))
    assert client.run("bulk_cancel_by_filter", OURS) == ActionStarted("act_9")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"total": 5}, id="total-only"),
        pytest.param({}, id="empty-object"),
        pytest.param({"actionId": ""}, id="blank-action-id"),
        pytest.param({"actionId": 7}, id="numeric-action-id"),
        pytest.param({"actionId": None, "processed": 1}, id="null-action-id"),
        pytest.param([], id="list"),
        pytest.param("accepted", id="string"),
    ],
)
def test_an_answer_with_neither_an_action_nor_a_count_is_a_clear_error(client, body):
    client.server.route("DELETE", BULK, Answer(202, body))
    with pytest.raises(QStashAPIError, match="neither an 'actionId' nor a 'cancelled' count"):
        client.run("bulk_cancel_by_filter", OURS)
    assert len(client.server.sent) == 1
    assert client.sleeps == []


# --------------------------------------------------------------------------- joining a running action


CONFLICTS = [
    pytest.param(Answer(412, {"error": "a bulk action with the same filter is in progress"}), id="412"),
    pytest.param(Answer(429, {"error": "still cancelling in the background"}), id="429-without-headers"),
]


@pytest.mark.parametrize("conflict", CONFLICTS)
def test_a_conflict_joins_the_running_action_with_our_filter(client, conflict):
    client.server.route("DELETE", BULK, conflict)
    not_ours = [
        action("act_subset", filter={"queueName": ["q"], "label": ["a"]}),
        action("act_superset", filter={"queueName": ["q"], "label": ["a", "b", "c"]}),
        action("act_more_keys", filter={"queueName": ["q"], "label": ["a", "b"], "fromDate": ["1704067200000"]}),
        action("act_other_queue", filter={"queueName": ["q2"], "label": ["a", "b"]}),
    ]
    client.server.route(
        "GET",
        ACTIONS,
        pages(
            {
                None: {"bulkActions": not_ours[:2], "cursor": "c1"},
                "c1": {"bulkActions": [], "cursor": "c2"},  # an empty page before the end
                # ours, with its values in another order and comma-joined as QStash may report them
                "c2": {
                    "bulkActions": [*not_ours[2:], action("act_ours", filter={"label": ["b,a"], "queueName": ["q"]})]
                },
            }
        ),
    )
    assert client.run("bulk_cancel_by_filter", OURS) == ActionStarted("act_ours", joined=True)
    assert len(deletes(client)) == 1
    assert listings(client) == [IN_PROGRESS_QUERY, f"{IN_PROGRESS_QUERY}&cursor=c1", f"{IN_PROGRESS_QUERY}&cursor=c2"]
    assert client.sleeps == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Burst-RateLimit-Limit": "100", "Burst-RateLimit-Remaining": "0", "Burst-RateLimit-Reset": "+2"}),
        pytest.param({"Burst-RateLimit-Reset": "+2"}, id="burst-reset-only"),
        pytest.param({"RateLimit-Limit": "1000", "RateLimit-Remaining": "0", "RateLimit-Reset": "+2"}, id="daily"),
        pytest.param({"Retry-After": "2"}, id="retry-after"),
    ],
)
def test_a_429_with_rate_limit_headers_is_a_rate_limit_not_a_conflict(client, headers, monkeypatch):
    pinned = pin_wall_clock(monkeypatch)
    now = int(pinned)
    headers = {name: str(now + 2) if value == "+2" else value for name, value in headers.items()}
    client.server.route(
        "DELETE", BULK, Answer(429, {"error": "too many requests"}, headers=headers), Answer(202, {"actionId": "act_1"})
    )
    client.server.route("GET", ACTIONS, Answer(200, {"bulkActions": [action("act_ours")]}))
    assert client.run("bulk_cancel_by_filter", OURS) == ActionStarted("act_1", joined=False)
    assert len(deletes(client)) == 2
    assert listings(client) == []
    assert len(client.sleeps) == 1
    # QStash's own reset (+ up to 0.1 s jitter), not a conflict pause
    wait = 2.0 if "Retry-After" in headers else now + 2 - pinned
    assert wait <= client.sleeps[0] <= wait + 0.1


def test_a_conflict_with_nothing_to_join_pauses_and_starts_again(client):
    client.server.route("DELETE", BULK, Answer(412, {"error": "conflict"}), Answer(202, {"actionId": "act_2"}))
    client.server.route("GET", ACTIONS, Answer(200, {"bulkActions": [action("act_other", filter={"label": ["z"]})]}))
    assert client.run("bulk_cancel_by_filter", OURS) == ActionStarted("act_2", joined=False)
    assert len(deletes(client)) == 2
    assert listings(client) == [IN_PROGRESS_QUERY]
    assert client.sleeps == [CONFLICT_BACKOFF]


def test_a_conflict_that_never_clears_gives_up_after_a_bounded_number_of_starts(client):
    client.server.route("DELETE", BULK, Answer(412, {"error": "precondition failed"}))
    client.server.route("GET", ACTIONS, Answer(200, {"bulkActions": []}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", OURS)
    message = str(info.value)
    assert "412" in message
    assert "precondition failed" in message
    assert f"tried {CONFLICT_ATTEMPTS} times" in message
    assert "no bulk action with this filter" in message
    assert not isinstance(info.value, QStashRetryableError)
    assert info.value.http_status == 412
    assert len(deletes(client)) == CONFLICT_ATTEMPTS
    assert listings(client) == [IN_PROGRESS_QUERY] * CONFLICT_ATTEMPTS
    # pauses come between the starts (none after the last), back off from CONFLICT_BACKOFF, and stay bounded
    assert len(client.sleeps) == CONFLICT_ATTEMPTS - 1
    assert client.sleeps[0] == CONFLICT_BACKOFF
    assert client.sleeps == sorted(client.sleeps)
    assert max(client.sleeps) <= client.read_config().poll_interval_max


def test_a_412_on_a_cancel_by_ids_is_an_error_not_a_join(client):
    client.server.route("DELETE", BULK, Answer(412, {"error": "precondition failed"}))
    client.server.route("GET", ACTIONS, Answer(200, {"bulkActions": [action("act_ours")]}))
    with pytest.raises(QStashAPIError) as info:
        client.run("bulk_cancel_by_filter", BulkCancelFilter.build(message_ids=["m1"]))
    assert info.value.http_status == 412
    assert len(client.server.sent) == 1
    assert listings(client) == []


def test_a_header_less_429_on_a_cancel_by_ids_is_retried_as_a_rate_limit(client):
    client.server.route("DELETE", BULK, Answer(429, {"error": "slow down"}), Answer(200, {"cancelled": 1}))
    assert client.run("bulk_cancel_by_filter", BulkCancelFilter.build(message_ids=["m1"])) == BatchCancelled(1)
    assert len(deletes(client)) == 2
    assert listings(client) == []
    assert len(client.sleeps) == 1


def test_a_malformed_listing_while_joining_is_a_clear_error(client):
    client.server.route("DELETE", BULK, Answer(412, {"error": "conflict"}))
    client.server.route("GET", ACTIONS, Answer(200, {"actions": []}))
    with pytest.raises(QStashAPIError, match="no 'bulkActions' array"):
        client.run("bulk_cancel_by_filter", OURS)
    assert len(deletes(client)) == 1


# --------------------------------------------------------------------------- get_bulk_action


def test_get_bulk_action_reads_every_field(client):
    body = action("act_1", state="FINISHED", total=10, processed=10, completedAt=1_767_225_660_000)
    client.server.route("GET", f"{ACTIONS}/act_1", Answer(200, body))
    got = client.run("get_bulk_action", "act_1")
    assert got == BulkAction(
        action_id="act_1",
        state="FINISHED",
        total=10,
        processed=10,
        created_at=1_767_225_600_000,
        completed_at=1_767_225_660_000,
        filter={"label": ("a", "b"), "queueName": ("q",)},
    )
    assert got.finished
    assert [(sent.method, sent.path, sent.query) for sent in client.server.sent] == [("GET", f"{ACTIONS}/act_1", "")]


def test_get_bulk_action_in_progress(client):
    client.server.route("GET", f"{ACTIONS}/act_1", Answer(200, action("act_1")))
    got = client.run("get_bulk_action", "act_1")
    assert (got.state, got.total, got.processed, got.completed_at, got.finished) == ("IN_PROGRESS", 10, 3, None, False)


@pytest.mark.parametrize(
    ("answer", "fragment"),
    [
        pytest.param(Answer(200, []), "no 'actionId'", id="list"),
        pytest.param(Answer(200, {}), "no 'actionId'", id="empty"),
        pytest.param(Answer(200, action("act_1", actionId=5)), "no 'actionId'", id="numeric-id"),
        pytest.param(Answer(200, action("act_1", state="DONE")), "unknown state 'DONE'", id="unknown-state"),
        pytest.param(Answer(200, action("act_1", state=None)), "unknown state None", id="no-state"),
        pytest.param(Answer(200, action("act_1", total=-1)), "'total'", id="negative-total"),
        pytest.param(Answer(200, action("act_1", total="10")), "'total'", id="text-total"),
        pytest.param(Answer(200, action("act_1", processed=True)), "'processed'", id="bool-processed"),
        pytest.param(Answer(200, action("act_1", filter=["label=a"])), "malformed filter", id="list-filter"),
        pytest.param(Answer(200, text="<html>ok</html>"), "not JSON", id="html"),
        pytest.param(Answer(404, {"error": "bulk action not found"}), "404: bulk action not found", id="404"),
    ],
)
def test_get_bulk_action_refuses_a_malformed_answer(client, answer, fragment):
    client.server.route("GET", f"{ACTIONS}/act_1", answer)
    with pytest.raises(QStashAPIError, match=fragment):
        client.run("get_bulk_action", "act_1")
    assert len(client.server.sent) == 1
    assert client.sleeps == []


def test_get_bulk_action_retries_a_5xx_like_every_call(client):
    client.server.route("GET", f"{ACTIONS}/act_1", Answer(503, {"error": "busy"}), Answer(200, action("act_1")))
    assert client.run("get_bulk_action", "act_1").action_id == "act_1"
    assert len(client.server.sent) == 2
    assert len(client.sleeps) == 1


# --------------------------------------------------------------------------- list_bulk_actions


@pytest.mark.parametrize(
    ("state", "base"),
    [(None, "count=1000"), ("IN_PROGRESS", IN_PROGRESS_QUERY), ("FINISHED", "count=1000&state=FINISHED")],
)
def test_list_bulk_actions_pages_through_short_and_empty_pages(client, state, base):
    client.server.route(
        "GET",
        ACTIONS,
        pages(
            {
                None: {"bulkActions": [action("a1"), action("a2")], "cursor": "c1"},
                "c1": {"bulkActions": [], "cursor": "c2"},
                "c2": {"bulkActions": [action("a3", state="FINISHED", processed=10)], "cursor": "c3"},
                "c3": {"bulkActions": [], "cursor": ""},  # an empty cursor ends the listing too
            },
            expected_base=base,
        ),
    )
    got = client.run("list_bulk_actions", state)
    assert [item.action_id for item in got] == ["a1", "a2", "a3"]
    assert all(isinstance(item, BulkAction) for item in got)
    assert listings(client) == [base, f"{base}&cursor=c1", f"{base}&cursor=c2", f"{base}&cursor=c3"]


def test_list_bulk_actions_with_one_page(client):
    client.server.route("GET", ACTIONS, Answer(200, {"bulkActions": [action("a1")]}))
    assert [item.action_id for item in client.run("list_bulk_actions")] == ["a1"]
    assert listings(client) == ["count=1000"]


@pytest.mark.parametrize(
    ("next_cursor", "requests_before_error"),
    [
        pytest.param({None: "c1", "c1": "c1"}, 2, id="repeated"),
        pytest.param({None: "c1", "c1": "c2", "c2": "c1"}, 3, id="cycle"),
    ],
)
def test_list_bulk_actions_refuses_a_cursor_seen_before(client, next_cursor, requests_before_error):
    def answer(sent: Sent) -> Answer:
        if len(listings(client)) > 5:  # keep a failing run short: a cycle would otherwise go on for many pages
            return Answer(400, {"error": "the listing went on past a cursor it had already followed"})
        return Answer(200, {"bulkActions": [], "cursor": next_cursor[dict(parse_qsl(sent.query)).get("cursor")]})

    client.server.route("GET", ACTIONS, answer)
    with pytest.raises(QStashAPIError, match="same cursor twice"):
        client.run("list_bulk_actions")
    assert len(listings(client)) == requests_before_error


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-array"),
        pytest.param({"bulkActions": {"a1": {}}}, id="object-not-array"),
        pytest.param([], id="list"),
        pytest.param({"bulkActions": [{"actionId": "a1"}]}, id="item-without-state"),
    ],
)
def test_list_bulk_actions_refuses_a_malformed_page(client, body):
    client.server.route("GET", ACTIONS, Answer(200, body))
    with pytest.raises(QStashAPIError):
        client.run("list_bulk_actions")
    assert len(client.server.sent) == 1


@pytest.mark.parametrize("state", ["RUNNING", "in_progress", ""])
def test_list_bulk_actions_refuses_an_unknown_state_before_any_request(client, state):
    with pytest.raises(QStashInputError, match="state must be one of"):
        client.run("list_bulk_actions", state)
    assert client.server.sent == []
