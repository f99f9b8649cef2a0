"""
The mapped fan-out on a scaled-out Airflow: CeleryExecutor with a Redis broker and PostgreSQL, two Celery
workers and two triggerers (:mod:`tests.integration.live.celery_stack`), all started and stopped by this module.

One run of ``qstash_mapped_fanout`` cleans up 50 tenants at once, one mapped task per label: 25 in the
workers (``cancel_tenant``), 25 deferred to the triggerers (``cancel_large_tenant``). While triggers
are in flight, ``triggerer-1`` is stopped (SIGTERM to its process group, as an orchestrator stops a
pod): its triggers must move to ``triggerer-2`` and still end exact.

Checked afterwards, through the REST API (JWT) and the emulator: every task instance succeeded in its
first try and both workers ran tasks; exactly the 50 labels' messages are cancelled and every other
message is still held; every bulk cancel carried exactly one of the 50 labels and no other filter; each
label's requests all arrived while its own task instance's one run was going on, and add up to exactly
one loop's worth (a second run of a label would add at least its own closing round); the moved
triggers went on after ``triggerer-1`` was gone.

Needs Debian's ``redis-server`` and ``postgresql`` (``make live-services`` installs them).
"""

from __future__ import annotations

import math
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from qstash_emulator import FaultConfig, QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.live.airflow_runtime import TERMINAL_RUN_STATES, AirflowAPI
from tests.integration.live.celery_stack import CeleryAirflow, CeleryLayout

pytestmark = [pytest.mark.airflow_live, pytest.mark.slow, pytest.mark.timeout(420)]

#: The emulated server generation: "actions" (hosted QStash since September 2026: a filter cancel is a
#: background bulk action) or "legacy" (``count`` honoured, one batch per request). The test passes in both.
BULK_CANCEL_MODE = "actions"
#: Emulator options per mode that keep a deferred loop going for seconds, so triggers can be caught mid-run:
#: legacy, many small batches (and the latency below); actions, a bulk action that cancels 1 message/s.
EMULATOR_OPTIONS: dict[str, dict[str, Any]] = {"legacy": {}, "actions": {"action_rate": 1.0}}

DAG_ID = "qstash_mapped_fanout"
SMALL = tuple(f"tenant-{n:02d}" for n in range(1, 26))  # cancel_tenant, in the workers
LARGE = tuple(f"tenant-{n:02d}" for n in range(26, 51))  # cancel_large_tenant, deferred
TASK_LABELS = {"cancel_tenant": SMALL, "cancel_large_tenant": LARGE}
MESSAGES = {"cancel_tenant": 3, "cancel_large_tenant": 6}
BATCH_SIZE = 2
#: Added to every QStash answer, so a deferred loop (4 requests in legacy mode) lasts a few seconds.
LATENCY_MS = 800
#: Stop triggerer-1 once it holds this many triggers that have sent requests and not finished.
IN_FLIGHT_TO_MOVE = 2
STOPPED_TRIGGERER = "triggerer-1"
LAYOUT = CeleryLayout(workers=2, worker_concurrency=4, triggerers=2)
#: Query parameters of a bulk cancel that are not filters.
NOT_FILTERS = frozenset({"count", "async"})
#: Slack when comparing emulator arrival times with Airflow's task start and end (one clock, rounding).
CLOCK_SLACK = 1.0


def expected_rounds(messages: int) -> int:
    """Bulk cancels one complete loop over ``messages`` messages sends, in ``BULK_CANCEL_MODE``."""
    if BULK_CANCEL_MODE == "legacy":
        return math.ceil(messages / BATCH_SIZE) + 1  # full batches, the rest, then one that cancels zero
    return 2  # one bulk action followed to its end, then the round that must report zero


