"""
The DLQ runs on today's API (the 2026-12 reference): a filter is an async bulk action followed by id to
``FINISHED`` and confirmed by a round that selects 0; ``dlq_ids`` go to ``/multi`` (one id: the single-id
endpoint); an older server (404 there) gets the deprecated paging API, detected once per run (``mode``).
Both transports (``call_hook``) and the triggerer's path (the trigger over httpx).
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from airflow_qstash.exceptions import QStashAPIError, QStashInputError, QStashRunIncomplete
from airflow_qstash.filters import DLQFilter
from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.inputs import DLQ_MAX_COUNT, retry_overrides
from airflow_qstash.protocol.dlq import read_dlq_action_started, start_dlq_action
from airflow_qstash.protocol.endpoints import DLQ_RETRY_BULK, MAX_URL_LENGTH
from airflow_qstash.runs.common import MAX_ROUNDS_WITHOUT_PROGRESS
from airflow_qstash.runs.dlq import make_run
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from tests.conftest import FAKE_BASE_URL
from tests.doubles.fake_qstash import FakeDLQ


class ListLog:
    """A logger that keeps its %-formatted lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str, *args: Any) -> None:
        self.lines.append(message % args)


def seen(fake: FakeDLQ, method: str, path: str) -> list[list[tuple[str, str]]]:
    return [s.query for s in fake.seen if (s.method, s.path) == (method, path)]


@pytest.fixture
def today(fake: FakeDLQ) -> FakeDLQ:
    fake.legacy = False
    return fake


# --------------------------------------------------------------------------- filters: async bulk actions


@pytest.mark.parametrize("n", [0, 1, 250])
def test_filter_delete_is_one_bulk_action_and_a_confirming_round(call_hook, today: FakeDLQ, n: int):
    today.add(n, "report")
    today.add(5, "other")
    summary = call_hook("dlq_delete", labels="report", batch_size=7)
    assert today.ids("report") == set() and len(today.ids("other")) == 5
    assert (summary["mode"], summary["deleted"], summary["selected"]) == ("bulk_action", n, n)
    starts = seen(today, "DELETE", "/v2/dlq/bulk")
    # n == 0: the first action selects nothing and is its own confirmation
    assert len(starts) == summary["requests"] == summary["rounds"] == (1 if n == 0 else 2)
    assert all(query == [("label", "report")] for query in starts)  # no count, no cursor, no dlqIds
    assert summary["action_ids"] == [a for a in today.actions][: len(starts)]
    assert summary["polls"] == len(starts)
    assert seen(today, "GET", "/v2/dlq") == [] and seen(today, "DELETE", "/v2/dlq") == []  # no paging, no listing


def test_filter_retry_sends_the_overrides_on_the_bulk_request_and_reports_counts_and_action_ids(
    call_hook, today: FakeDLQ
):
    today.add(30, "report")
    headers = retry_overrides(retries=0, delay="2m")
    summary = call_hook("dlq_retry", labels="report", headers=headers)
    assert (summary["mode"], summary["retried"], summary["message_ids"]) == ("bulk_action", 30, None)
    assert len(summary["action_ids"]) == 2
    starts = [s for s in today.seen if s.path == "/v2/dlq/retry/bulk"]
    assert all((s.headers["upstash-retries"], s.headers["upstash-delay"]) == ("0", "120s") for s in starts)
    assert {dlq_id for dlq_id, _ in today.retried} == {f"dlq-report-{i:07d}" for i in range(30)}
    assert all(upstash["upstash-retries"] == "0" for _, upstash in today.retried)


