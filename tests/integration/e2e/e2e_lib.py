"""
Helpers for the end-to-end tests: message builders, request-log readers, run-answer checks.

Two server generations answer a filter cancel (see :mod:`airflow_qstash.runs.bulk_cancel`): a *batched* one
(``count`` honoured: every request is a ``DELETE /v2/messages``) and today's hosted QStash, where a round
is a *bulk action* (one ``DELETE /v2/messages?async=true``, then ``GET /v2/bulkActions/{id}`` until
``FINISHED``). :func:`bulk_cancel_queries` reads the first kind of request log, :func:`bulk_action_rounds`
the second, and :func:`assert_bulk_action_run` checks a whole bulk-action run: the XCom, the request log,
the emulator's actions and the progress lines in the task log, against each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from qstash_emulator import QStashEmulator
from tests.conftest import TEST_TOKEN

BULK_CANCEL = ("DELETE", "/v2/messages")
BULK_ACTION_PATH = "/v2/bulkActions/"
MS = timedelta(milliseconds=1)
#: The progress line the provider logs on every poll of a bulk action (:meth:`BulkCancelRun.poll_line`).
POLL_LINE = re.compile(
    r"Bulk action (?P<action_id>\S+) (?P<state>IN_PROGRESS|FINISHED): (?P<processed>\d+) of (?P<total>\d+) "
    r"processed \((?P<percent>[\d.]+)%\), (?P<rate>\d+) messages/s, about (?P<left>[^.]+) left\."
)


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


def with_async(query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A filter cancel's sorted query as the provider sends it: with ``async=true`` (ignored by a batched server)."""
    return sorted([*query, ("async", "true")])


@dataclass(frozen=True)
class ActionRound:
    """One bulk-action round in the request log: the start's sorted query and the action ids polled after it."""

    query: list[tuple[str, str]]
    polled: list[str]


def bulk_action_rounds(emu: QStashEmulator) -> list[ActionRound]:
    """
    The request log read as bulk-action rounds, in order: each filter cancel and the polls that follow it.

    Fails on any other request, and on a poll before the first start.
    """
    rounds: list[ActionRound] = []
    for entry in requests(emu):
        if (entry["method"], entry["path"]) == BULK_CANCEL:
            rounds.append(ActionRound(sorted(entry["query"]), []))
        elif entry["method"] == "GET" and entry["path"].startswith(BULK_ACTION_PATH):
            assert rounds, f"a poll before any cancel: {entry['path']}"
            assert entry["query"] == [], entry
            rounds[-1].polled.append(entry["path"][len(BULK_ACTION_PATH) :])
        else:
            raise AssertionError(f"unexpected request in a bulk-action run: {entry['method']} {entry['path']}")
    return rounds


@dataclass(frozen=True)
class PollLine:
    """One progress line of the task log."""

    action_id: str
    state: str
    processed: int
    total: int


def poll_lines(log: str) -> list[PollLine]:
    """The bulk-action progress lines of a task log, in order."""
    return [PollLine(m["action_id"], m["state"], int(m["processed"]), int(m["total"])) for m in POLL_LINE.finditer(log)]


def action_filter(query: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The ``filter`` object QStash records for a filter cancel with this query (``count``, ``async`` left out)."""
    result: dict[str, list[str]] = {}
    for name, value in query:
        if name not in ("count", "async"):
            result.setdefault(name, []).append(value)
    return result


def assert_bulk_action_run(
    emu: QStashEmulator,
    answer: dict[str, Any],
    xcom: dict[str, Any],
    query: list[tuple[str, str]],
    n: int,
    *,
    earlier_actions: Collection[str] = (),
) -> None:
    """
    A run against today's QStash: one bulk action over the ``n`` matching messages, followed to ``FINISHED``,
    then a confirming one that finds nothing; every request carries ``query``. The emulator's request log
    holds this run's requests only; ``earlier_actions`` are the ids of the bulk actions it held before.

    Checked against each other: the XCom (``mode``, ``action_ids``, ``cancelled``, ``batches``), the request
    log (a start, one or more polls of that start's action, a second start, its polls, nothing else), the
    emulator's record of each action (state, total, processed, filter) and the task log (one progress line
    per poll, ``IN_PROGRESS`` until the last, which reports the action ``FINISHED``, all processed).
    """
    assert xcom["mode"] == "bulk_action", xcom
    assert (xcom["cancelled"], xcom["batches"]) == (n, 2), xcom
    action_ids = xcom["action_ids"]
    assert len(action_ids) == 2 and action_ids[0] != action_ids[1], action_ids

    rounds = bulk_action_rounds(emu)
    assert [r.query for r in rounds] == [query, query]
    for action_id, round_ in zip(action_ids, rounds, strict=True):
        assert round_.polled and set(round_.polled) == {action_id}, (action_id, round_.polled)

    actions = {a["actionId"]: a for a in emu.bulk_actions() if a["actionId"] not in earlier_actions}
    assert set(actions) == set(action_ids)
    for action_id, total in zip(action_ids, (n, 0), strict=True):
        action = actions[action_id]
        assert (action["state"], action["total"], action["processed"]) == ("FINISHED", total, total), action
        assert action["filter"] == action_filter(query), action

    lines = poll_lines(answer["log"])
    for action_id, round_, total in zip(action_ids, rounds, (n, 0), strict=True):
        seen = [line for line in lines if line.action_id == action_id]
        assert len(seen) == len(round_.polled), (action_id, seen, round_.polled)
        assert [line.state for line in seen] == ["IN_PROGRESS"] * (len(seen) - 1) + ["FINISHED"], seen
        assert (seen[-1].processed, seen[-1].total) == (total, total), seen
        assert [line.processed for line in seen] == sorted(line.processed for line in seen), seen


def assert_batched_run(
    emu: QStashEmulator, xcom: dict[str, Any], query: list[tuple[str, str]], n: int, batch: int
) -> None:
    """A run against a server that honours ``count``: ceil(n / batch) batches, then one that cancels zero."""
    batches = math.ceil(n / batch) + 1
    assert (xcom["mode"], xcom["action_ids"]) == ("batched", []), xcom
    assert (xcom["cancelled"], xcom["batches"]) == (n, batches), xcom
    assert bulk_cancel_queries(emu) == [query] * batches
    assert emu.bulk_actions() == []


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
    keys = {"cancelled", "batches", "mode", "action_ids", "from_date", "to_date", "filters", "duration_seconds"}
    assert set(xcom) >= keys, xcom
    return xcom


def assert_failed(answer: dict[str, Any]) -> None:
    """The run and its task failed after one try, with no XCom; the token is nowhere in the output."""
    task = only_task(answer)
    assert (answer["state"], task["state"], task["try_number"]) == ("failed", "failed", 1), answer["log"][-4000:]
    assert task["xcom"] is None
    assert TEST_TOKEN not in answer["log"]