def check_one_loop(label: str, entries: list[dict[str, Any]], messages: int, restarted: bool) -> None:
    """
    The label's bulk cancels are one loop's worth: a second run of the label would add at least its own
    closing round. On a bulk-action server a restarted trigger may find its first action still running:
    its cancel is then refused with 412 and it follows that action instead (one extra request, no work); a
    request the killed trigger was sending when it died is logged 499 and did nothing.
    """
    # A trigger killed while sending leaves a request the emulator never read whole (logged 499: it acted on
    # nothing); only a restarted label may have one.
    abandoned = [entry for entry in entries if entry["status"] == 499]
    assert restarted or not abandoned, (label, entries)
    statuses = sorted(entry["status"] for entry in entries if entry["status"] != 499)
    if BULK_CANCEL_MODE == "legacy":
        assert statuses == [200] * expected_rounds(messages), (label, entries)
    else:
        rejoined = statuses.count(412) if restarted else 0
        assert statuses == [202] * expected_rounds(messages) + [412] * rejoined, (label, entries)


@pytest.fixture(scope="module")
def fanout_emulator() -> Iterator[QStashEmulator]:
    options = EMULATOR_OPTIONS[BULK_CANCEL_MODE]
    with QStashEmulator(token=TEST_TOKEN, bulk_cancel=BULK_CANCEL_MODE, **options) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def celery_airflow(
    fanout_emulator: QStashEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryAirflow]:
    """PostgreSQL, Redis and Airflow on CeleryExecutor; everything stopped at the end, nothing left running."""
    home = tmp_path_factory.mktemp("celery_airflow_home")
    deployment = CeleryAirflow(
        home,
        connections={"qstash_default": connection_json(fanout_emulator.base_url, TEST_TOKEN, timeout=30)},
        layout=LAYOUT,
        dag_ids=[DAG_ID],
    )
    print(f"\nCelery Airflow: AIRFLOW_HOME={home}, logs in {home / 'component-logs'}")
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # finalizers run on SIGTERM too
    try:
        deployment.start()
        yield deployment
    finally:
        deployment.stop()
        leftovers = deployment.leftover_processes()
        assert not leftovers, f"processes left after stopping Airflow, Redis and PostgreSQL: {leftovers}"


@dataclass
class Seeded:
    """What the test put in the emulator: each label's message ids, and the ids that must stay held."""

    by_label: dict[str, set[str]]
    others: set[str]

    @property
    def targets(self) -> set[str]:
        return set().union(*self.by_label.values())


def seed(emulator: QStashEmulator) -> Seeded:
    """Each tenant's messages (some with a second label), plus look-alikes of other tenants that must stay."""
    created = int((datetime.now(timezone.utc) - timedelta(hours=1)).timestamp() * 1000)
    url = "https://tenant.example.com/hook"
    by_label: dict[str, set[str]] = {}
    for task_id, labels in TASK_LABELS.items():
        for label in labels:
            messages = [
                {"url": url, "labels": [label] if k % 3 else [label, "shared"], "createdAt": created + k}
                for k in range(MESSAGES[task_id])
            ]
            by_label[label] = set(emulator.add_messages(messages))
    others = [
        {"url": url, "labels": ["tenant-00"], "createdAt": created},  # a tenant not in this run
        {"url": url, "labels": ["tenant-51"], "createdAt": created},
        {"url": url, "labels": ["tenant-1"], "createdAt": created},  # a prefix of tenant-1x
        {"url": url, "labels": ["tenant-01-archive"], "createdAt": created},  # tenant-01 is a prefix of it
        {"url": url, "labels": ["shared"], "createdAt": created},
        {"url": url, "createdAt": created},  # no label
    ]
    return Seeded(by_label, set(emulator.add_messages(others)))


