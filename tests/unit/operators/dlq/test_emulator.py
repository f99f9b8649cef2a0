"""Both DLQ operators, on the worker and in the trigger, against the emulator's dead-letter queue.

The oracle is exact: the emulator's DLQ and message store are read back after each run. A delete
leaves every entry the filter does not select and nothing else changes; a retry removes exactly the
selected entries from the DLQ and adds exactly one new held message for each (same destination and
labels, the overrides applied), whose ids are the ones the run reports. With faults on (5xx, 429,
dropped connections) the outcome is the same.

Every test runs against both emulator generations (``shared_emulator`` is parametrized): ``actions``, today's
QStash (a filter run is async bulk actions, ``DELETE /v2/dlq/bulk`` / ``POST /v2/dlq/retry/bulk``, each
confirmed by a round that must select 0; ids go to ``/multi``), and ``legacy``, an older server without those
endpoints, where the run falls back (after a 404) to the deprecated paging API: list the selected ids, then
act on them. The outcome (exactly the selected entries gone or retried, bystanders untouched) is the same;
the request counts and what a retry reports differ, and each test says what each generation must show.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from airflow_qstash.exceptions import QStashRunIncomplete
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from qstash_emulator import QStashEmulator
from qstash_emulator.faults import FaultConfig
from tests.conftest import TEST_TOKEN
from tests.support.dlq_dataset import FILTERS, N_MATCHING, run_operator, v2_requests

pytestmark = pytest.mark.timeout(120)

FAULTS = FaultConfig(rate_5xx=0.15, rate_429=0.1, rate_drop=0.1, reset_after_s=0, seed=13)


#: The emulator's server generations (its ``bulk_cancel``): today's API and an older server (paging only).
GENERATIONS = ("actions", "legacy")


@pytest.fixture(scope="module", params=GENERATIONS)
def shared_emulator(request: pytest.FixtureRequest) -> Iterator[QStashEmulator]:
    """One emulator per server generation for the module; every test using it runs on both."""
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel=request.param) as emu:
        yield emu


def is_legacy(emu: QStashEmulator) -> bool:
    """The older server: no ``/bulk``, ``/multi`` nor single-id DLQ routes, so the run pages."""
    return emu.bulk_cancel == "legacy"


# --------------------------------------------------------------------------- delete


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_delete_removes_exactly_the_selected_entries(emu, data, deferrable: bool, faults: FaultConfig | None):
    emu.set_faults(faults)
    op = QStashDLQDeleteOperator(task_id="delete", deferrable=deferrable, **FILTERS)

    summary = run_operator(op, deferrable)

    emu.set_faults(None)
    assert emu.dlq_ids() == data.others
    assert emu.held_ids() == data.held  # nothing published, nothing cancelled
    assert (summary["deleted"], summary["selected"]) == (N_MATCHING, N_MATCHING)
    if is_legacy(emu):
        # one 404 on DELETE /v2/dlq/bulk tells the older server apart; then the listing (100 a page), then
        # the deletes of exactly the listed ids (batch_size=100 a request)
        pages = math.ceil(N_MATCHING / 100)
        assert (summary["mode"], summary["detection_requests"]) == ("paged", 1)
        assert (summary["list_requests"], summary["requests"]) == (pages, 2 * pages)
        answered = [r for r in v2_requests(emu, "DELETE", "/v2/dlq") if r["status"] == 200]
        assert len(answered) == summary["requests"] - summary["list_requests"]
    else:
        # today's API: no listing; one bulk action over the selection, then a confirming round (same
        # filters) whose action selects 0 -- two starts, each answered 202 once (a faulted attempt is
        # sent again by the hook and is not a request of the run)
        assert (summary["mode"], summary["detection_requests"], summary["rounds"]) == ("bulk_action", 0, 2)
        assert (summary["list_requests"], summary["requests"]) == (0, 2)
        answered = [r for r in v2_requests(emu, "DELETE", "/v2/dlq/bulk") if r["status"] == 202]
        assert len(answered) == summary["requests"] == len(summary["action_ids"])
        assert v2_requests(emu, "GET", "/v2/dlq") == [] and v2_requests(emu, "DELETE", "/v2/dlq") == []
    if faults is not None:
        assert any(r["fault"] for r in emu.request_log()), "the fault schedule injected nothing"


def test_delete_by_ids_deletes_those_and_nothing_else(emu, data):
    chosen = [*sorted(data.matching)[:150], "dlq-before"]
    summary = run_operator(QStashDLQDeleteOperator(task_id="delete", dlq_ids=chosen), False)
    assert (summary["deleted"], summary["selected"]) == (151, 151)
    assert emu.dlq_ids() == (data.matching | data.others) - set(chosen)
    assert (summary["requests"], summary["list_requests"]) == (2, 0)  # 100 ids a request: two parts
    if is_legacy(emu):
        # the first /multi part answered 404 (no such route: "entry multi not found"), then DELETE /v2/dlq?dlqIds
        assert (summary["mode"], summary["detection_requests"]) == ("paged", 1)
        assert len(v2_requests(emu, "DELETE", "/v2/dlq")) == 2
    else:
        assert (summary["mode"], summary["detection_requests"]) == ("multi", 0)
        assert len(v2_requests(emu, "DELETE", "/v2/dlq/multi")) == 2
        assert v2_requests(emu, "DELETE", "/v2/dlq") == []


def test_a_bounded_delete_then_a_rerun_ends_exact(emu, data):
    if is_legacy(emu):
        with pytest.raises(Exception, match="max_requests=5 reached"):
            run_operator(QStashDLQDeleteOperator(task_id="delete", batch_size=50, max_requests=5, **FILTERS), False)
        assert len(emu.dlq_ids() & data.matching) == N_MATCHING - 50  # four listing requests, one delete of 50
        summary = run_operator(QStashDLQDeleteOperator(task_id="delete", **FILTERS), False)
        assert summary["deleted"] == N_MATCHING - 50
    else:
        # Today's API has no batch_size (one bulk action takes every matching entry) and max_requests counts
        # starts: the smallest bound that stops the run is 1, which lets the first action run to FINISHED
        # and stops before the confirming round. So every selected entry is already gone, and nothing is
        # confirmed: ``deleted`` is the drop of ``total`` between rounds, and there was one round.
        with pytest.raises(Exception, match="max_requests=1 reached before starting the next bulk") as info:
            run_operator(QStashDLQDeleteOperator(task_id="delete", max_requests=1, **FILTERS), False)
        cause = info.value.__cause__
        assert isinstance(cause, QStashRunIncomplete)
        assert (cause.summary["selected"], cause.summary["deleted"], cause.summary["rounds"]) == (N_MATCHING, 0, 1)
        assert emu.dlq_ids() & data.matching == set()
        summary = run_operator(QStashDLQDeleteOperator(task_id="delete", **FILTERS), False)
        # the re-run's one action selects nothing and is its own confirmation
        assert (summary["deleted"], summary["selected"], summary["requests"]) == (0, 0, 1)
    assert emu.dlq_ids() == data.others


def test_host_filters_never_reach_the_server(emu, data):
    with pytest.raises(Exception, match="DLQ endpoints reject"):
        QStashDLQDeleteOperator(task_id="delete", labels=["report"], hosts=["dest.example"])
    assert emu.request_log() == []


# --------------------------------------------------------------------------- retry


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_retry_reenqueues_exactly_the_selected_entries(emu, data, deferrable: bool, faults: FaultConfig | None):
    emu.set_faults(faults)
    op = QStashDLQRetryOperator(task_id="retry", deferrable=deferrable, override_retries=0, **FILTERS)

    summary = run_operator(op, deferrable)

    emu.set_faults(None)
    assert emu.dlq_ids() == data.others
    new = [m for m in emu.messages("held") if m["messageId"] not in data.held]
    assert len(new) == N_MATCHING
    assert {m["url"] for m in new} == data.urls  # one new message per selected entry
    assert {m["maxRetries"] for m in new} == {0}  # the override applied
    assert (summary["retried"], summary["selected"]) == (N_MATCHING, N_MATCHING)
    assert summary["overrides"] == {"Upstash-Retries": "0"}
    assert (summary["vanished"], summary["not_found_answers"]) == (0, 0)
    if is_legacy(emu):
        # the paging API answers each retry with the new message ids
        assert set(summary["message_ids"]) == {m["messageId"] for m in new}
        assert summary["mode"] == "paged"
        assert summary["requests"] == 2 * math.ceil(N_MATCHING / 100)  # the listing, then the retries of its ids
    else:
        # a bulk action reports counts only, never the new messages' ids: message_ids is None (the new
        # messages are checked above through the emulator's store), and the run reports its action ids
        assert summary["message_ids"] is None
        assert (summary["mode"], summary["rounds"], summary["list_requests"]) == ("bulk_action", 2, 0)
        assert summary["requests"] == 2 == len(summary["action_ids"])  # the bulk retry, the confirming round
        starts = [r for r in v2_requests(emu, "POST", "/v2/dlq/retry/bulk") if r["status"] == 202]
        assert len(starts) == 2
    if faults is not None:
        assert any(r["fault"] for r in emu.request_log()), "the fault schedule injected nothing"


def test_retry_of_ids_some_gone_retries_the_rest_and_counts_the_vanished(emu, data):
    chosen = sorted(data.matching)[:40]
    gone = set(chosen[5:8])
    run_operator(QStashDLQDeleteOperator(task_id="delete", dlq_ids=sorted(gone)), False)
    emu.clear_request_log()

    summary = run_operator(QStashDLQRetryOperator(task_id="retry", dlq_ids=chosen), False)

    assert (summary["retried"], summary["vanished"]) == (37, 3)
    assert emu.dlq_ids() == (data.matching | data.others) - set(chosen)
    new = [m for m in emu.messages("held") if m["messageId"] not in data.held]
    assert {m["url"] for m in new} == {f"https://dest.example/{i}" for i in set(chosen) - gone}
    assert len(new) == 37
    assert summary["selected"] == 40
    if is_legacy(emu):
        assert summary["mode"] == "paged"
        retries = v2_requests(emu, "POST", "/v2/dlq/retry")
        assert len(retries) <= 2 * len(chosen)
        assert len(v2_requests(emu, "GET", "/v2/dlq")) == 1  # the one check that the DLQ API is there
        assert set(summary["message_ids"]) == {m["messageId"] for m in new}
    else:
        # /multi answers 404 when some ids are gone and retries nothing; the part is halved until the gone
        # ids are found alone. The run's first 404 is told apart from an older server with one
        # GET /v2/bulkActions (not GET /v2/dlq)
        assert summary["mode"] == "multi"
        parts = v2_requests(emu, "POST", "/v2/dlq/retry/multi")
        singles = [r for r in emu.request_log() if r["method"] == "POST" and r["path"].startswith("/v2/dlq/retry/dlq-")]
        assert len(parts) + len(singles) <= 2 * len(chosen)
        assert len(v2_requests(emu, "GET", "/v2/bulkActions")) == 1
        assert v2_requests(emu, "GET", "/v2/dlq") == [] and v2_requests(emu, "POST", "/v2/dlq/retry") == []
        assert set(summary["message_ids"]) == {m["messageId"] for m in new}  # /multi answers the new ids


def test_retry_rerun_finds_nothing_left_and_retries_nothing_twice(emu, data):
    run_operator(QStashDLQRetryOperator(task_id="retry", **FILTERS), False)
    again = run_operator(QStashDLQRetryOperator(task_id="retry", **FILTERS), False)
    # one request either way: the listing page that finds nothing (legacy), or the bulk action that selects
    # nothing and is its own confirmation (today's API)
    assert (again["retried"], again["requests"], again["selected"]) == (0, 1, 0)
    assert again["mode"] == ("paged" if is_legacy(emu) else "bulk_action")
    assert len(emu.messages("held")) == len(data.held) + N_MATCHING


def test_an_empty_replay_form_sends_nothing(emu, data):
    op = QStashDLQRetryOperator(
        task_id="retry",
        labels="{{ params.labels }}",
        response_statuses="{{ params.statuses }}",
        optional_filters=["labels", "response_statuses"],
    )
    op.render_template_fields({"params": {"labels": None, "statuses": []}})
    with pytest.raises(Exception, match="retry_all=True"):
        run_operator(op, False)
    assert emu.request_log() == []
    assert emu.dlq_ids() == data.matching | data.others
