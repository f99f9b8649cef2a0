"""
QStashDLQEventTrigger: one event per new batch (all its ids, split above the bound), never twice while it
runs, a repeat after a restart, rate limits and bad answers fire nothing, bounded listing and memory, no
token or body in an event; ``announced_dlq_ids`` and the example DAG's task act on exactly what was announced.

The trigger's loop runs over httpx against :class:`~tests.doubles.fake_qstash.FakeDLQ`; its pauses are recorded
(``_sleep`` replaced), and the loop is stopped after a given number of polls.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_qstash.triggers import dlq_events
from airflow_qstash.triggers.dlq_events import QStashDLQEventTrigger, announced_dlq_ids
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import FakeDLQ
from tests.support.connections import MISSING, serve_connections

REPO = Path(__file__).resolve().parents[3]
RATE_LIMITED = (429, {"error": "too many requests"}, {"Retry-After": "7"})


class Stop(Exception):
    """Ends a trigger's endless loop after the polls a test wants."""


def watch(
    trigger: QStashDLQEventTrigger, polls: int, between: Callable[[int], None] | None = None
) -> tuple[list[dict[str, Any]], list[float]]:
    """
    Run the trigger for ``polls`` polls: returns every event's payload and every pause it took.
    ``between(n)`` runs after the n-th pause (add or remove entries there).
    """
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) >= polls:
            raise Stop
        if between is not None:
            between(len(waits))

    trigger._sleep = sleep  # type: ignore[method-assign]
    payloads: list[dict[str, Any]] = []

    async def run() -> None:
        async for event in trigger.run():
            json.dumps(event.payload)  # what the triggerer stores must be JSON
            payloads.append(event.payload)

    with pytest.raises(Stop):
        asyncio.run(run())
    return payloads, waits


def make(**kwargs: Any) -> QStashDLQEventTrigger:
    kwargs.setdefault("filters", {"labels": ["a"]})
    kwargs.setdefault("poll_interval", 2)
    return QStashDLQEventTrigger(**kwargs)


def ids(fake: FakeDLQ, label: str = "a") -> list[str]:
    return [e["dlqId"] for e in fake.entries if e["label"] == label]


def list_calls(fake: FakeDLQ) -> int:
    return sum(1 for seen in fake.seen if seen.path == "/v2/dlq")


# --------------------------------------------------------------------------- what an event says


def test_one_event_per_new_batch_with_all_ids_count_and_newest_created_at(async_fake: FakeDLQ):
    async_fake.add(3, "a")
    async_fake.add(2, "b")
    for n, entry in enumerate(async_fake.entries):
        entry["createdAt"] = 1_764_907_200_000 + n * 1000
    payloads, waits = watch(make(), polls=3)
    assert payloads == [
        {
            "dlq_ids": ids(async_fake),
            "count": 3,
            "newest_created_at": 1_764_907_202_000,
            "part": 1,
            "parts": 1,
            "listing_complete": True,
        }
    ]
    assert waits == [2.0, 2.0, 2.0]
    assert list_calls(async_fake) == 3
    assert {q for seen in async_fake.seen for q in seen.query} >= {("label", "a"), ("count", "100")}


def test_a_second_burst_fires_one_more_event_with_exactly_the_new_ids(async_fake: FakeDLQ):
    async_fake.add(2, "a")
    first = ids(async_fake)

    def burst(n: int) -> None:
        if n == 2:
            async_fake.add(3, "a", start=100)

    payloads, _ = watch(make(), polls=5, between=burst)
    assert [p["dlq_ids"] for p in payloads] == [first, [i for i in ids(async_fake) if i not in first]]
    assert [p["count"] for p in payloads] == [2, 3]


def test_a_batch_larger_than_the_bound_is_split_into_events_that_carry_every_id(async_fake: FakeDLQ):
    async_fake.add(250, "a")
    payloads, _ = watch(make(max_ids_per_event=100), polls=2)
    assert [(p["count"], p["part"], p["parts"]) for p in payloads] == [(100, 1, 3), (100, 2, 3), (50, 3, 3)]
    announced = [i for p in payloads for i in p["dlq_ids"]]
    assert announced == ids(async_fake)  # all of them, once each, none beyond
    assert all(len(p["dlq_ids"]) == p["count"] for p in payloads)


def test_fewer_than_min_count_wait_and_accumulate(async_fake: FakeDLQ):
    async_fake.add(2, "a")

    def more(n: int) -> None:
        if n == 2:
            async_fake.add(1, "a", start=50)

    payloads, _ = watch(make(min_count=3), polls=4, between=more)
    assert [p["dlq_ids"] for p in payloads] == [ids(async_fake)]


