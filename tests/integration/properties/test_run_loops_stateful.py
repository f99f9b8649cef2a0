"""
A stateful property of the run loops (issue #17.11) against the in-process emulator, with random faults.

A :class:`~hypothesis.stateful.RuleBasedStateMachine` adds held messages and DLQ entries (each with one
label of a few), switches the emulator's faults (429 burst and daily, 5xx, dropped connections, partial
batches, spurious 412s, lost action starts, bulk actions that leave part of their snapshot) and runs the
bulk cancel, DLQ delete and DLQ retry tasks over a drawn set of labels, on the sync or the deferrable path.
After every task an oracle, kept by the machine itself, must equal the emulator: exactly the selected
messages/entries are gone (a retried entry became one held message to its URL), nothing else was touched,
every bulk request carried the task's label filter, and the task ended (with success, re-run like Airflow
would after connection give-ups, at most MAX_TASK_RUNS times).

Slow (an emulator server): ``make test`` runs the ``ci`` profile (a few short programs, derandomized);
``HYPOTHESIS_PROFILE=soak`` runs many more.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from qstash_emulator import FaultConfig, InProcessEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.reliability.soak_lib import ACTION_RATE, SYNC_WAIT, TASK_START_MS, conn_env, gave_up, ti_context
from tests.support.trigger_events import first_event

pytestmark = pytest.mark.slow

CONN_ID = "qstash_prop_stateful"
LABELS = ("alpha", "beta", "gamma", "delta")
MAX_TASK_RUNS = 8
#: Quick retries; a daily 429 gives up at once (max_rate_limit_wait 0) and the task is re-run.
RETRIES = {"max_retries": 6, "backoff_initial": 0, "backoff_max": 0, "timeout": 10, "max_rate_limit_wait": 2}

faults = st.builds(
    FaultConfig,
    rate_429=st.sampled_from([0.0, 0.1, 0.25]),
    rate_429_daily=st.sampled_from([0.0, 0.05]),
    rate_5xx=st.sampled_from([0.0, 0.1, 0.25]),
    rate_drop=st.sampled_from([0.0, 0.1]),
    rate_partial=st.sampled_from([0.0, 0.2, 0.5]),
    rate_spurious_412=st.sampled_from([0.0, 0.2]),
    rate_start_lost=st.sampled_from([0.0, 0.2]),
    rate_action_partial=st.sampled_from([0.0, 0.3, 0.6]),
    seed=st.integers(0, 2**16),
    reset_after_s=st.just(0),
)
label_sets = st.sets(st.sampled_from(LABELS), min_size=1, max_size=2).map(sorted)


def run_task(cls: type, kwargs: dict[str, Any], deferrable: bool) -> dict[str, Any]:
    """Run one task like Airflow: execute (defer, trigger, resume); re-run it after a connection give-up."""
    for attempt in range(MAX_TASK_RUNS):
        op = cls(task_id="stateful", qstash_conn_id=CONN_ID, deferrable=deferrable, **kwargs)
        try:
            try:
                return dict(op.execute(ti_context()))
            except TaskDeferred as deferred:
                _, trigger_kwargs = deferred.trigger.serialize()
                trigger = type(deferred.trigger)(**json.loads(json.dumps(trigger_kwargs)))
                event = asyncio.run(asyncio.wait_for(first_event(trigger), timeout=120))
                return dict(getattr(op, deferred.method_name)(ti_context(), event))
        except AirflowException as err:
            if not gave_up(err) or attempt == MAX_TASK_RUNS - 1:
                raise
    raise AssertionError("unreachable")


class RunLoops(RuleBasedStateMachine):
    """The emulator and the oracle: what is held (id -> label), what is in the DLQ (id -> label, URL)."""

    emu: Any = None  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.emu.reset()
        self.emu.set_faults(None)
        self.held: dict[str, str] = {}
        self.cancelled: set[str] = set()
        self.dlq: dict[str, tuple[str, str]] = {}
        self.retried: set[str] = set()
        self.serial = 0

    # ------------------------------------------------------------------ the world

    @rule(label=st.sampled_from(LABELS), n=st.integers(1, 40))
    def add_messages(self, label: str, n: int) -> None:
        created = [TASK_START_MS - 1_000 * (self.serial + i + 1) for i in range(n)]
        ids = self.emu.add_messages(
            [{"url": f"https://consumer.example/{label}", "labels": [label], "createdAt": t} for t in created]
        )
        self.serial += n
        self.held.update(dict.fromkeys(ids, label))

    @rule(label=st.sampled_from(LABELS), n=st.integers(1, 30), status=st.sampled_from([404, 500, 503]))
    def add_dlq_entries(self, label: str, n: int, status: int) -> None:
        entries = []
        for _ in range(n):
            self.serial += 1
            dlq_id = f"dlq_{self.serial}"
            url = f"https://consumer.example/{label}/{self.serial}"
            entries.append(
                {
                    "dlqId": dlq_id,
                    "messageId": f"msg_dlq_{self.serial}",
                    "url": url,
                    "labels": [label],
                    "createdAt": TASK_START_MS - 1_000 * self.serial,
                    "responseStatus": status,
                    "maxRetries": 3,
                }
            )
            self.dlq[dlq_id] = (label, url)
        self.emu.add_dlq(entries)

    @rule(config=st.one_of(st.none(), faults))
    def set_faults(self, config: FaultConfig | None) -> None:
        self.emu.set_faults(config)

    # ------------------------------------------------------------------ the tasks

    @rule(labels=label_sets, deferrable=st.booleans())
    def bulk_cancel(self, labels: list[str], deferrable: bool) -> None:
        selected = {i for i, label in self.held.items() if label in labels}
        self.emu.clear_request_log()
        summary = run_task(QStashBulkCancelOperator, {"labels": labels, "batch_size": 25}, deferrable)
        self.emu.set_faults(None)
        for i in selected:
            del self.held[i]
        self.cancelled |= selected
        self.check_filtered(("DELETE", "/v2/messages"), labels)
        # The count is what went: never more than the selection (a lost answer may make it less).
        assert summary["cancelled"] <= len(selected), summary

    @rule(labels=label_sets, deferrable=st.booleans())
    def dlq_delete(self, labels: list[str], deferrable: bool) -> None:
        selected = {i for i, (label, _) in self.dlq.items() if label in labels}
        self.emu.clear_request_log()
        summary = run_task(QStashDLQDeleteOperator, {"labels": labels, "batch_size": 10}, deferrable)
        self.emu.set_faults(None)
        for i in selected:
            del self.dlq[i]
        self.check_filtered(("DELETE", "/v2/dlq"), labels)
        assert summary["deleted"] <= len(selected), summary

    @rule(labels=label_sets, deferrable=st.booleans())
    def dlq_retry(self, labels: list[str], deferrable: bool) -> None:
        selected = {i: self.dlq[i] for i, (label, _) in self.dlq.items() if label in labels}
        before = self.emu.held_ids()
        self.emu.clear_request_log()
        run_task(QStashDLQRetryOperator, {"labels": labels}, deferrable)
        self.emu.set_faults(None)
        for i in selected:
            del self.dlq[i]
        new = [m for m in self.emu.messages("held") if m["messageId"] not in before]
        # Each selected entry became exactly one held message to its URL (created now: after TASK_START,
        # so no later task of this machine selects it); nothing else was published.
        assert sorted(m["url"] for m in new) == sorted(url for _, url in selected.values())
        self.retried |= {m["messageId"] for m in new}
        self.check_filtered(("POST", "/v2/dlq/retry"), labels)

    # ------------------------------------------------------------------ the oracle

    def check_filtered(self, route: tuple[str, str], labels: list[str]) -> None:
        """Every bulk request of the task carried the task's labels (or explicit ids), nothing wider."""
        for entry in self.emu.request_log():
            if (entry["method"], entry["path"]) != route:
                continue
            params = {name for name, _ in entry["query"]}
            sent_labels = sorted(value for name, value in entry["query"] if name == "label")
            assert sent_labels == labels or params & {"messageIds", "dlqIds"}, entry

    @invariant()
    def emulator_matches_the_oracle(self) -> None:
        held, want = self.emu.held_ids(), set(self.held) | self.retried
        assert held == want, f"held differs: gone too {sorted(want - held)[:5]}, left {sorted(held - want)[:5]}"
        cancelled = {m["messageId"] for m in self.emu.messages("cancelled")}
        assert cancelled == self.cancelled, f"cancelled differs: {sorted(cancelled ^ self.cancelled)[:5]}"
        assert self.emu.dlq_ids() == set(self.dlq), f"DLQ differs: {sorted(self.emu.dlq_ids() ^ set(self.dlq))[:5]}"


@pytest.fixture(scope="module", params=["actions", "legacy"])
def stateful_emu(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One in-process emulator per server generation, with the machine's connection."""
    with (
        InProcessEmulator(
            token=TEST_TOKEN, bulk_cancel=request.param, action_rate=ACTION_RATE, sync_wait=SYNC_WAIT
        ) as emu,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv(conn_env(CONN_ID), connection_json(emu.base_url, **RETRIES))
        yield emu


def test_run_loops_act_on_exactly_their_selection_under_random_faults(stateful_emu: Any):
    RunLoops.emu = stateful_emu
    soak = os.environ.get("HYPOTHESIS_PROFILE") == "soak"
    current = settings()
    # ci: 6 programs of up to 8 steps per server generation (~5 s); soak: a tenth of the profile's examples
    # (200 by default) of up to 40 steps.
    run_state_machine_as_test(
        RunLoops,
        settings=settings(
            current,
            max_examples=max(1, current.max_examples // 10) if soak else 6,
            stateful_step_count=40 if soak else 8,
            deadline=None,
        ),
    )
