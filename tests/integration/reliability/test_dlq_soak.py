"""
DLQ fault soak: seeded dead-letter-queue scenarios of ``QStashDLQDeleteOperator`` and
``QStashDLQRetryOperator`` against the in-process emulator with faults on (429 with burst or daily
rate-limit headers, 5xx, dropped connections, latency), each on the sync operator and on the deferrable
path, every entry checked against an independent oracle: exactly the selected entries gone (delete) or
re-enqueued as new messages carrying the overrides (retry); every other entry still in the DLQ, every
bystander message still held, no message created by a delete.

Plus retry runs during which someone else deletes selected entries through the API: the run goes on
(404s for an id list, a shrinking selection for a filter) and ends with every entry still present
retried, the deleted ones counted as vanished.

Figures go to ``test-artifacts/dlq-soak-figures.json``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from airflow_qstash.runs.dlq import MAX_REPORTED_MESSAGE_IDS
from qstash_emulator import FaultConfig, InProcessEmulator, QStashEmulator
from tests.conftest import TEST_TOKEN, connection_json
from tests.integration.reliability.dlq_soak_lib import (
    ACTIONS,
    DELETE,
    DONE_KEY,
    FAULT_PROFILES,
    RETRY,
    RUNNERS,
    DLQFigures,
    DLQScenario,
    MidRunDeleter,
    check_retried_message,
    dlq_oracle,
    expected_overrides,
    make_dlq_scenario,
    read_outcome,
    request_kind,
)
from tests.integration.reliability.soak_lib import (
    SCARCE_MAX_TASK_RUNS,
    SCARCE_RETRIES,
    SOAK_RETRIES,
    TASK_START_MS,
    conn_env,
    effective_to_date,
)

pytestmark = [pytest.mark.soak, pytest.mark.slow]

#: Scenarios per action (distinct seeds; the action is part of the generator's seed too).
SCENARIO_SEEDS: dict[str, range] = {DELETE: range(0, 14), RETRY: range(100, 114)}
#: Scenarios run again with one retry per request, where task re-runs are expected.
SCARCE_SEEDS: dict[str, tuple[int, ...]] = {DELETE: (581, 653, 580, 525), RETRY: (640, 528, 588, 663)}
SCENARIOS = [pytest.param(action, seed, id=f"{action}-{seed}") for action in ACTIONS for seed in SCENARIO_SEEDS[action]]
PATHS = tuple(RUNNERS)
CONN = "qstash_dlq_soak"
SCARCE_CONN = "qstash_dlq_soak_scarce"
DELETER_CONN = "qstash_dlq_soak_deleter"
FIGURES = DLQFigures()


#: Both emulator generations: today's (async bulk actions, /multi, single ids) and an older server (paging).
GENERATIONS = ("actions", "legacy")


@contextmanager
def _soak_emulator(generation: str) -> Iterator[QStashEmulator]:
    """An emulator of ``generation`` with the soak's connections (generous, scarce, and the deleter's)."""
    with (
        InProcessEmulator(token=TEST_TOKEN, bulk_cancel=generation) as emu,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv(conn_env(CONN), connection_json(emu.base_url, **SOAK_RETRIES))
        mp.setenv(conn_env(SCARCE_CONN), connection_json(emu.base_url, **SCARCE_RETRIES))
        mp.setenv(conn_env(DELETER_CONN), connection_json(emu.base_url, **SOAK_RETRIES))
        yield emu


@pytest.fixture(scope="module", params=GENERATIONS)
def soak_emu(request: pytest.FixtureRequest) -> Iterator[QStashEmulator]:
    """One emulator per generation for the module."""
    with _soak_emulator(request.param) as emu:
        emu.generation = request.param  # type: ignore[attr-defined]
        yield emu
    if FIGURES.ran:
        FIGURES.write()


@pytest.fixture
def emu(soak_emu: QStashEmulator) -> Iterator[QStashEmulator]:
    """The module's emulator, emptied; its faults are switched off afterwards."""
    soak_emu.reset()
    yield soak_emu
    soak_emu.set_faults(None)


@pytest.fixture(scope="module")
def paged_emu() -> Iterator[QStashEmulator]:
    """An older server (paging API only), for the runs whose mid-run deletes meet the listed ids."""
    with _soak_emulator("legacy") as emu:
        yield emu


# --------------------------------------------------------------------------- the generator


