"""The DLQ operators' dry run: list what the filters select (count, per status, a bounded sample), act on nothing.

Both paths: the worker (requests hook, ``sync_fake``) and the triggerer (httpx hook, ``async_fake``) against
the same :class:`~tests.doubles.fake_qstash.FakeDLQ`; each test checks the fake's entries and request log, not
only the XCom.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_qstash.filters import DLQFilter
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.runs.dlq_preview import PREVIEW_SAMPLE_SIZE, DLQPreview
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import FakeDLQ
from tests.support.task_logs import capture_task_logs

TASK_START = pendulum.datetime(2026, 11, 2, 1, 0, 0, tz="UTC")
OPERATORS = (QStashDLQDeleteOperator, QStashDLQRetryOperator)


class StateStore:
    """A task state store double that records every call (a dry run must make none)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        self.calls.append("get")
        return default

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        self.calls.append("set")

    def delete(self, key: str) -> None:
        self.calls.append("delete")

    def clear(self) -> None:
        self.calls.append("clear")


def ctx(store: StateStore | None = None, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": SimpleNamespace(start_date=TASK_START), **extra}
    if store is not None:
        context["task_state_store"] = store
    return context


def fill(fake: FakeDLQ) -> set[str]:
    """200 entries that failed with 500 and 50 with 404 (label ``report``), 10 others; returns every id."""
    fake.add(200, "report", 500)
    fake.add(50, "report", 404, start=200)
    fake.add(10, "other", 500)
    for entry in fake.entries:
        entry["url"] = f"https://api.example/hook/{entry['dlqId']}"
        entry["messageId"] = f"msg_{entry['dlqId']}"
    return fake.ids()


def acting_requests(fake: FakeDLQ) -> list[tuple[str, str]]:
    return [(seen.method, seen.path) for seen in fake.seen if seen.method != "GET"]


def check_preview(summary: dict[str, Any], action: str) -> None:
    assert summary["dry_run"] is True and summary["action"] == action
    assert summary["deleted" if action == "delete" else "retried"] == 0
    assert summary["selected"] == 250
    assert summary["by_response_status"] == {"404": 50, "500": 200}
    assert summary["sample_limit"] == PREVIEW_SAMPLE_SIZE
    assert len(summary["sample"]) == PREVIEW_SAMPLE_SIZE
    first = summary["sample"][0]
    assert first["dlq_id"] == "dlq-report-0000000"
    assert first["url"] == "https://api.example/hook/dlq-report-0000000"
    assert first["response_status"] == 500
    assert (summary["list_requests"], summary["requests"]) == (3, 3)  # 250 entries, 100 a page
    json.dumps(summary)  # an XCom value


@pytest.mark.parametrize("cls", OPERATORS)
def test_a_sync_dry_run_lists_counts_and_samples_and_touches_nothing(sync_fake: FakeDLQ, cls: type) -> None:
    before = fill(sync_fake)
    store = StateStore()
    with capture_task_logs() as logs:
        summary = cls(task_id="t", labels="report", dry_run=True).execute(ctx(store))
    check_preview(summary, cls.ACTION)
    assert acting_requests(sync_fake) == []
    assert sync_fake.ids() == before
    assert store.calls == []
    text = "\n".join(str(entry) for entry in logs)
    assert "DRY RUN: 250 entries selected" in text
    assert "'404': 50" in text and "'500': 200" in text
    assert "dlqId=dlq-report-0000000" in text and "a sample of 20 of the 250" in text


@pytest.mark.parametrize(("rendering", "acts"), [("True", False), ("False", True), ("true", False)])
def test_dry_run_renders_from_a_param(sync_fake: FakeDLQ, rendering: str, acts: bool) -> None:
    fill(sync_fake)
    op = QStashDLQDeleteOperator(task_id="t", labels="report", dry_run="{{ params.preview_only }}")
    op.render_template_fields(ctx(params={"preview_only": rendering}))
    summary = op.execute(ctx())
    assert bool(acting_requests(sync_fake)) is acts
    assert summary.get("dry_run", False) is not acts
    assert len(sync_fake.ids()) == (10 if acts else 260)


@pytest.mark.parametrize("value", ["maybe", 2, "{{ params.x }}"])
def test_a_dry_run_that_is_not_a_bool_is_refused_before_any_request(sync_fake: FakeDLQ, value: Any) -> None:
    fill(sync_fake)
    with pytest.raises(AirflowFailException, match="dry_run must be True or False"):
        QStashDLQDeleteOperator(task_id="t", labels="report", dry_run=value).execute(ctx())
    assert sync_fake.seen == []


def test_a_dry_run_is_bounded_by_max_requests(sync_fake: FakeDLQ) -> None:
    before = fill(sync_fake)
    with pytest.raises(AirflowException, match="dry run incomplete: max_requests=2 reached while listing"):
        QStashDLQDeleteOperator(task_id="t", labels="report", dry_run=True, max_requests=2).execute(ctx())
    assert len(sync_fake.seen) == 2 and sync_fake.ids() == before


def test_a_dry_run_of_ids_reports_those_found_and_those_not(sync_fake: FakeDLQ) -> None:
    fill(sync_fake)
    ids = ["dlq-report-0000003", "dlq-report-0000240", "dlq-gone"]
    summary = QStashDLQRetryOperator(task_id="t", dlq_ids=ids, dry_run=True).execute(ctx())
    assert (summary["selected"], summary["not_found"]) == (2, 1)
    assert {item["dlq_id"] for item in summary["sample"]} == set(ids[:2])
    assert acting_requests(sync_fake) == []


def test_sample_text_passes_the_redacting_function(sync_fake: FakeDLQ) -> None:
    fill(sync_fake)
    sync_fake.entries[0]["url"] = f"https://api.example/hook?token={TEST_TOKEN}"
    summary = QStashDLQDeleteOperator(task_id="t", labels="report", dry_run=True).execute(ctx())
    assert TEST_TOKEN not in json.dumps(summary)
    assert summary["sample"][0]["url"].startswith("https://api.example/hook?token=")


@pytest.mark.parametrize("cls", OPERATORS)
def test_a_deferrable_dry_run_defers_a_listing_trigger_and_touches_nothing(async_fake: FakeDLQ, cls: type) -> None:
    before = fill(async_fake)
    store = StateStore()
    op = cls(task_id="t", labels="report", dry_run=True, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(ctx(store))
    assert async_fake.seen == []
    trigger = deferred.value.trigger
    assert isinstance(trigger, QStashDLQTrigger) and trigger.dry_run is True
    path, data = trigger.serialize()
    assert QStashDLQTrigger(**json.loads(json.dumps(data))).serialize() == (path, data)

    async def drain() -> list[Any]:
        return [event async for event in trigger.run()]

    [event] = asyncio.run(drain())
    assert event.payload["status"] == "success"
    summary = cls(task_id="t", labels="report", dry_run=True, deferrable=True).execute_complete(
        ctx(store), event.payload
    )
    check_preview(summary, cls.ACTION)
    assert acting_requests(async_fake) == []
    assert async_fake.ids() == before
    assert store.calls == []


def test_a_deferrable_run_without_dry_run_still_acts(async_fake: FakeDLQ) -> None:
    fill(async_fake)
    with pytest.raises(TaskDeferred) as deferred:
        QStashDLQDeleteOperator(task_id="t", labels="report", deferrable=True).execute(ctx())
    assert deferred.value.trigger.dry_run is False


@pytest.mark.parametrize(("action", "flag"), [("delete", "delete_all"), ("retry", "retry_all")])
def test_a_preview_of_everything_names_the_actions_flag(action: str, flag: str):
    assert DLQPreview(action, DLQFilter.build(select_all=True)).summary()["filters"] == f"ALL DLQ ENTRIES ({flag}=True)"
