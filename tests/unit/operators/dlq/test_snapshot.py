"""
A DLQ run acts on the set that existed when it started (issue 17, item 5), on the worker and in the
trigger, against the emulator's dead-letter queue.

A DLQ entry's ``createdAt`` is the ORIGINAL message's creation time, so the ``toDate`` pin cannot keep out
an old message that fails while the run goes on: 150 such entries used to be deleted (or retried) by the
run. The run now lists the matching ``dlqId``s first and acts on exactly those; the entries that land in
the DLQ after the listing stay, and the requests are the listing pages plus the action requests.

That listing is the deprecated paging API, which a run uses only on a server without today's DLQ endpoints
(``/v2/dlq/bulk``, ``/multi``): so these tests run against the emulator's ``legacy`` generation, explicitly.
On today's API a filter run is async bulk actions, which take their entries when QStash accepts them and
are confirmed by a round that must select 0 (tests/unit/runs/dlq/test_todays_api.py, test_dlq_join_emulator.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.protocol import dlq
from qstash_emulator import QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.support.dlq_dataset import FILTERS, FROM_MS, N_MATCHING, dataset, dlq_entry, run_operator, v2_requests

# ``emu`` and ``data`` (tests/unit/operators/dlq/conftest.py) take this module's emulator, of the legacy
# generation only (``emu`` asks for ``shared_emulator`` by name)


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[QStashEmulator]:
    """An older server (``legacy``: no ``/bulk`` nor ``/multi`` DLQ routes): the runs use the paging API."""
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="legacy") as emu:
        yield emu


pytestmark = pytest.mark.timeout(120)

N_LATE = 150


def late_failures() -> list[dict[str, Any]]:
    """Old messages (inside the window, the selected label and status) that fail while the run goes on."""
    return [dlq_entry(f"dlq-late-{i:04d}", FROM_MS + 500 + i, 500, ["report"]) for i in range(N_LATE)]


@pytest.fixture
def fail_during_the_run(emu: QStashEmulator, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Put :func:`late_failures` in the DLQ just before the run's first delete or retry request."""
    late = late_failures()
    added: list[bool] = []

    def before_first_action(original: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not added:
                added.append(True)
                emu.add_dlq(late)
            return original(*args, **kwargs)

        return wrapped

    monkeypatch.setattr(dlq, "dlq_delete_page", before_first_action(dlq.dlq_delete_page))
    monkeypatch.setattr(dlq, "dlq_retry_page", before_first_action(dlq.dlq_retry_page))
    return {entry["dlqId"] for entry in late}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_delete_leaves_the_entries_that_fail_during_the_run(emu, data, fail_during_the_run, deferrable: bool):
    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", deferrable=deferrable, **FILTERS), deferrable)

    assert emu.dlq_ids() == data.others | fail_during_the_run  # the late failures are all still there
    assert (summary["deleted"], summary["selected"]) == (N_MATCHING, N_MATCHING)
    assert (summary["mode"], summary["detection_requests"]) == ("paged", 1)  # the 404 on DELETE /v2/dlq/bulk
    pages = math.ceil(N_MATCHING / 100)
    assert (summary["list_requests"], summary["requests"]) == (pages, pages + math.ceil(N_MATCHING / 100))
    assert len(v2_requests(emu, "GET", "/v2/dlq")) == pages
    deletes = v2_requests(emu, "DELETE", "/v2/dlq")
    assert len(deletes) == summary["requests"] - pages
    for request in deletes:  # only ids: QStash ignores every other filter next to dlqIds
        assert {name for name, _ in request["query"]} == {"dlqIds", "count"}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_retry_leaves_the_entries_that_fail_during_the_run(emu, data, fail_during_the_run, deferrable: bool):
    op = QStashDLQRetryOperator(task_id="retry", deferrable=deferrable, **FILTERS)

    summary = run_operator(op, deferrable)

    assert emu.dlq_ids() == data.others | fail_during_the_run
    assert (summary["retried"], summary["vanished"]) == (N_MATCHING, 0)
    assert (summary["mode"], summary["detection_requests"]) == ("paged", 1)  # the 404 on POST /v2/dlq/retry/bulk
    new = [m for m in emu.messages("held") if m["messageId"] not in data.held]
    assert {m["url"] for m in new} == data.urls  # none of the late failures was retried
    assert summary["requests"] == 2 * math.ceil(N_MATCHING / 100)


def test_the_next_run_takes_the_late_failures(emu, data, fail_during_the_run):
    run_operator(QStashDLQDeleteOperator(task_id="delete", **FILTERS), False)
    again = run_operator(QStashDLQDeleteOperator(task_id="delete", **FILTERS), False)
    assert again["deleted"] == N_LATE
    assert emu.dlq_ids() == data.others


def test_flow_control_keys_are_matched_on_the_listed_entries(emu):
    """``GET /v2/dlq`` takes no flowControlKey: the run lists the other filters and keeps the matching keys."""
    entries = []
    for i in range(30):
        entry = dlq_entry(f"dlq-fck-{i:03d}", FROM_MS + i, 500, ["report"])
        entry["flowControlKey"] = "k1" if i % 3 == 0 else "k2"
        entries.append(entry)
    emu.add_dlq(entries)

    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", labels="report", flow_control_keys="k1"), False)

    assert summary["deleted"] == 10
    assert emu.dlq_ids() == {e["dlqId"] for e in entries if e["flowControlKey"] == "k2"}
    [listing] = v2_requests(emu, "GET", "/v2/dlq")
    assert "flowControlKey" not in {name for name, _ in listing["query"]}


# --------------------------------------------------------------------------- today's API, for contrast


@pytest.fixture(scope="module")
def todays_emulator() -> Iterator[QStashEmulator]:
    """Today's generation (``actions``): filter runs are async bulk actions."""
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel="actions") as emu:
        yield emu