@pytest.mark.parametrize("action", ACTIONS)
def test_dlq_scenarios_are_reproducible_and_varied(action: str):
    assert dlq_oracle(make_dlq_scenario(7, action)) == dlq_oracle(make_dlq_scenario(7, action))
    assert make_dlq_scenario(7, action).op_kwargs == make_dlq_scenario(7, action).op_kwargs
    assert make_dlq_scenario(7, action).faults == make_dlq_scenario(7, action).faults
    scenarios = [make_dlq_scenario(seed, action) for seed in SCENARIO_SEEDS[action]]
    assert {s.profile for s in scenarios} == set(FAULT_PROFILES)
    assert all(s.wanted or s.window != (None, None) or s.dlq_ids for s in scenarios), "an empty filter set"
    kinds = {kind for s in scenarios for kind in s.wanted}
    assert len(kinds) >= 6 and "response_statuses" in kinds, kinds
    assert sum(1 for s in scenarios if s.dlq_ids) >= 1
    assert sum(1 for s in scenarios if s.window != (None, None)) >= 4
    assert sum(1 for s in scenarios if len(s.wanted) >= 2) >= 2
    # each scenario selects something and leaves something (some select nothing at all: a miss value)
    selected = [len(dlq_oracle(s)) for s in scenarios]
    assert sum(1 for n in selected if n > 0) >= 0.7 * len(scenarios)
    assert all(n < len(s.entries) for n, s in zip(selected, scenarios, strict=True))
    if action == RETRY:
        overrides = [s.overrides for s in scenarios]
        assert sum(1 for o in overrides if o) >= 0.6 * len(scenarios)
        assert {"upstash-retries", "upstash-delay", "upstash-forward-x-replay"} <= {k for o in overrides for k in o}


# --------------------------------------------------------------------------- seeded scenarios


def _check_requests(scenario: DLQScenario, log: list[dict[str, Any]], context: str, generation: str) -> None:
    """QStash was never asked for everything, nor anything but the action's own requests."""
    action_kind, multi_kind, one_kind = (
        ("action_delete", "multi_delete", "delete_one")
        if scenario.action == DELETE
        else ("action_retry", "multi_retry", "retry_one")
    )
    if generation == "actions":
        # today's API only: a filter is bulk actions and their polls; ids go to /multi (one id: single)
        todays = [e for e in log if request_kind(e) not in ("poll", "list_actions")]
        kinds = {request_kind(e) for e in todays}
        allowed = {multi_kind, one_kind, "list"} if scenario.dlq_ids else {action_kind}
        assert kinds <= allowed and kinds, f"{context}: requests {kinds}"
        starts = [e for e in log if request_kind(e) == action_kind]
        assert all(any(k not in ("count", "cursor") for k, _ in e["query"]) for e in starts), f"{context}: no filter"
        assert all(k not in ("host", "path", "dlqIds") for e in starts for k, _ in e["query"]), context
        multi = [e for e in log if request_kind(e) == multi_kind]
        assert all({k for k, _ in e["query"]} == {"dlqIds"} for e in multi), f"{context}: /multi not by id"
        return
    # an older server: today's endpoints answered 404 once (detection), then the paging API
    detection = [e for e in log if request_kind(e) in (action_kind, multi_kind, "list_actions")]
    # (a request the emulator's faults answered first is sent again by the transport)
    assert any(e["status"] == 404 for e in detection), f"{context}: detection {detection[:2]}"
    assert all(e["status"] == 404 or e["fault"] for e in detection), f"{context}: detection {detection[:2]}"
    log = [e for e in log if e not in detection]
    bulk_kind = "bulk_delete" if scenario.action == DELETE else "bulk_retry"
    kinds = {request_kind(e) for e in log}
    allowed = {bulk_kind, "list"}  # list: the listing of the selection (and a retry's 404 probe)
    assert kinds <= allowed and (bulk_kind in kinds or "list" in kinds), f"{context}: requests {kinds}"
    bulk = [e for e in log if request_kind(e) == bulk_kind]
    assert all(any(k not in ("count", "cursor") for k, _ in e["query"]) for e in bulk), f"{context}: no filter"
    # the run acts on the ids it listed, by id only (QStash ignores every other filter next to dlqIds)
    assert all({k for k, _ in e["query"]} <= {"dlqIds", "count", "cursor"} for e in bulk), f"{context}: not by id"
    assert all(k not in ("host", "path") for e in bulk for k, _ in e["query"]), context