@dataclass
class RunWatch:
    """The mapped task instances of one run, polled through the REST API; every state each one went through."""

    api: AirflowAPI
    run_id: str
    tis: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    states: dict[tuple[str, int], list[str | None]] = field(default_factory=lambda: defaultdict(list))

    def poll(self) -> None:
        for ti in self.api.task_instances(DAG_ID, self.run_id):
            if ti["task_id"] not in TASK_LABELS or ti["map_index"] < 0:  # < 0: not expanded yet
                continue
            key = (ti["task_id"], ti["map_index"])
            self.tis[key] = ti
            seen = self.states[key]
            if not seen or seen[-1] != ti["state"]:
                seen.append(ti["state"])

    def label(self, key: tuple[str, int]) -> str:
        task_id, map_index = key
        return TASK_LABELS[task_id][map_index]

    def deferred_on(self, hostname: str) -> set[str]:
        """Labels whose task instance is deferred with its trigger held by the triggerer ``hostname``."""
        return {
            self.label(key)
            for key, ti in self.tis.items()
            if ti["state"] == "deferred" and (ti.get("triggerer_job") or {}).get("hostname") == hostname
        }


def bulk_cancels(emulator: QStashEmulator) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """The ``DELETE /v2/messages`` requests by their one label, and those with no label or several."""
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stray = []
    for entry in emulator.request_log():
        if entry["method"] != "DELETE" or entry["path"] != "/v2/messages":
            continue
        labels = [value for name, value in entry["query"] if name == "label"]
        if len(labels) == 1:
            by_label[labels[0]].append(entry)
        else:
            stray.append(entry)
    return by_label, stray