@pytest.mark.slow  # an emulator server (not one of the fixture names tests/conftest.py marks by itself)
@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_on_todays_api_the_confirming_round_takes_entries_that_fail_during_an_action(
    todays_emulator: QStashEmulator, monkeypatch: pytest.MonkeyPatch, deferrable: bool
):
    """
    Today's API has no listing: QStash takes a bulk action's entries when it accepts it, so entries failing
    while it runs are not in it; the confirming round (same filters) starts after and takes them, and the
    run ends on a round that selects 0. So, unlike the paging run above, the late failures that match ARE
    deleted by this run, and counted (``deleted`` is the drop of ``total`` between rounds): three rounds.
    """
    emu = todays_emulator
    emu.reset()
    monkeypatch.setenv(
        "AIRFLOW_CONN_QSTASH_DEFAULT",
        connection_json(emu.base_url, max_retries=12, backoff_initial=0, backoff_max=0),
    )
    entries, matching = dataset()
    emu.add_dlq(entries)
    others = {entry["dlqId"] for entry in entries} - matching
    late = late_failures()
    starts: list[bool] = []
    original = dlq.start_dlq_action

    def start_then_fail_late(*args: Any, **kwargs: Any) -> Any:
        started = yield from original(*args, **kwargs)
        if not starts:  # the first action is accepted: the late entries fail while it runs
            starts.append(True)
            emu.add_dlq(late)
        return started

    monkeypatch.setattr(dlq, "start_dlq_action", start_then_fail_late)

    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", deferrable=deferrable, **FILTERS), deferrable)

    assert starts == [True]
    assert emu.dlq_ids() == others  # every matching entry, the late ones too, and no bystander
    # ``deleted`` is the drop of ``total`` between rounds (345 -> 150 -> 0): a lower bound of what went, as
    # the totals cannot tell the late entries from leftovers; the 150 late ones are gone (checked above)
    # but not in the count
    assert (summary["mode"], summary["selected"], summary["deleted"]) == ("bulk_action", N_MATCHING, N_MATCHING)
    assert (summary["rounds"], summary["requests"], summary["list_requests"]) == (3, 3, 0)
    assert [a["kind"] for a in emu.bulk_actions()] == ["dlqDelete"] * 3
    assert v2_requests(emu, "GET", "/v2/dlq") == []