def _soak(emu: QStashEmulator, action: str, seed: int, *, conn_id: str, max_runs: int) -> list[int]:
    """Run one scenario on both paths and check it entry by entry; returns the re-runs per path."""
    figures = FIGURES[action]
    scenario = make_dlq_scenario(seed, action)
    expected = dlq_oracle(scenario)
    records = {r["dlq_id"]: r for r in scenario.records}
    overrides = expected_overrides(scenario)
    figures.profiles[scenario.profile] += 1
    reruns_per_path = []
    for path, run in RUNNERS.items():
        emu.reset()
        emu.add_dlq(scenario.entries)
        emu.add_messages(scenario.bystanders)
        emu.set_faults(scenario.faults)
        summary, reruns = run(action, scenario.op_kwargs, conn_id=conn_id, max_runs=max_runs)
        emu.set_faults(None)
        log = emu.request_log()
        outcome = read_outcome(emu, scenario, expected)
        context = f"{emu.generation} {path}: {scenario.describe()}"  # type: ignore[attr-defined]

        reruns_per_path.append(reruns)
        figures.count_requests(log)
        figures.entries_checked += len(scenario.records)
        figures.entries_expected += len(expected)
        figures.messages_checked += len(outcome.new_messages) + len(scenario.bystanders)
        figures.collateral += len(outcome.collateral)
        figures.left_behind += len(outcome.left_behind)
        figures.bystanders_touched += len(outcome.bystanders_touched)

        assert not outcome.collateral, f"{context}: removed {len(outcome.collateral)} unselected entries"
        assert not outcome.left_behind, f"{context}: left {len(outcome.left_behind)} selected entries"
        assert not outcome.bystanders_touched, f"{context}: touched bystanders {sorted(outcome.bystanders_touched)}"
        _check_requests(scenario, log, context, emu.generation)  # type: ignore[attr-defined]
        if action == DELETE:
            assert outcome.new_messages == [], f"{context}: a delete created messages"
        else:
            # exactly one new message per selected entry, with the entry's settings and the overrides
            assert set(outcome.retried_from) == expected, context
            problems = {
                dlq_id: check_retried_message(records[dlq_id], message, overrides)
                for dlq_id, message in outcome.retried_from.items()
            }
            problems = {k: v for k, v in problems.items() if v}
            assert not problems, (
                f"{context}: {len(problems)} retried messages differ, e.g. {next(iter(problems.items()))}"
            )
            assert {k.lower(): v for k, v in summary["overrides"].items()} == overrides, context
            new_ids = {m["messageId"] for m in outcome.new_messages}
            # the new message ids are reported up to 1,000 (else only their count), all of this run's;
            # a bulk action reports none (counts and action ids only)
            if summary["mode"] == "bulk_action":
                assert summary["message_ids"] is None and summary["action_ids"], context
            elif summary["retried"] > MAX_REPORTED_MESSAGE_IDS:
                assert summary["message_ids"] is None, context
            else:
                assert set(summary["message_ids"]) <= new_ids, context
                assert len(summary["message_ids"]) == summary["retried"], context
            if reruns == 0 and summary["mode"] != "bulk_action":
                assert summary["retried"] > MAX_REPORTED_MESSAGE_IDS or set(summary["message_ids"]) == new_ids
                unknown = 0 if scenario.dlq_ids is None else len(set(scenario.dlq_ids) - set(records))
                assert summary["vanished"] == unknown, context
        expected_mode = "paged" if emu.generation == "legacy" else ("multi" if scenario.dlq_ids else "bulk_action")  # type: ignore[attr-defined]
        assert summary["mode"] == expected_mode, context
        if reruns == 0:
            assert summary[DONE_KEY[action]] == len(expected), context
        else:
            assert summary[DONE_KEY[action]] <= len(expected), context
        if scenario.dlq_ids is None:
            assert summary["to_date"] == effective_to_date(scenario.window[1]), context
    return reruns_per_path


@pytest.mark.parametrize(("action", "seed"), SCENARIOS)
def test_dlq_soak_scenario_acts_on_exactly_the_oracle_on_both_paths(emu: QStashEmulator, action: str, seed: int):
    FIGURES[action].count_scenario(_soak(emu, action, seed, conn_id=CONN, max_runs=5))


@pytest.mark.parametrize("action", ACTIONS)
def test_dlq_soak_with_scarce_retries_reruns_the_task_to_an_exact_state(emu: QStashEmulator, action: str):
    """One retry per request: faults exhaust it, the task fails, Airflow runs it again; still exact."""
    reruns = 0
    for seed in SCARCE_SEEDS[action]:
        per_path = _soak(emu, action, seed, conn_id=SCARCE_CONN, max_runs=SCARCE_MAX_TASK_RUNS)
        reruns += FIGURES[action].count_scenario(per_path)
    # not vacuous: with one retry per request some run did give up and was run again
    assert reruns > 0


# --------------------------------------------------------------------------- entries vanishing mid-run

#: Entries of the vanishing tests: all selected (label ``incident``), plus entries that are not.
VANISH_SELECTED = 1500
VANISH_OTHERS = 300
#: Entries the other party tries to delete while the run goes on (the ones the run reaches last).
VANISH_VICTIMS = 60
#: Latency of every request, so the run lasts long enough for the deletes to land in its middle.
VANISH_FAULTS = FaultConfig(latency_ms=12, rate_5xx=0.05, rate_429=0.05, reset_after_s=0, seed=21)


