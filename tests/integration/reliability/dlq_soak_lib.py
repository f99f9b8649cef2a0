"""
The DLQ fault soak's pieces: seeded dead-letter-queue scenarios, the oracle, the task runners and the figures.

* :func:`make_dlq_scenario`: a seeded DLQ (entry dicts with explicit ``createdAt``, one unique ``body``
  each, so a retried message names the entry it came from), bystander messages that no DLQ run may
  touch, a non-empty filter set in the operators' input forms (labels, queues, URL groups, URLs,
  flow-control keys, schedules, caller IPs, response statuses, a window, explicit ``dlq_ids`` or one
  ``message_ids``), for a retry the ``Upstash-*`` overrides, and a fault profile (429 with burst or daily
  rate-limit headers, 5xx, dropped connections, latency, or a mix).
* :func:`dlq_oracle`: which entries the filter selects, in plain Python over the generator's own
  records. It uses neither the emulator's query code nor the provider's filter code.
* :func:`expected_overrides`: the ``Upstash-*`` headers a retried message must carry, stated
  independently of :func:`airflow_qstash.runs.dlq.retry_overrides`.
* :func:`run_dlq_sync` / :func:`run_dlq_deferrable`: run a DLQ operator the way Airflow would, re-running
  it (a task retry) when a run legitimately gives up after exhausting its connection retries.
* :class:`MidRunDeleter`: someone else deleting selected DLQ entries through the API while a run goes on.
* :class:`DLQFigures`: what the soak saw, written to ``test-artifacts/dlq-soak-figures.json``.

What the bulk-cancel soak shares (value pools, record fields, windows, input forms, fault profiles, the
oracle's selection, the task runner, the figures' file) comes from ``soak_lib``; only the DLQ's own is here.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from airflow_qstash.hooks.qstash import QStashHook
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from qstash_emulator import FaultConfig, QStashEmulator
from tests.integration.reliability.soak_lib import (
    ARTIFACTS,
    CALLER_IPS,
    DAY_MS,
    FLOW_KEYS,
    HOSTS,
    LABELS,
    MAX_TASK_RUNS,
    PATHS,
    QUEUES,
    SCHEDULES,
    TASK_START_MS,
    URL_GROUPS,
    RunCounts,
    draw_created,
    draw_fields,
    draw_window,
    fault_names,
    faults_injected,
    list_form,
    request_fault_config,
    run_task,
    select,
    with_fields,
    write_figures,
)

DLQ_SOAK_FIGURES = ARTIFACTS / "dlq-soak-figures.json"
DELETE = "delete"
RETRY = "retry"
ACTIONS = (DELETE, RETRY)
OPERATORS: dict[str, type[QStashDLQDeleteOperator] | type[QStashDLQRetryOperator]] = {
    DELETE: QStashDLQDeleteOperator,
    RETRY: QStashDLQRetryOperator,
}
#: The summary key of each action's main count.
DONE_KEY = {DELETE: "deleted", RETRY: "retried"}
#: HTTP statuses of the last delivery attempt of generated entries.
STATUSES = (400, 404, 410, 429, 500, 502, 503, 504)
#: How many bystander messages (held, not in the DLQ) each scenario adds.
BYSTANDERS = 40
#: Fault profiles; a scenario's seed picks one. Partial failures are a bulk-cancel fault only.
FAULT_PROFILES = ("429", "429_daily", "5xx", "drop", "latency", "mixed", "mixed")
#: The request log's fault names counted in the figures.
FAULT_KINDS = ("429", "429_daily", "5xx", "drop")

#: The operators' list filter -> the record field the oracle compares it with.
LIST_FILTERS: dict[str, str] = {
    "labels": "labels",
    "queue_names": "queue",
    "url_groups": "topic",
    "urls": "url",
    "flow_control_keys": "flow_key",
    "schedule_ids": "schedule",
    "caller_ips": "caller_ip",
    "response_statuses": "status",
    "message_ids": "message_id",
}

#: ``(method, path)`` of each DLQ request kind in the request log.
REQUEST_KINDS = {
    ("DELETE", "/v2/dlq"): "bulk_delete",
    ("POST", "/v2/dlq/retry"): "bulk_retry",
    ("GET", "/v2/dlq"): "list",
    # today's API (the 2026-12 reference): async bulk actions, /multi, their polls
    ("DELETE", "/v2/dlq/bulk"): "action_delete",
    ("POST", "/v2/dlq/retry/bulk"): "action_retry",
    ("DELETE", "/v2/dlq/multi"): "multi_delete",
    ("POST", "/v2/dlq/retry/multi"): "multi_retry",
    ("GET", "/v2/bulkActions"): "list_actions",
}


def request_kind(entry: dict[str, Any]) -> str:
    """``bulk_delete``, ``bulk_retry``, ``list``, ``delete_one`` (``DELETE /v2/dlq/{id}``) or ``other``."""
    kind = REQUEST_KINDS.get((entry["method"], entry["path"]))
    if kind is not None:
        return kind
    if entry["method"] == "DELETE" and entry["path"].startswith("/v2/dlq/"):
        return "delete_one"
    if entry["method"] == "POST" and entry["path"].startswith("/v2/dlq/retry/"):
        return "retry_one"
    if entry["method"] == "GET" and entry["path"].startswith("/v2/bulkActions/"):
        return "poll"
    return "other"


@dataclass
class DLQScenario:
    """One seeded DLQ soak scenario."""

    seed: int
    action: str
    records: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    bystanders: list[dict[str, Any]]
    op_kwargs: dict[str, Any]
    window: tuple[int | None, int | None]
    #: what the oracle compares: filter name -> accepted values, as generated
    wanted: dict[str, frozenset[Any]]
    dlq_ids: tuple[str, ...] | None
    #: the overrides as the generator states them: lower-case header name -> value sent
    overrides: dict[str, str]
    profile: str
    faults: FaultConfig

    def describe(self) -> str:
        window = "" if self.window == (None, None) else f" window={self.window}"
        wanted = {k: sorted(map(str, v)) for k, v in self.wanted.items()}
        ids = "" if self.dlq_ids is None else f" dlq_ids=[{len(self.dlq_ids)}]"
        return (
            f"action={self.action} seed={self.seed} entries={len(self.entries)} profile={self.profile} "
            f"filters={wanted}{ids}{window} overrides={self.overrides}"
        )


def dlq_fault_config(rng: random.Random, profile: str, seed: int) -> FaultConfig:
    """Request-level faults of one profile (every ``/v2`` request: bulk deletes, retries, listings)."""
    return request_fault_config(rng, profile, seed, latency_ms=(0, 4), slow_ms=(3, 8), partial=False)


def _retry_overrides(rng: random.Random, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Random retry overrides: (operator keywords, lower-case header -> value the server must record)."""
    kwargs: dict[str, Any] = {}
    sent: dict[str, str] = {}
    if rng.random() < 0.7:
        retries = rng.randint(0, 5)
        kwargs["override_retries"] = rng.choice((retries, str(retries)))
        sent["upstash-retries"] = str(retries)
    if rng.random() < 0.4:
        seconds = rng.choice((0, 30, 90, 300))
        kwargs["override_delay"] = rng.choice((seconds, dt.timedelta(seconds=seconds), f"{seconds}s"))
        sent["upstash-delay"] = f"{seconds}s"
    if rng.random() < 0.3:
        kwargs["override_timeout"] = rng.choice(("2m", 120))
        sent["upstash-timeout"] = "120s"
    headers: dict[str, str] = {}
    if rng.random() < 0.4:
        headers["Upstash-Forward-X-Replay"] = f"soak-{seed}"
    if rng.random() < 0.2:
        headers["Upstash-Label"] = "replayed"
    if headers:
        kwargs["override_headers"] = headers if rng.random() < 0.5 else json.dumps(headers)
        sent.update({name.lower(): value for name, value in headers.items()})
    return kwargs, sent


