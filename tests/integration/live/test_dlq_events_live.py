"""
DLQ events start a DAG, in a real Airflow 3 (API server, scheduler, DAG processor, triggerer) against the
emulator: the ``qstash_dlq_events`` example, as shipped but polling every 2 s instead of 60 s.

Failed ``billing`` deliveries put in the DLQ -> the triggerer's watcher announces them -> one
asset-triggered run appears (the time it took is printed) -> it retries exactly those entries (the
other entries stay) -> no second run for them while the watcher keeps polling; a second burst -> exactly
one more run, for exactly the new entries. After a triggerer restart no run starts for handled entries,
and a repeated announcement starts a run that finds them handled and changes nothing. The asset events
carry the ids and never the token.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.live.airflow_runtime import COMPONENT_ARGS, REPO_ROOT, VENV_BIN, AirflowAPI, LiveAirflow

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(600)]

DAG_ID = "qstash_dlq_events"
EXAMPLE = REPO_ROOT / "dags_examples" / f"{DAG_ID}.py"
POLL_SECONDS = 2
#: The stated bound: a run appears within this many seconds of the entries reaching the DLQ (a poll
#: interval, the triggerer's and scheduler's heartbeats, on a shared 2-core machine).
RUN_APPEARS_WITHIN = 60.0
#: How long the test watches for a second run that must not come (many polls).
QUIET_SECONDS = 8 * POLL_SECONDS + 4


@pytest.fixture(scope="module")
def events_airflow(qstash_emulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAirflow]:
    """Airflow 3 with a DAG folder holding only the example, its poll interval cut to 2 s."""
    dags = tmp_path_factory.mktemp("dlq_events_dags")
    source = EXAMPLE.read_text()
    assert source.count("poll_interval=60,") == 1
    (dags / EXAMPLE.name).write_text(source.replace("poll_interval=60,", f"poll_interval={POLL_SECONDS},"))
    airflow = LiveAirflow(
        tmp_path_factory.mktemp("dlq_events_home"),
        connections={"qstash_default": connection_json(qstash_emulator.base_url, qstash_emulator.token, timeout=30)},
        extra_env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)},
        dag_ids=(DAG_ID,),
    )
    print(f"\nlive Airflow: AIRFLOW_HOME={airflow.home}, logs in {airflow.log_dir}, UI {airflow.base_url}")
    try:
        airflow.start()
        yield airflow
    finally:
        airflow.stop()


def billing_entries(n: int, tag: str) -> list[dict[str, Any]]:
    now_ms = int(time.time() * 1000)
    return [
        {
            "url": f"https://example.com/billing/{tag}/{i}",
            "labels": ["billing"],
            "body": f"invoice {tag}-{i}",
            "createdAt": now_ms,
            "responseStatus": 503,
        }
        for i in range(n)
    ]


def wait_for_runs(api: AirflowAPI, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        runs = api.runs(DAG_ID, order_by="run_after")
        if len(runs) >= count or time.monotonic() > deadline:
            return runs
        time.sleep(0.25)


def restart_triggerer(airflow: LiveAirflow) -> None:
    """
    Stop the triggerer (SIGTERM, as a deployment would) and start a new one with the same environment (the
    Fernet key that encrypts the trigger's arguments included); ``stop()`` ends it too.
    """
    env = psutil.Process(airflow.procs["triggerer"].pid).environ()
    airflow.stop_component("triggerer")
    with open(airflow.log_dir / "triggerer-2.log", "wb") as log:
        airflow.procs["triggerer"] = subprocess.Popen(
            [str(VENV_BIN / "airflow"), "triggerer", *COMPONENT_ARGS["triggerer"]],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=airflow.home,
            start_new_session=True,
        )


def count_listings(emulator: Any) -> int:
    return sum(1 for e in emulator.request_log() if (e["method"], e["path"]) == ("GET", "/v2/dlq"))


def wait_for_polls(emulator: Any, count: int, timeout: float) -> int:
    """Wait until the watcher has listed the DLQ ``count`` times (the emulator's request log); how often it did."""
    deadline = time.monotonic() + timeout
    while True:
        polls = count_listings(emulator)
        if polls >= count or time.monotonic() > deadline:
            return polls
        time.sleep(0.25)


def assert_run_retried_exactly(airflow: LiveAirflow, emulator: Any, run: dict[str, Any], ids: list[str]) -> None:
    api = airflow.api
    done = api.wait_run(DAG_ID, run["dag_run_id"], timeout=180)
    assert done["state"] == "success", airflow.log_tails()
    assert done["run_type"] == "asset_triggered"
    announced = api.xcom(DAG_ID, run["dag_run_id"], "announced_ids")
    assert sorted(announced) == sorted(ids)  # exactly these, each once (in the listing's order)
    summary = api.xcom(DAG_ID, run["dag_run_id"], "replay_announced_entries")
    assert summary["retried"] == len(ids)
    assert not set(ids) & emulator.dlq_ids()


def test_dlq_entries_start_one_run_that_retries_exactly_them(events_airflow: LiveAirflow, qstash_emulator: Any):
    emulator = qstash_emulator
    emulator.reset()
    api = events_airflow.api
    others = emulator.add_dlq(
        [{**entry, "labels": ["shipping"]} for entry in billing_entries(3, "other")]  # not watched
    )
    api.set_paused(DAG_ID, False)
    polls = wait_for_polls(emulator, 2, timeout=RUN_APPEARS_WITHIN)
    assert polls >= 2, f"the watcher did not poll\n{events_airflow.log_tails()}"
    assert api.runs(DAG_ID) == []  # the unwatched entries start nothing

    first = emulator.add_dlq(billing_entries(3, "one"))
    started = time.monotonic()
    runs = wait_for_runs(api, 1, RUN_APPEARS_WITHIN)
    first_seconds = time.monotonic() - started
    assert len(runs) == 1, f"no run {RUN_APPEARS_WITHIN} s after the first burst\n{events_airflow.log_tails()}"
    assert_run_retried_exactly(events_airflow, emulator, runs[0], first)

    time.sleep(QUIET_SECONDS)
    assert len(api.runs(DAG_ID)) == 1, "a second run for entries already announced"

    second = emulator.add_dlq(billing_entries(2, "two"))
    started = time.monotonic()
    runs = wait_for_runs(api, 2, RUN_APPEARS_WITHIN)
    second_seconds = time.monotonic() - started
    assert len(runs) == 2, f"no run {RUN_APPEARS_WITHIN} s after the second burst\n{events_airflow.log_tails()}"
    assert_run_retried_exactly(events_airflow, emulator, runs[1], second)
    time.sleep(QUIET_SECONDS)
    assert len(api.runs(DAG_ID)) == 2

    assert emulator.dlq_ids() == set(others)  # the unwatched entries are untouched

    # A triggerer restart: the new watcher remembers nothing, but the handled entries left the DLQ, so it
    # announces nothing and no run starts.
    restart_triggerer(events_airflow)
    before = count_listings(emulator)
    polls = wait_for_polls(emulator, before + 3, timeout=120)
    assert polls >= before + 3, f"the restarted triggerer did not poll\n{events_airflow.log_tails()}"
    assert len(api.runs(DAG_ID)) == 2

    # A repeated announcement (what a restart gives for entries still in the DLQ when it happened, here
    # posted by hand): the run it starts finds the entries handled and changes nothing.
    [asset] = api.get("/api/v2/assets", name_pattern="qstash_dlq_billing")["assets"]
    repeat = {"dlq_ids": first, "count": len(first), "newest_created_at": None, "part": 1, "parts": 1}
    api.call(
        "POST",
        "/api/v2/assets/events",
        json_body={"asset_id": asset["id"], "extra": {"from_trigger": True, "payload": repeat}},
    )
    runs = wait_for_runs(api, 3, RUN_APPEARS_WITHIN)
    assert len(runs) == 3
    repeated = api.wait_run(DAG_ID, runs[2]["dag_run_id"], timeout=180)
    assert repeated["state"] == "success", events_airflow.log_tails()
    summary = api.xcom(DAG_ID, runs[2]["dag_run_id"], "replay_announced_entries")
    assert (summary["retried"], summary["vanished"]) == (0, len(first))
    assert emulator.dlq_ids() == set(others)
    events = api.get("/api/v2/assets/events", limit=100)["asset_events"]
    payloads = [event["extra"]["payload"] for event in events if not event["extra"].get("from_rest_api")]
    assert sorted(sorted(p["dlq_ids"]) for p in payloads) == sorted([sorted(first), sorted(second)])
    assert TEST_TOKEN not in json.dumps(events)
    assert not any("invoice" in json.dumps(p) for p in payloads)
    for log in Path(events_airflow.log_dir).glob("*.log"):
        assert TEST_TOKEN not in log.read_text(errors="replace"), log.name
    log = emulator.request_log()
    assert emulator.request_log_dropped() == 0
    listings = [e for e in log if (e["method"], e["path"]) == ("GET", "/v2/dlq")]
    unfiltered = [e["query"] for e in listings if ("label", "billing") not in e["query"]]
    # only the watched entries are listed (today's API needs no DLQ listing to tell a 404 apart)
    assert unfiltered == []
    # the retries go to today's API: each run's ids to /multi (several ids), never the paging POST /v2/dlq/retry
    retries = [e for e in log if e["method"] == "POST" and e["path"].startswith("/v2/dlq/retry")]
    assert not [e for e in retries if e["path"] == "/v2/dlq/retry"], "the paging API was used"
    multi_queries = [e["query"] for e in retries if e["path"] == "/v2/dlq/retry/multi"]
    assert all(name == "dlqIds" for query in multi_queries for name, _ in query)
    multi = [sorted(value for _, value in query) for query in multi_queries]  # sorted lists: each id once
    # the two announced runs, then the repeated run: its /multi answered 404 (the ids are gone), was told
    # apart from an older server once by listing bulk actions (the "vanished" rule), and was halved down to
    # single ids, each answering 404 (vanished)
    assert multi[:3] == [sorted(first), sorted(second), sorted(first)]
    assert len(multi) == 4 and len(multi[3]) == 2 and set(multi[3]) < set(first)
    singles = sorted(e["path"] for e in retries if e["path"] not in ("/v2/dlq/retry/multi", "/v2/dlq/retry"))
    assert singles == sorted(f"/v2/dlq/retry/{dlq_id}" for dlq_id in first)
    probes = [e["query"] for e in log if (e["method"], e["path"]) == ("GET", "/v2/bulkActions")]
    assert probes == [[("count", "1")]]
    print(
        f"\ntime from DLQ entries to a DAG run: {first_seconds:.1f} s (first burst), {second_seconds:.1f} s "
        f"(second); {len(listings)} listings"
    )