def test_progress_is_polled_and_logged_with_the_action_id(today: FakeDLQ, sync_fake: FakeDLQ):
    today.add(10, "a")
    today.action_rate = 3
    log = ListLog()
    hook = QStashHook()
    run = make_run("delete", DLQFilter.build(labels="a"))
    summary = hook.drive(run.steps(FAKE_BASE_URL, log=log, poll_interval_max=2.0))
    first = summary["action_ids"][0]
    assert summary["deleted"] == 10 and summary["polls"] == math.ceil(10 / 3) + 1
    assert any(f"bulk action {first} started" in line for line in log.lines)
    progress = [line for line in log.lines if line.startswith(f"DLQ delete bulk action {first}:")]
    assert [line.split(": ", 1)[1].split(" (")[0] for line in progress] == [
        "IN_PROGRESS, 3 of 10 processed",
        "IN_PROGRESS, 6 of 10 processed",
        "IN_PROGRESS, 9 of 10 processed",
        "FINISHED, 10 of 10 processed",
    ]
    assert log.lines[-1].endswith("0 matching at its start, 0 reported processed (total 10 deleted confirmed).")


def test_a_rerun_meets_the_running_action_with_identical_filters_and_follows_it(call_hook, today: FakeDLQ):
    today.add(8, "a")
    # an earlier try's action with the same filter, still running on the server (created long ago)
    status, body, _ = today.answer("DELETE", "/v2/dlq/bulk", "label=a", {})
    assert status == 202
    today.seen.clear()
    summary = call_hook("dlq_delete", labels="a")
    assert summary["action_ids"][0] == body["actionId"]
    assert summary["deleted"] == 8 and len(today.actions) == 2  # the joined one, then the confirming round's


def test_a_rerun_logs_that_it_joined(today: FakeDLQ, sync_fake: FakeDLQ):
    today.add(4, "a")
    _, body, _ = today.answer("DELETE", "/v2/dlq/bulk", "label=a", {})
    today.actions[body["actionId"]]["createdAt"] -= 60_000  # the earlier try started it a minute ago
    log = ListLog()
    run = make_run("delete", DLQFilter.build(labels="a"))
    QStashHook().drive(run.steps(FAKE_BASE_URL, log=log))
    assert any(f"bulk action {body['actionId']} created before this run started" in line for line in log.lines)


def test_a_start_answered_200_with_only_an_action_id_is_followed(call_hook, today: FakeDLQ):
    today.start_answer = "id"
    today.add(12, "a")
    assert call_hook("dlq_delete", labels="a")["deleted"] == 12


def test_an_action_past_action_timeout_fails_saying_a_rerun_joins_it(call_hook, today: FakeDLQ):
    today.add(10, "a")
    today.action_rate = 0  # never progresses
    with pytest.raises(QStashRunIncomplete, match=r"past action_timeout=5 s.*running the task again joins it") as info:
        call_hook("dlq_delete", labels="a", action_timeout=5)
    assert info.value.summary["mode"] == "bulk_action" and len(today.ids("a")) == 10


def test_rounds_that_leave_as_much_stop_as_no_progress(call_hook, today: FakeDLQ):
    today.add(6, "a")

    def finishes_without_acting(seen_request: Any, fake: FakeDLQ) -> Any:
        if seen_request.path.startswith("/v2/bulkActions/"):
            action = fake.actions[seen_request.path.rsplit("/", 1)[-1]]
            action.update(state="FINISHED", processed=action["total"], pending=[])
        return None

    today.intercept = finishes_without_acting
    with pytest.raises(QStashRunIncomplete, match="no progress"):
        call_hook("dlq_delete", labels="a")
    assert len(today.actions) == MAX_ROUNDS_WITHOUT_PROGRESS + 1
    assert len(today.ids("a")) == 6


def test_max_requests_bounds_the_bulk_action_starts(call_hook, today: FakeDLQ):
    today.add(3, "a")
    with pytest.raises(QStashRunIncomplete, match=r"max_requests=1 reached before starting the next bulk action"):
        call_hook("dlq_delete", labels="a", max_requests=1)  # the start, then no room for the confirming round


# --------------------------------------------------------------------------- ids: /multi and single