def test_the_token_and_message_bodies_never_enter_an_event_or_the_log(
    async_fake: FakeDLQ, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    async_fake.add(2, "a")
    for entry in async_fake.entries:
        entry.update(
            body=f"card=4111 {TEST_TOKEN}",
            header={"Authorization": [f"Bearer {TEST_TOKEN}"]},
            url="https://example.com/hook?secret=1",
            responseBody="upstream said no",
        )
    async_fake.script[2] = (500, {"error": f"boom {TEST_TOKEN}"}, {})
    with caplog.at_level(logging.DEBUG):
        payloads, _ = watch(make(), polls=3)
    text = json.dumps(payloads)
    for secret in (TEST_TOKEN, "4111", "example.com", "upstream said no"):
        assert secret not in text
    assert set(payloads[0]) == {"dlq_ids", "count", "newest_created_at", "part", "parts", "listing_complete"}
    logged = caplog.text + "".join(capsys.readouterr())
    assert TEST_TOKEN not in logged
    assert "boom" in logged  # the failure was logged, redacted


# --------------------------------------------------------------------------- never twice; restarts


def test_while_it_runs_the_same_entries_are_never_announced_twice(async_fake: FakeDLQ):
    async_fake.add(5, "a")
    payloads, _ = watch(make(), polls=6)
    assert len(payloads) == 1
    assert list_calls(async_fake) == 6


def test_entries_that_left_the_dlq_are_forgotten_after_a_full_listing(async_fake: FakeDLQ):
    async_fake.add(4, "a")
    trigger = make()

    def handled(n: int) -> None:
        if n == 1:
            async_fake.entries = async_fake.entries[2:]  # the run retried two of them

    watch(trigger, polls=3, between=handled)
    assert list(trigger._announced) == ids(async_fake)


def test_memory_is_bounded_even_when_the_listing_never_completes(async_fake: FakeDLQ, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dlq_events, "MAX_REMEMBERED_IDS", 150)
    async_fake.add(300, "a")
    trigger = make(max_pages=1)

    def handled(n: int) -> None:  # a run removes what was announced: the next 100 show up
        async_fake.entries = async_fake.entries[100:]

    payloads, _ = watch(trigger, polls=3, between=handled)
    assert [p["listing_complete"] for p in payloads] == [False, False, True]
    assert len(trigger._announced) == 100  # pruned by the last, complete listing; never above 150
    assert [i for p in payloads for i in p["dlq_ids"]] == [f"dlq-a-{n:07d}" for n in range(300)]


def test_the_bound_forgets_oldest_first(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dlq_events, "MAX_REMEMBERED_IDS", 3)
    trigger = make()
    trigger._remember(["a", "b", "c", "d", "e"])
    assert list(trigger._announced) == ["c", "d", "e"]


def test_after_a_restart_entries_still_there_are_announced_again_and_handled_ones_are_not(async_fake: FakeDLQ):
    async_fake.add(3, "a")
    first = make()
    before, _ = watch(first, polls=1)
    async_fake.entries = async_fake.entries[1:]  # the first run handled one, then the triggerer restarted
    path, kwargs = first.serialize()
    assert path == "airflow_qstash.triggers.dlq_events.QStashDLQEventTrigger"
    restarted = QStashDLQEventTrigger(**json.loads(json.dumps(kwargs)))
    after, _ = watch(restarted, polls=2)
    assert [p["dlq_ids"] for p in before] == [["dlq-a-0000000", "dlq-a-0000001", "dlq-a-0000002"]]
    assert [p["dlq_ids"] for p in after] == [["dlq-a-0000001", "dlq-a-0000002"]]


# --------------------------------------------------------------------------- bounds


def test_a_poll_reads_at_most_max_pages(async_fake: FakeDLQ):
    async_fake.add(350, "a")
    payloads, _ = watch(make(max_pages=2, max_ids_per_event=1000), polls=1)
    assert list_calls(async_fake) == 2
    assert [(p["count"], p["listing_complete"]) for p in payloads] == [(200, False)]


def test_a_cursor_that_does_not_move_ends_the_listing(async_fake: FakeDLQ):
    async_fake.add(2, "a")
    async_fake.intercept = lambda seen, fake: (200, {"messages": fake.entries, "cursor": "same"}, {})
    payloads, _ = watch(make(max_pages=50), polls=1)
    assert list_calls(async_fake) == 2  # the first page, then the same cursor again: stop
    assert [(p["count"], p["listing_complete"]) for p in payloads] == [(2, False)]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        pytest.param({"filters": {"dlq_ids": ["dlq-1"]}}, "does not filter by dlq_ids", id="dlq_ids"),
        pytest.param({"filters": {"flow_control_keys": ["k"]}}, "by flow_control_keys", id="flow_control_keys"),
        pytest.param(
            {"filters": {"hosts": ["h"]}}, r"hosts is not a DLQ filter: QStash.s DLQ endpoints reject", id="hosts"
        ),
        pytest.param({"filters": {"labels": []}}, "labels", id="empty-list"),
        pytest.param({"filters": {"response_statuses": ["5xx"]}}, "response_statuses", id="bad-status"),
        pytest.param({"filters": {"select_all": True}}, "DLQ filters only", id="select_all"),
        pytest.param({"filters": ["labels"]}, "mapping", id="not-a-mapping"),
        pytest.param({"poll_interval": float("nan")}, "finite", id="nan-interval"),
        pytest.param({"poll_interval": float("inf")}, "finite", id="inf-interval"),
        pytest.param({"poll_interval": 0.5}, "from 1 to 3600", id="too-fast"),
        pytest.param({"poll_interval": 3601}, "from 1 to 3600", id="too-slow"),
        pytest.param({"poll_interval": True}, "finite", id="bool-interval"),
        pytest.param({"max_pages": 0}, "max_pages", id="no-pages"),
        pytest.param({"max_pages": 101}, "max_pages", id="too-many-pages"),
        pytest.param({"max_ids_per_event": 1001}, "max_ids_per_event", id="too-many-ids"),
        pytest.param({"min_count": 0}, "min_count", id="min-count-zero"),
        pytest.param({"min_count": 201, "max_pages": 2}, "from 1 to 200", id="min-count-above-listing"),
        pytest.param({"qstash_conn_id": ""}, "qstash_conn_id", id="no-conn-id"),
    ],
)
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs: dict[str, Any], says: str):
    with pytest.raises((ValueError, TypeError), match=says):
        make(**kwargs)