def _vanish_entries() -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """The DLQ of a vanishing test: (entries, selected ids oldest last, unselected ids)."""
    rng = random.Random("dlq-vanish")
    entries: list[dict[str, Any]] = []
    for i in range(VANISH_SELECTED):
        entries.append(
            {
                "dlqId": f"dlq_vanish_{i:05d}",
                "url": f"https://consumer.example/{i % 7}",
                "labels": ["incident"],
                # newest first: the run (latestFirst pages, or ids in this order) reaches high i last
                "createdAt": TASK_START_MS - 1_000 - i * 1_000,
                "responseStatus": rng.choice((500, 503)),
                "body": f"body-of-dlq_vanish_{i:05d}",
            }
        )
    for i in range(VANISH_OTHERS):
        entries.append(
            {
                "dlqId": f"dlq_keep_{i:05d}",
                "url": "https://consumer.example/keep",
                "labels": [rng.choice(("billing", "report-daily"))],
                "createdAt": TASK_START_MS - 1_000 - i * 997,
                "responseStatus": 500,
                "body": f"body-of-dlq_keep_{i:05d}",
            }
        )
    selected = [str(e["dlqId"]) for e in entries[:VANISH_SELECTED]]
    others = [str(e["dlqId"]) for e in entries[VANISH_SELECTED:]]
    return entries, selected, others


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("selection", ["dlq_ids", "filter"])
def test_entries_deleted_by_someone_else_mid_retry_are_skipped_and_the_rest_retried(
    paged_emu: QStashEmulator, selection: str, path: str
):
    emu = paged_emu
    emu.reset()
    entries, selected, others = _vanish_entries()
    emu.add_dlq(entries)
    victims = selected[-VANISH_VICTIMS:]
    op_kwargs: dict[str, Any] = {"override_retries": 0}
    if selection == "dlq_ids":
        op_kwargs["dlq_ids"] = selected
    else:
        op_kwargs["labels"] = "incident"
    emu.set_faults(VANISH_FAULTS)
    deleter = MidRunDeleter(emu, DELETER_CONN, victims, deadline=time.monotonic() + 60)
    deleter.start()
    try:
        summary, reruns = RUNNERS[path](RETRY, op_kwargs, conn_id=CONN, max_runs=1)
    finally:
        deleter.join(timeout=60)
    emu.set_faults(None)
    assert not deleter.is_alive(), "the deleter did not finish"
    assert not deleter.errors, deleter.errors
    assert deleter.deleted is not None
    log = emu.request_log()

    messages = emu.messages("all")
    retried_from = {str(m["body"]).removeprefix("body-of-"): m for m in messages}
    assert len(retried_from) == len(messages), "an entry was retried twice"
    # the run ended with every selected entry retried or deleted by the other party, none both, and
    # nothing else touched; the deleter's own count says how many it removed
    assert emu.dlq_ids() == set(others)
    assert set(retried_from) <= set(selected)
    deleted = set(selected) - set(retried_from)
    assert deleted <= set(victims)
    assert len(deleted) == deleter.deleted
    # not vacuous: the delete landed while the run still had the victims ahead of it
    assert deleter.retry_answers_before >= 1
    assert len(deleted) >= VANISH_VICTIMS // 2, f"only {len(deleted)} of the victims were deleted before the run"
    assert {m["maxRetries"] for m in messages} == {0}
    assert {m["upstashHeaders"].get("upstash-retries") for m in messages} == {"0"}
    assert summary["retried"] == len(selected) - len(deleted) == len(messages)
    assert summary["message_ids"] is None  # more than 1,000 retried: only their count
    # a filter run lists its selection first and retries those ids, so both selections meet the same thing:
    # each deleted id was met by a 404, found alone and skipped; the DLQ API was checked once
    assert summary["vanished"] == len(deleted)
    assert summary["not_found_answers"] >= 1
    listing = 0 if selection == "dlq_ids" else -(-len(selected) // 100)
    assert summary["list_requests"] == listing
    assert sum(1 for e in log if request_kind(e) == "list" and e["status"] == 200) == listing + 1
    assert reruns == 0
    FIGURES.vanishing_runs.append(
        {
            "selection": selection,
            "path": path,
            "selected": len(selected),
            "deleted_mid_run": len(deleted),
            "retried": summary["retried"],
            "vanished": summary["vanished"],
            "not_found_answers": summary["not_found_answers"],
            "requests": sum(1 for e in log if request_kind(e) in ("bulk_retry", "list")),
            "collateral": len(set(others) - emu.dlq_ids()),
            "left_behind": len(emu.dlq_ids() & set(selected)),
        }
    )
