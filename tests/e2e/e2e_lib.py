"""Helpers for the end-to-end tests: message builders, request-log readers, run-answer checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_qstash.emulator import QStashEmulator
from tests.conftest import TEST_TOKEN

BULK_CANCEL = ("DELETE", "/v2/messages")
MS = timedelta(milliseconds=1)


def ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


def message(labels: list[str] | None, created: datetime, **fields: Any) -> dict[str, Any]:
    """A message for :meth:`QStashEmulator.add_messages`."""
    data: dict[str, Any] = {"url": "https://api.example.com/jobs", "createdAt": ms(created), **fields}
    if labels:
        data["labels"] = labels
    return data


def spread(start: datetime, end: datetime, n: int) -> list[datetime]:
    """``n`` moments from ``start`` to ``end`` inclusive, evenly spaced (``n >= 2``)."""
    step = (end - start) / (n - 1)
    return [start + step * i for i in range(n - 1)] + [end]


def seed(emu: QStashEmulator, groups: dict[str, list[dict[str, Any]]]) -> dict[str, set[str]]:
    """Insert each named group of messages; the ids by group."""
    return {name: set(emu.add_messages(messages)) if messages else set() for name, messages in groups.items()}


def requests(emu: QStashEmulator) -> list[dict[str, Any]]:
    """Every ``/v2`` request the emulator answered since the last reset."""
    return emu.request_log()


def bulk_cancel_queries(emu: QStashEmulator) -> list[list[tuple[str, str]]]:
    """The sorted query of each ``DELETE /v2/messages``, in order; fails on any other request."""
    entries = requests(emu)
    others = [(e["method"], e["path"]) for e in entries if (e["method"], e["path"]) != BULK_CANCEL]
    assert not others, f"unexpected requests besides the bulk cancel: {others}"
    return [sorted(e["query"]) for e in entries]


def cancelled_ids(emu: QStashEmulator) -> set[str]:
    return emu.store.message_ids("cancelled")


def only_task(answer: dict[str, Any]) -> dict[str, Any]:
    """The single task of a run's answer."""
    tasks = answer["tasks"]
    assert len(tasks) == 1, tasks
    task: dict[str, Any] = next(iter(tasks.values()))
    return task


def assert_succeeded(answer: dict[str, Any]) -> dict[str, Any]:
    """The run and its task succeeded, the token is nowhere in the output; the task's XCom summary."""
    task = only_task(answer)
    assert (answer["state"], task["state"]) == ("success", "success"), answer["log"][-4000:]
    assert TEST_TOKEN not in answer["log"]
    xcom: dict[str, Any] = task["xcom"]
    assert set(xcom) >= {"cancelled", "batches", "from_date", "to_date", "filters", "duration_seconds"}
    return xcom


def assert_failed(answer: dict[str, Any]) -> None:
    """The run and its task failed after one try, with no XCom; the token is nowhere in the output."""
    task = only_task(answer)
    assert (answer["state"], task["state"], task["try_number"]) == ("failed", "failed", 1), answer["log"][-4000:]
    assert task["xcom"] is None
    assert TEST_TOKEN not in answer["log"]