def test_serialize_round_trips_only_the_active_filters_and_no_token():
    trigger = make(filters={"labels": ["a"], "response_statuses": [500, 503]}, min_count=2, max_pages=3)
    path, kwargs = trigger.serialize()
    assert kwargs == {
        "qstash_conn_id": "qstash_default",
        "filters": {"labels": ["a"], "response_statuses": [500, 503]},
        "min_count": 2,
        "poll_interval": 2.0,
        "max_pages": 3,
        "max_ids_per_event": 100,
    }
    assert QStashDLQEventTrigger(**json.loads(json.dumps(kwargs))).serialize() == (path, kwargs)
    assert TEST_TOKEN not in json.dumps(kwargs)


def test_no_filter_watches_every_entry(async_fake: FakeDLQ):
    async_fake.add(1, "a")
    async_fake.add(1, "b")
    payloads, _ = watch(make(filters=None), polls=1)
    assert payloads[0]["dlq_ids"] == ["dlq-a-0000000", "dlq-b-0000000"]
    assert not any(name == "label" for seen in async_fake.seen for name, _ in seen.query)


# --------------------------------------------------------------------------- rate limits, bad answers


def test_a_429_with_rate_limit_headers_is_retried_by_the_hook_within_the_poll(async_fake: FakeDLQ):
    async_fake.add(2, "a")
    async_fake.script[1] = RATE_LIMITED
    payloads, waits = watch(make(), polls=2)
    assert [p["count"] for p in payloads] == [2]
    assert list_calls(async_fake) == 3  # the 429, its retry, the second poll
    assert waits == [2.0, 2.0]


def test_a_429_that_outlasts_the_hooks_retries_fires_nothing_and_waits_what_qstash_asked(async_fake: FakeDLQ):
    async_fake.add(2, "a")
    for n in range(1, 5):  # the connection's max_retries=3: four attempts, all 429
        async_fake.script[n] = RATE_LIMITED
    payloads, waits = watch(make(), polls=2)
    assert waits == [7.0, 2.0]  # Retry-After 7 s, more than the 2 s backoff; then back to the interval
    assert [p["count"] for p in payloads] == [2]


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param((200, "not json", {}), id="not-json"),
        pytest.param((200, {"cursor": None}, {}), id="no-messages"),
        pytest.param((200, {"messages": ["x"]}, {}), id="not-objects"),
        pytest.param((200, {"messages": [], "cursor": 5}, {}), id="cursor-not-text"),
        pytest.param((401, {"error": "bad token"}, {}), id="401"),
        pytest.param((503, {"error": "down"}, {}), id="503"),
    ],
)
def test_a_bad_answer_fires_nothing_backs_off_and_the_next_good_poll_announces_once(
    async_fake: FakeDLQ, answer: tuple[int, Any, dict[str, str]]
):
    async_fake.add(2, "a")
    failing = {"polls": 3}
    async_fake.intercept = lambda seen, fake: answer if failing["polls"] else None

    def failed(n: int) -> None:
        failing["polls"] = max(0, 3 - n)

    payloads, waits = watch(make(), polls=6, between=failed)
    assert [p["count"] for p in payloads] == [2]
    assert waits == [2.0, 4.0, 8.0, 2.0, 2.0, 2.0]  # doubling per failed poll, then the interval again