def make_dlq_scenario(seed: int, action: str) -> DLQScenario:
    """
    A reproducible scenario: 600-1,800 DLQ entries, a non-empty filter set, for a retry overrides, and a
    fault profile. The data, the filters and the overrides depend on the seed and the action only.
    """
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
    rng = random.Random(f"dlq-soak:{action}:{seed}")
    n = rng.randint(600, 1800)
    records: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    for i in range(n):
        host, path = rng.choice(HOSTS), rng.choice(PATHS)
        created = draw_created(rng)  # a few after the task's start: never selected (to_date is pinned)
        record: dict[str, Any] = {
            "dlq_id": f"dlq_soak{seed:03d}_{action}_{i:05d}",
            "message_id": f"msg_dlqsoak{seed:03d}_{i:05d}",
            "url": f"https://{host}{path}",
            **draw_fields(rng),
            "status": rng.choice(STATUSES),
            "max_retries": rng.randint(0, 5),
            "created": created,
        }
        records.append(record)
        entry: dict[str, Any] = {
            "dlqId": record["dlq_id"],
            "messageId": record["message_id"],
            "url": record["url"],
            "createdAt": created,
            "responseStatus": record["status"],
            "maxRetries": record["max_retries"],
            "body": f"body-of-{record['dlq_id']}",
        }
        entries.append(with_fields(entry, record))
    bystanders = [
        {
            "messageId": f"msg_bystander{seed:03d}_{i:03d}",
            "url": rng.choice(entries)["url"],
            "labels": sorted(rng.choice(records)["labels"]) or ["billing"],
            "createdAt": TASK_START_MS - rng.randint(1, 20 * DAY_MS),
            "body": f"bystander-{i}",
        }
        for i in range(BYSTANDERS)
    ]

    op_kwargs: dict[str, Any] = {}
    if action == DELETE:
        op_kwargs["batch_size"] = rng.choice((37, 64, 100, "100"))
    wanted: dict[str, frozenset[Any]] = {}
    window: tuple[int | None, int | None] = (None, None)
    dlq_ids: tuple[str, ...] | None = None
    roll = rng.random()
    if roll < 0.15:
        # explicit ids, a few unknown among them (split into requests of 100 ids)
        chosen = [r["dlq_id"] for r in rng.sample(records, rng.randint(30, min(n, 700)))]
        dlq_ids = tuple(chosen + [f"dlq_unknown_{seed}_{k}" for k in range(rng.randint(0, 4))])
        op_kwargs["dlq_ids"] = list_form(rng, list(dlq_ids), single=0.4, single_first=True)
    elif roll < 0.2:
        # the one message id QStash's messageId takes, with or without a window
        value = rng.choice(records)["message_id"]
        wanted["message_ids"] = frozenset({value})
        op_kwargs["message_ids"] = value if rng.random() < 0.5 else [value]
    else:
        pools: dict[str, tuple[Any, ...]] = {
            "labels": LABELS,
            "queue_names": QUEUES,
            "url_groups": URL_GROUPS,
            "urls": tuple(sorted({r["url"] for r in records})),
            "flow_control_keys": FLOW_KEYS,
            "schedule_ids": SCHEDULES,
            "caller_ips": CALLER_IPS,
            "response_statuses": STATUSES,
        }
        kinds = rng.sample(sorted(pools), rng.choice((0, 1, 1, 2, 2, 3)))
        for kind in kinds:
            miss: Any = 599 if kind == "response_statuses" else f"no-such-{kind}"
            if kind == "urls":
                miss = "https://nowhere.example/none"
            values = list(
                dict.fromkeys(
                    miss if rng.random() < 0.05 else rng.choice(pools[kind]) for _ in range(rng.randint(1, 3))
                )
            )
            wanted[kind] = frozenset(values)
            op_kwargs[kind] = list_form(rng, values, single=0.4, single_first=True)
    if dlq_ids is None and (not wanted or rng.random() < 0.5):
        window = draw_window(rng, records, op_kwargs, filtered=bool(wanted))
    overrides: dict[str, str] = {}
    if action == RETRY:
        override_kwargs, overrides = _retry_overrides(rng, seed)
        op_kwargs.update(override_kwargs)
    profile = FAULT_PROFILES[seed % len(FAULT_PROFILES)]
    return DLQScenario(
        seed=seed,
        action=action,
        records=records,
        entries=entries,
        bystanders=bystanders,
        op_kwargs=op_kwargs,
        window=window,
        wanted=wanted,
        dlq_ids=dlq_ids,
        overrides=overrides,
        profile=profile,
        faults=dlq_fault_config(rng, profile, seed),
    )