def test_an_id_list_goes_to_multi_split_to_fit_each_part_counted(call_hook, today: FakeDLQ):
    today.add(250, "a")
    today.add(3, "b")
    summary = call_hook("dlq_delete", dlq_ids=sorted(today.ids("a")), batch_size=5)
    parts = seen(today, "DELETE", "/v2/dlq/multi")
    assert [len(p) for p in parts] == [DLQ_MAX_COUNT, DLQ_MAX_COUNT, 50]
    assert all(name == "dlqIds" for part in parts for name, _ in part)
    assert (summary["mode"], summary["deleted"], summary["requests"]) == ("multi", 250, 3)
    assert today.ids() == today.ids("b")


def test_long_ids_are_split_by_url_length(call_hook, today: FakeDLQ):
    today.entries = [{"dlqId": f"{i:03d}-" + "x" * 200, "label": "a", "responseStatus": 500} for i in range(40)]
    call_hook("dlq_delete", dlq_ids=[e["dlqId"] for e in today.entries])
    parts = [s for s in today.seen if s.path == "/v2/dlq/multi"]
    assert len(parts) > 1 and today.entries == []
    for part in parts:
        assert len(FAKE_BASE_URL + part.path + "?" + "&".join(f"dlqIds={v}" for _, v in part.query)) <= MAX_URL_LENGTH


def test_one_id_goes_to_the_single_id_endpoint(call_hook, today: FakeDLQ):
    today.add(2, "a")
    assert call_hook("dlq_delete", dlq_ids=["dlq-a-0000001"])["deleted"] == 1
    assert [(s.method, s.path) for s in today.seen] == [("DELETE", "/v2/dlq/dlq-a-0000001")]
    summary = call_hook("dlq_retry", dlq_ids=["dlq-a-0000000"], headers=retry_overrides(retries=1))
    assert (summary["retried"], summary["message_ids"]) == (1, ["msg-dlq-a-0000000"])
    assert today.seen[-1].path == "/v2/dlq/retry/dlq-a-0000000" and today.seen[-1].headers["upstash-retries"] == "1"


def test_an_id_retry_keeps_the_new_ids_and_skips_vanished_ids(call_hook, today: FakeDLQ):
    today.add(6, "a")
    ids = [*sorted(today.ids("a")), "dlq-gone"]
    summary = call_hook("dlq_retry", dlq_ids=ids, headers=retry_overrides(retries=0))
    assert summary["mode"] == "multi"
    assert sorted(summary["message_ids"]) == sorted(f"msg-{i}" for i in ids[:-1])
    assert (summary["retried"], summary["vanished"]) == (6, 1)
    assert all(s.headers["upstash-retries"] == "0" for s in today.seen if s.method == "POST")
    # the first 404 was told apart from an older server once, by listing bulk actions
    assert len(seen(today, "GET", "/v2/bulkActions")) == 1


# --------------------------------------------------------------------------- an older server: paging


@pytest.mark.parametrize(
    ("action", "kwargs", "detection"),
    [
        ("dlq_delete", {"labels": "a"}, 1),  # /v2/dlq/bulk: 404
        ("dlq_retry", {"labels": "a"}, 1),  # /v2/dlq/retry/bulk: 404
        ("dlq_delete", {"dlq_ids": ["dlq-a-0000000", "dlq-a-0000001"]}, 1),  # /v2/dlq/multi: 404
        ("dlq_retry", {"dlq_ids": ["dlq-a-0000000", "dlq-a-0000001"]}, 2),  # /multi 404, GET /v2/bulkActions 404
    ],
)
def test_an_older_server_gets_the_paging_api_detected_once(call_hook, fake: FakeDLQ, action, kwargs, detection):
    assert fake.legacy
    fake.add(3, "a")
    summary = call_hook(action, **kwargs)
    assert summary["mode"] == "paged" and summary["detection_requests"] == fake.probes == detection
    assert summary["deleted" if action == "dlq_delete" else "retried"] == (3 if "labels" in kwargs else 2)
    assert summary["action_ids"] == []


# --------------------------------------------------------------------------- the triggerer