def test_backoff_is_bounded(monkeypatch: pytest.MonkeyPatch):
    trigger = make(poll_interval=600)
    waits = [trigger._backoff(RuntimeError()) for _ in range(5)]
    assert waits == [600.0, 1200.0, 2400.0, 3600.0, 3600.0]
    huge = SimpleNamespace(wait=86_400.0)
    assert trigger._backoff(huge) == 3600.0  # type: ignore[arg-type]
    assert trigger._backoff(SimpleNamespace(wait=float("inf"))) == 3600.0  # type: ignore[arg-type]


def test_entries_without_a_usable_dlq_id_are_skipped_and_duplicates_counted_once(async_fake: FakeDLQ):
    async_fake.add(2, "a")
    good = list(async_fake.entries)
    bad = [{"label": "a"}, {"dlqId": 7}, {"dlqId": ""}, {"dlqId": "x" * 257}]
    async_fake.intercept = lambda seen, fake: (200, {"messages": [*good, *bad, good[0]]}, {})
    payloads, _ = watch(make(), polls=1)
    assert [p["dlq_ids"] for p in payloads] == [[e["dlqId"] for e in good]]


def test_a_missing_connection_fires_nothing_and_the_trigger_keeps_polling(monkeypatch: pytest.MonkeyPatch):
    serve_connections(monkeypatch, {"qstash_default": MISSING})
    payloads, waits = watch(make(), polls=3)
    assert payloads == []
    assert waits == [2.0, 4.0, 8.0]


# --------------------------------------------------------------------------- the DAG's side


def trigger_event(payload: Any) -> SimpleNamespace:
    return SimpleNamespace(extra={"from_trigger": True, "payload": payload})


def test_announced_ids_are_the_union_of_the_events_in_order():
    events = [
        trigger_event({"dlq_ids": ["d1", "d2"], "count": 2}),
        {"extra": {"from_trigger": True, "payload": {"dlq_ids": ["d2", "d3"]}}},
        SimpleNamespace(extra={"dlq_ids": ["posted-by-hand"]}),  # not from a trigger: announces nothing
        SimpleNamespace(extra=None),
    ]
    assert announced_dlq_ids(events) == ["d1", "d2", "d3"]
    assert announced_dlq_ids([]) == []


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"dlq_ids": []}, {"dlq_ids": "d1"}, {"dlq_ids": ["d1", 2]}, {"dlq_ids": ["x" * 257]}],
)
def test_a_trigger_event_without_a_list_of_ids_is_refused(payload: Any):
    with pytest.raises(ValueError, match="carries no list of DLQ ids"):
        announced_dlq_ids([trigger_event({"dlq_ids": ["ok"]}), trigger_event(payload)])


def _example_task() -> Any:
    from tests.support.example_dags import DAG_FOLDER, DagBag

    dagbag = DagBag(dag_folder=str(DAG_FOLDER / "qstash_dlq_events.py"))
    assert dagbag.import_errors == {}
    return dagbag.dags["qstash_dlq_events"]


def test_the_example_dag_replays_exactly_the_ids_of_its_triggering_events():
    dag = _example_task()
    announce = dag.get_task("announced_ids")
    replay = dag.get_task("replay_announced_entries")
    assert replay.upstream_task_ids == {"announced_ids"}
    asset = object()
    events = {asset: [trigger_event({"dlq_ids": ["d1", "d2"]}), trigger_event({"dlq_ids": ["d3"]})]}
    assert announce.python_callable(triggering_asset_events=events) == ["d1", "d2", "d3"]
    assert replay.override_retries == 0
    assert replay.retry_all is False


def test_the_example_dag_skips_a_run_that_no_event_started():
    from airflow.providers.common.compat.sdk import AirflowSkipException

    announce = _example_task().get_task("announced_ids")
    with pytest.raises(AirflowSkipException):
        announce.python_callable(triggering_asset_events={})


def test_the_example_dag_is_scheduled_on_the_watched_asset_where_airflow_has_watchers():
    dag = _example_task()
    if not dlq_events.EVENT_TRIGGERS_SUPPORTED:
        assert dag.schedule_interval is None  # Airflow 2: no AssetWatcher, so no schedule
        return
    from airflow.sdk import Asset

    [asset] = list(dag.timetable.asset_condition.objects)
    assert isinstance(asset, Asset) and asset.name == "qstash_dlq_billing"
    [watcher] = asset.watchers
    assert isinstance(watcher.trigger, QStashDLQEventTrigger)
    assert watcher.trigger.serialize()[1]["filters"] == {"labels": ["billing"]}