def dlq_oracle(scenario: DLQScenario) -> set[str]:
    """
    The DLQ ids the scenario's task must delete or retry, from the generator's records alone.

    QStash's rules, stated here independently: values of one filter are ORed, filters are ANDed, both
    date bounds are inclusive on ``createdAt``, the effective ``to_date`` is the earlier of the one given
    and the task's start (the task's start when unset), and ``dlq_ids`` select exactly those entries (no
    dates).
    """
    if scenario.dlq_ids is not None:
        return {r["dlq_id"] for r in scenario.records if r["dlq_id"] in scenario.dlq_ids}
    return select(scenario.records, scenario.window, scenario.wanted, LIST_FILTERS, "dlq_id")


def expected_overrides(scenario: DLQScenario) -> dict[str, str]:
    """The ``Upstash-*`` headers (lower-case names) every message a retry creates must have recorded."""
    return dict(scenario.overrides)


# --------------------------------------------------------------------------- running the task


def dlq_operator(action: str, op_kwargs: dict[str, Any], *, deferrable: bool, conn_id: str, task_id: str) -> Any:
    """A fresh DLQ operator of ``action`` (a task try builds its operator anew)."""
    return OPERATORS[action](task_id=task_id, deferrable=deferrable, qstash_conn_id=conn_id, **op_kwargs)