def in_flight(requests: dict[str, list[dict[str, Any]]], labels: set[str]) -> set[str]:
    """The labels whose loop has sent requests but not all of them yet."""
    done = expected_rounds(MESSAGES["cancel_large_tenant"])
    return {label for label in labels if 0 < len(requests.get(label, ())) < done}


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def test_fifty_mapped_cleanups_on_celery_survive_losing_a_triggerer(
    celery_airflow: CeleryAirflow, fanout_emulator: QStashEmulator
) -> None:
    airflow = celery_airflow.airflow
    api = airflow.api
    emulator = fanout_emulator
    seeded = seed(emulator)
    emulator.set_faults(FaultConfig(latency_ms=LATENCY_MS))
    api.set_paused(DAG_ID, False)

    run_id = api.trigger(DAG_ID, {"tenants": list(SMALL), "large_tenants": list(LARGE), "batch_size": BATCH_SIZE})
    watch = RunWatch(api, run_id)

    # Wait until triggerer-1 runs triggers that are part-way through their loop, then stop it.
    moved: set[str] = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        watch.poll()
        moved = in_flight(bulk_cancels(emulator)[0], watch.deferred_on(STOPPED_TRIGGERER))
        if len(moved) >= IN_FLIGHT_TO_MOVE or api.run(DAG_ID, run_id)["state"] in TERMINAL_RUN_STATES:
            break
        time.sleep(0.3)
    assert len(moved) >= IN_FLIGHT_TO_MOVE, (
        f"{STOPPED_TRIGGERER} never held {IN_FLIGHT_TO_MOVE} triggers in flight; states: {dict(watch.states)}"
    )
    # The triggerer takes seconds to shut down: keep watching the task instances meanwhile.
    with ThreadPoolExecutor(max_workers=1) as pool:
        stopping = pool.submit(airflow.stop_component, STOPPED_TRIGGERER)
        while not stopping.done():
            watch.poll()
            time.sleep(0.3)
        exit_code = stopping.result()
    assert exit_code is not None, f"{STOPPED_TRIGGERER} ignored SIGTERM and had to be killed"

    deadline = time.monotonic() + 240
    run = api.run(DAG_ID, run_id)
    while run["state"] not in TERMINAL_RUN_STATES and time.monotonic() < deadline:
        time.sleep(0.5)
        watch.poll()
        run = api.run(DAG_ID, run_id)
    watch.poll()
    emulator.set_faults(None)

    # -- Airflow's view, through the REST API --------------------------------------------------------
    failed = {key: ti["state"] for key, ti in watch.tis.items() if ti["state"] != "success"}
    assert run["state"] == "success", f"run {run['state']}; not successful: {failed}"
    assert sorted(watch.tis) == sorted((t, i) for t, labels in TASK_LABELS.items() for i in range(len(labels)))
    assert not failed
    assert {key: ti["try_number"] for key, ti in watch.tis.items() if ti["try_number"] != 1} == {}
    assert {ti["hostname"] for ti in watch.tis.values()} == set(LAYOUT.worker_names)  # both workers worked
    assert {watch.label(key): ti["rendered_map_index"] for key, ti in watch.tis.items()} == {
        label: label for label in SMALL + LARGE
    }
    went_deferred = {watch.label(key) for key, seen in watch.states.items() if "deferred" in seen}
    assert went_deferred == set(LARGE), f"states seen: {dict(watch.states)}"

    # -- QStash's view: exactly the 50 tenants' messages cancelled, each once, nothing else ---------------
    assert {m["messageId"] for m in emulator.messages("cancelled")} == seeded.targets
    assert emulator.held_ids() == seeded.others

    requests, stray = bulk_cancels(emulator)
    assert stray == []
    assert set(requests) == set(SMALL + LARGE)
    for label, entries in requests.items():
        filters = {name for entry in entries for name, _ in entry["query"]} - NOT_FILTERS
        assert filters == {"label", "toDate"}, (label, entries)

    summaries = {}
    for key, ti in watch.tis.items():
        label = watch.label(key)
        # Every request for the label arrived during its own task instance's one run.
        start, end = _epoch(ti["start_date"]) - CLOCK_SLACK, _epoch(ti["end_date"]) + CLOCK_SLACK
        outside = [entry["time"] for entry in requests[label] if not start <= entry["time"] <= end]
        assert outside == [], f"{label}: requests outside its task's run {ti['start_date']}..{ti['end_date']}"
        summaries[label] = api.xcom(DAG_ID, run_id, key[0], map_index=key[1])
    # A restarted trigger reports only its own rounds: fewer than went over the wire for its label.
    restarted = {label for label, summary in summaries.items() if summary["batches"] < len(requests[label])}
    for key in watch.tis:
        label = watch.label(key)
        check_one_loop(label, requests[label], MESSAGES[key[0]], label in restarted)
    if BULK_CANCEL_MODE == "actions":
        # One action per label did the work; any other action of the label found nothing left.
        working: dict[str, list[int]] = defaultdict(list)
        for action in emulator.bulk_actions():
            assert action["state"] == "FINISHED" and action["filter"]["label"] in ([x] for x in SMALL + LARGE)
            if action["cancelled"]:
                working[action["filter"]["label"][0]].append(action["cancelled"])
        assert working == {label: [len(ids)] for label, ids in seeded.by_label.items()}

    # -- the triggers of the stopped triggerer moved to the other one, ran from the start, ended exact -----
    # The restarted triggers are every trigger triggerer-1 held when it stopped: those seen in flight, and
    # any it took up after the last look.
    assert airflow.procs[STOPPED_TRIGGERER].poll() is not None
    (job,) = [
        job for job in api.get("/api/v2/jobs", job_type="TriggererJob")["jobs"] if job["hostname"] == STOPPED_TRIGGERER
    ]
    assert job["state"] != "running" and job["end_date"], job
    stopped_at = _epoch(job["end_date"])
    assert moved <= restarted <= set(LARGE), (moved, restarted)
    for label in restarted:
        after_stop = [entry for entry in requests[label] if entry["time"] > stopped_at]
        assert after_stop, f"{label}: no request after {STOPPED_TRIGGERER}'s job ended; its trigger did not move"
        if BULK_CANCEL_MODE == "legacy":  # the batches the stopped trigger made are not in the new count
            assert summaries[label]["cancelled"] < len(seeded.by_label[label]), (label, summaries[label])
    for label in set(SMALL + LARGE) - restarted:
        assert summaries[label]["cancelled"] == len(seeded.by_label[label]), (label, summaries[label])
        assert summaries[label]["batches"] == len(requests[label]), (label, summaries[label])