@pytest.mark.parametrize("action", ["delete", "retry"])
def test_the_trigger_runs_the_bulk_action_and_fires_one_event(async_fake: FakeDLQ, action: str):
    async_fake.legacy = False
    async_fake.add(40, "a")
    async_fake.add(2, "b")
    async_fake.action_rate = 15
    options: dict[str, Any] = {"headers": [["Upstash-Retries", "0"]]} if action == "retry" else {}
    trigger = QStashDLQTrigger(
        action=action,
        qstash_conn_id="qstash_default",
        dlq_filter=DLQFilter.build(labels="a").to_dict(),
        max_requests=10,
        options={**options, "action_timeout": 600.0},
    )

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(drain())
    payload = event.payload
    assert payload["status"] == "success" and payload["mode"] == "bulk_action"
    assert payload["deleted" if action == "delete" else "retried"] == 40
    assert payload["polls"] == math.ceil(40 / 15) + 1 and len(payload["action_ids"]) == 2
    assert async_fake.ids() == async_fake.ids("b")


def test_the_trigger_falls_back_to_paging_on_an_older_server(async_fake: FakeDLQ):
    async_fake.add(5, "a")
    trigger = QStashDLQTrigger(
        action="delete",
        qstash_conn_id="qstash_default",
        dlq_filter=DLQFilter.build(labels="a").to_dict(),
        max_requests=10,
    )

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(drain())
    assert (event.payload["mode"], event.payload["deleted"], event.payload["detection_requests"]) == ("paged", 5, 1)


# --------------------------------------------------------------------------- the wire's readings


@pytest.mark.parametrize(
    "answer",
    [
        {"actionId": "a1"},
        {"actionId": "a1", "kind": "dlqDelete", "state": "IN_PROGRESS", "total": 3, "processed": 0},
        {"actionId": "a1", "kind": "somethingNew", "state": "FINISHED", "extra": [1, 2], "createdAt": 5},
    ],
)
def test_a_bulk_start_answer_is_read_with_extra_fields_and_unknown_kinds(answer: dict[str, Any]):
    assert read_dlq_action_started(answer).action_id == "a1"


@pytest.mark.parametrize("answer", [None, {}, {"actionId": ""}, {"actionId": 3}, {"deleted": 4}, ["a1"]])
def test_a_bulk_start_answer_without_an_action_id_is_a_clear_error(answer: Any):
    with pytest.raises(QStashAPIError, match="no 'actionId'"):
        read_dlq_action_started(answer)


def test_a_filterless_bulk_start_is_refused_unless_retry_all():
    from airflow_qstash.protocol.calls import refuse_unfiltered_bulk_call

    call = next(start_dlq_action(DLQ_RETRY_BULK, []))
    with pytest.raises(QStashInputError, match="every DLQ entry"):
        refuse_unfiltered_bulk_call(call, FAKE_BASE_URL)


# --------------------------------------------------------------------------- the operators


@pytest.mark.parametrize("action", ["delete", "retry"])
def test_the_operator_follows_the_bulk_action_and_its_log_shows_the_action_id_and_progress(
    sync_fake: FakeDLQ, action: str
):
    from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
    from tests.support.dlq_task import TASK_START_MS, ti_context
    from tests.support.task_logs import capture_task_logs

    sync_fake.legacy = False
    sync_fake.add(7, "a")
    sync_fake.add(1, "b")
    sync_fake.action_rate = 4
    cls = QStashDLQDeleteOperator if action == "delete" else QStashDLQRetryOperator
    with capture_task_logs() as logs:
        summary = cls(task_id="t", labels="a", action_timeout="120").execute(ti_context())
    lines = [entry["event"] for entry in logs]
    first = summary["action_ids"][0]
    assert summary["mode"] == "bulk_action" and summary["to_date"] == TASK_START_MS
    assert sync_fake.seen[0].query == [("label", "a"), ("toDate", str(TASK_START_MS))]  # pinned to the task start
    assert any(f"bulk action {first} started" in line for line in lines)
    assert any(f"bulk action {first}: IN_PROGRESS, 4 of 7 processed" in line for line in lines)
    assert any(f"bulk action {first}: FINISHED, 7 of 7 processed" in line for line in lines)
    assert sync_fake.ids() == sync_fake.ids("b")