def run_dlq(
    action: str,
    op_kwargs: dict[str, Any],
    *,
    deferrable: bool,
    conn_id: str,
    max_runs: int = MAX_TASK_RUNS,
    task_id: str = "dlq_soak",
) -> tuple[dict[str, Any], int]:
    """Run a DLQ task (:func:`run_task`: on a worker, or deferred) until it succeeds; (XCom value, re-runs)."""
    return run_task(
        lambda deferrable: dlq_operator(action, op_kwargs, deferrable=deferrable, conn_id=conn_id, task_id=task_id),
        deferrable=deferrable,
        trigger_cls=QStashDLQTrigger,
        classpath="airflow_qstash.triggers.dlq.QStashDLQTrigger",
        max_runs=max_runs,
    )


run_dlq_sync = functools.partial(run_dlq, deferrable=False)
run_dlq_deferrable = functools.partial(run_dlq, deferrable=True)

#: A task runner: (action, operator keywords, connection id, most task runs) -> (XCom value, re-runs).
Runner = Callable[..., tuple[dict[str, Any], int]]
RUNNERS: dict[str, Runner] = {"sync": run_dlq_sync, "deferrable": run_dlq_deferrable}


# --------------------------------------------------------------------------- someone else deleting mid-run


class MidRunDeleter(threading.Thread):
    """
    Someone deleting selected DLQ entries through the API while a retry run goes on: it waits until the
    run's first retry request has been answered, then deletes ``victims`` with one bulk delete by
    ``dlqIds`` (the provider's hook, on its own connection, through the same faults). Victims the run
    retried first are no longer there and are not deleted: ``deleted`` is the server's count. Every wait
    is bounded.

    :param emu: the emulator (its request log says when the run has started retrying).
    :param conn_id: the deleter's connection.
    :param victims: DLQ ids to delete.
    :param deadline: ``time.monotonic()`` after which it gives up waiting for the run.
    """

    def __init__(self, emu: QStashEmulator, conn_id: str, victims: Iterable[str], deadline: float) -> None:
        super().__init__(daemon=True, name="dlq-mid-run-deleter")
        self.emu = emu
        self.conn_id = conn_id
        self.victims = list(victims)
        self.deadline = deadline
        self.deleted: int | None = None
        self.retry_answers_before = 0
        self.errors: list[BaseException] = []

    def _answered_retries(self) -> int:
        return sum(1 for e in self.emu.request_log() if request_kind(e) == "bulk_retry" and e["status"] == 201)

    def run(self) -> None:
        try:
            while (answered := self._answered_retries()) < 1:
                if time.monotonic() > self.deadline:
                    raise TimeoutError("the retry run never answered a retry request")
                time.sleep(0.002)
            self.retry_answers_before = answered
            hook = QStashHook(qstash_conn_id=self.conn_id)
            try:
                self.deleted = int(hook.dlq_delete(dlq_ids=self.victims)["deleted"])
            finally:
                hook.close()
        except BaseException as err:  # reported by the test
            self.errors.append(err)


# --------------------------------------------------------------------------- checking the outcome


@dataclass
class Outcome:
    """What the emulator shows after one run, against what the oracle says."""

    collateral: set[str]
    left_behind: set[str]
    retried_from: dict[str, dict[str, Any]]
    new_messages: list[dict[str, Any]]
    bystanders_touched: set[str]


def read_outcome(emu: QStashEmulator, scenario: DLQScenario, expected_gone: set[str]) -> Outcome:
    """
    Compare the emulator with ``expected_gone`` (the DLQ ids the run must have removed): entries gone but
    not expected (collateral), expected but still in the DLQ (left behind), the new messages keyed by the
    DLQ id their body names, and bystander messages no longer held as they were.
    """
    all_ids = {r["dlq_id"] for r in scenario.records}
    present = emu.dlq_ids()
    assert present <= all_ids, "the DLQ holds entries the scenario did not create"
    gone = all_ids - present
    messages = emu.messages("all")
    bystander_ids = {m["messageId"] for m in scenario.bystanders}
    held_bystanders = {m["messageId"] for m in messages if m["messageId"] in bystander_ids and m["state"] == "held"}
    new_messages = [m for m in messages if m["messageId"] not in bystander_ids]
    retried_from: dict[str, dict[str, Any]] = {}
    for message in new_messages:
        body = str(message.get("body", ""))
        source = body.removeprefix("body-of-")
        assert body.startswith("body-of-") and source not in retried_from, f"unexpected message {message}"
        retried_from[source] = message
    return Outcome(
        collateral=gone - expected_gone,
        left_behind=expected_gone & present,
        retried_from=retried_from,
        new_messages=new_messages,
        bystanders_touched=bystander_ids - held_bystanders,
    )


def check_retried_message(record: dict[str, Any], message: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    """What differs between a DLQ entry and the message its retry created (empty: as expected)."""
    problems = []
    labels = ("replayed",) if "upstash-label" in overrides else tuple(sorted(record["labels"]))
    want = {
        "url": record["url"],
        "labels": labels,
        "queueName": record["queue"],
        "topicName": record["topic"],
        "flowControlKey": record["flow_key"],
        "scheduleId": record["schedule"],
        "callerIP": record["caller_ip"],
        "maxRetries": int(overrides.get("upstash-retries", record["max_retries"])),
        "upstashHeaders": overrides,
        "state": "held",
    }
    have = {key: message.get(key) for key in want}
    have["labels"] = tuple(sorted(message.get("labels") or ()))
    for key, value in want.items():
        if have[key] != value:
            problems.append(f"{key}: {have[key]!r} != {value!r}")
    if "upstash-forward-x-replay" in overrides:
        forwarded = {name.lower(): value for name, value in (message.get("header") or {}).items()}
        if forwarded.get("x-replay") != [overrides["upstash-forward-x-replay"]]:
            problems.append(f"forwarded header X-Replay missing: {message.get('header')!r}")
    if message["messageId"] == record["message_id"]:
        problems.append("the retried message kept the failed message's id")
    return problems


# --------------------------------------------------------------------------- figures


@dataclass
class ActionFigures(RunCounts):
    """What the soak saw for one action, summed over scenarios and paths."""

    action: str
    requests: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    profiles: Counter[str] = field(default_factory=Counter)
    entries_checked: int = 0
    entries_expected: int = 0
    messages_checked: int = 0
    collateral: int = 0
    left_behind: int = 0
    bystanders_touched: int = 0

    def count_requests(self, log: list[dict[str, Any]]) -> None:
        """Add one run's request log: requests by kind, faults by name."""
        self.requests.update(request_kind(entry) for entry in log)
        self.faults.update(fault_names(log))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenarios": self.scenarios,
            "task_runs": self.task_runs,
            "task_reruns_needed": self.task_reruns,
            "requests": sum(self.requests.values()),
            "requests_by_kind": dict(sorted(self.requests.items())),
            **faults_injected(self.faults, FAULT_KINDS),
            "profiles": dict(sorted(self.profiles.items())),
            "entries_checked": self.entries_checked,
            f"entries_expected_{DONE_KEY[self.action]}": self.entries_expected,
            "messages_checked": self.messages_checked,
            "collateral": self.collateral,
            "left_behind": self.left_behind,
            "bystander_messages_touched": self.bystanders_touched,
        }


@dataclass
class DLQFigures:
    """The whole DLQ soak: :class:`ActionFigures` per action, and the runs with entries vanishing mid-run."""

    actions: dict[str, ActionFigures] = field(default_factory=lambda: {a: ActionFigures(a) for a in ACTIONS})
    vanishing_runs: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, action: str) -> ActionFigures:
        return self.actions[action]

    @property
    def ran(self) -> bool:
        return any(f.scenarios for f in self.actions.values()) or bool(self.vanishing_runs)

    def to_dict(self) -> dict[str, Any]:
        totals = {
            "scenarios": sum(f.scenarios for f in self.actions.values()),
            "task_runs": sum(f.task_runs for f in self.actions.values()),
            "requests": sum(sum(f.requests.values()) for f in self.actions.values()),
            "faults_injected": sum(sum(f.faults.get(k, 0) for k in FAULT_KINDS) for f in self.actions.values()),
            "entries_checked": sum(f.entries_checked for f in self.actions.values()),
            "collateral": sum(f.collateral for f in self.actions.values()),
            "left_behind": sum(f.left_behind for f in self.actions.values()),
        }
        return {
            "totals": totals,
            "actions": {action: figures.to_dict() for action, figures in self.actions.items()},
            "vanishing_runs": self.vanishing_runs,
        }

    def write(self) -> None:
        """Write ``test-artifacts/dlq-soak-figures.json``."""
        write_figures(DLQ_SOAK_FIGURES, self.to_dict())
