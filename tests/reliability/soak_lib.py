"""
The fault soak's pieces, kept out of the test module so ``bench/soak_report.py`` can name them too.

* :func:`make_scenario`: a seeded store (message dicts with explicit ``createdAt``), a filter set in the
  operator's input forms, a batch size and a fault profile.
* :func:`oracle`: which messages the filter selects, in plain Python over the generator's own records.
  It uses neither the emulator's query code nor the provider's filter code.
* :func:`run_sync` / :func:`run_deferrable`: run the task the way Airflow would, re-running it (a task
  retry) when a run legitimately gives up after exhausting its connection retries.
* :class:`Figures`: what the soak saw, written to ``test-artifacts/soak-figures.json``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_qstash.emulator import FaultConfig, QStashEmulator
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "test-artifacts"
SOAK_FIGURES = ARTIFACTS / "soak-figures.json"
BAD_INPUT_FIGURES = ARTIFACTS / "bad-input-figures.json"

UTC = dt.timezone.utc
#: The task's start in every scenario (``ti.start_date``): an unset ``to_date`` is pinned to it.
TASK_START = dt.datetime(2026, 11, 1, tzinfo=UTC)
TASK_START_MS = 1_793_491_200_000
DAY_MS = 86_400_000

#: Connection settings of the soak: retries generous enough that 30 % faults rarely exhaust them.
SOAK_RETRIES: dict[str, Any] = {"max_retries": 10, "backoff_initial": 0, "backoff_max": 0.01, "timeout": 10}
#: How many times a task is run before the soak calls it a failure (Airflow's ``retries`` + 1).
MAX_TASK_RUNS = 5
#: Scarce retries: one retry per request, so 30 % faults do exhaust them and the task must be re-run.
SCARCE_RETRIES: dict[str, Any] = {**SOAK_RETRIES, "max_retries": 1}
SCARCE_MAX_TASK_RUNS = 30

# Value pools. A few values contain characters that need encoding (space, '&', '+', '/', non-ASCII).
HOSTS = ("api.example.com", "hooks.example.org", "worker.example.net:8443", "xn--bcher-kva.example", "10.1.2.3:8080")
PATHS = ("/", "/webhook", "/jobs/sync", "/jobs/email", "/v1/events", "/a+b", "/caf%C3%A9")
LABELS = ("billing", "report-daily", "tenant:42", "café", "a b", "x&y=z", "path/like", "UPPER", "lower", "50%")
QUEUES = ("q-alpha", "q-beta", "q-gamma", "q.delta", "q_eps")
URL_GROUPS = ("group-a", "group-b", "group-c")
FLOW_KEYS = ("fk-1", "fk-2", "fk-3", "fk-4", "fk 5", "fk/6")
SCHEDULES = ("scd_01", "scd_02", "scd_03", "scd_04")
CALLER_IPS = ("203.0.113.1", "203.0.113.2", "2001:db8::1", "198.51.100.7")

#: The operator's list filter -> the record field the oracle compares it with.
LIST_FILTERS: dict[str, str] = {
    "labels": "labels",
    "queue_names": "queue",
    "url_groups": "topic",
    "urls": "url",
    "hosts": "host",
    "paths": "path",
    "flow_control_keys": "flow_key",
    "schedule_ids": "schedule",
    "caller_ips": "caller_ip",
}
FAULT_PROFILES = ("429", "429_daily", "5xx", "drop", "partial", "latency", "mixed", "mixed")
FAULT_KINDS = ("429", "429_daily", "5xx", "drop", "partial")


@dataclass
class Scenario:
    """One seeded soak scenario."""

    seed: int
    records: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    op_kwargs: dict[str, Any]
    window: tuple[int | None, int | None]
    #: what the oracle compares: list filter name -> accepted values (a set), as generated
    wanted: dict[str, frozenset[str]]
    message_ids: frozenset[str] | None
    profile: str
    faults: FaultConfig

    def describe(self) -> str:
        window = "" if self.window == (None, None) else f" window={self.window}"
        wanted = {k: sorted(v) for k, v in self.wanted.items()}
        ids = "" if self.message_ids is None else f" message_ids=[{len(self.message_ids)}]"
        return (
            f"seed={self.seed} messages={len(self.messages)} profile={self.profile} "
            f"batch_size={self.op_kwargs['batch_size']} filters={wanted}{ids}{window}"
        )


def _pool_value(rng: random.Random, pool: tuple[str, ...], miss: str) -> str:
    return miss if rng.random() < 0.05 else rng.choice(pool)


def _list_form(rng: random.Random, values: list[str]) -> Any:
    """The same values in one of the operator's accepted input forms."""
    form = rng.choice(("list", "tuple", "comma", "text"))
    if len(values) == 1 and rng.random() < 0.5:
        return values[0]
    if form == "list":
        return list(values)
    if form == "tuple":
        return tuple(values)
    if form == "comma":
        return ", ".join(values)
    return repr(list(values))


def _date_form(rng: random.Random, ms: int) -> Any:
    form = rng.choice(("int", "iso", "datetime", "digits"))
    when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)
    if form == "int":
        return ms
    if form == "digits":
        return str(ms)
    if form == "iso":
        return when.isoformat(timespec="milliseconds")
    return when


def _fault_config(rng: random.Random, profile: str, seed: int) -> FaultConfig:
    latency = rng.uniform(0, 5)
    base: dict[str, Any] = {"seed": seed, "reset_after_s": 0, "latency_ms": latency}
    rate = rng.uniform(0.1, 0.3)
    if profile == "429":
        return FaultConfig(rate_429=rate, **base)
    if profile == "429_daily":
        return FaultConfig(rate_429_daily=rate, **base)
    if profile == "5xx":
        return FaultConfig(rate_5xx=rate, statuses_5xx=(500, 502, 503, 504), **base)
    if profile == "drop":
        return FaultConfig(rate_drop=rate, **base)
    if profile == "partial":
        return FaultConfig(rate_partial=rate, **base)
    if profile == "latency":
        return FaultConfig(**{**base, "latency_ms": rng.uniform(2, 5)})
    # mixed: request-level faults sharing at most 30 %, plus partial batch failures up to 30 %
    total = rng.uniform(0.1, 0.3)
    weights = [rng.random() + 0.1 for _ in range(4)]
    parts = [total * w / sum(weights) for w in weights]
    return FaultConfig(
        rate_429=parts[0],
        rate_429_daily=parts[1],
        rate_5xx=parts[2],
        rate_drop=parts[3],
        rate_partial=rng.uniform(0.05, 0.3),
        statuses_5xx=(500, 503),
        **base,
    )


def make_scenario(seed: int) -> Scenario:
    """A reproducible scenario: 1,500-4,000 messages, a non-empty filter set and a fault profile."""
    rng = random.Random(f"soak:{seed}")
    n = rng.randint(1500, 4000)
    records: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i in range(n):
        host, path = rng.choice(HOSTS), rng.choice(PATHS)
        if rng.random() < 0.03:  # a few messages "from the future": after the task's start
            created = TASK_START_MS + rng.randint(1, 5 * DAY_MS)
        else:
            created = TASK_START_MS - rng.randint(1, 20 * DAY_MS)
        record: dict[str, Any] = {
            "id": f"msg_soak{seed:03d}_{i:05d}",
            "host": host,
            "path": path,
            "url": f"https://{host}{path}",
            "labels": frozenset(rng.sample(LABELS, rng.choice((0, 1, 1, 1, 2, 3)))),
            "queue": rng.choice(QUEUES) if rng.random() < 0.6 else None,
            "topic": rng.choice(URL_GROUPS) if rng.random() < 0.2 else None,
            "flow_key": rng.choice(FLOW_KEYS) if rng.random() < 0.4 else None,
            "schedule": rng.choice(SCHEDULES) if rng.random() < 0.15 else None,
            "caller_ip": rng.choice(CALLER_IPS) if rng.random() < 0.8 else None,
            "created": created,
        }
        records.append(record)
        message: dict[str, Any] = {"messageId": record["id"], "url": record["url"], "createdAt": created}
        if record["labels"]:
            message["labels"] = sorted(record["labels"])
        for key, field_name in (
            ("queueName", "queue"),
            ("topicName", "topic"),
            ("flowControlKey", "flow_key"),
            ("scheduleId", "schedule"),
            ("callerIp", "caller_ip"),
        ):
            if record[field_name] is not None:
                message[key] = record[field_name]
        messages.append(message)

    op_kwargs: dict[str, Any] = {"batch_size": rng.choice((37, 100, 250, 500, "100"))}
    wanted: dict[str, frozenset[str]] = {}
    window: tuple[int | None, int | None] = (None, None)
    message_ids: frozenset[str] | None = None
    if rng.random() < 0.1:
        # explicit ids (a few hundred to a few thousand: long lists are split across requests)
        chosen = rng.sample(records, rng.randint(50, min(n, 2500)))
        ids = [r["id"] for r in chosen] + [f"msg_unknown_{k}" for k in range(rng.randint(0, 5))]
        message_ids = frozenset(ids)
        op_kwargs["message_ids"] = ids
    else:
        pools = {
            "labels": LABELS,
            "queue_names": QUEUES,
            "url_groups": URL_GROUPS,
            "urls": tuple({r["url"] for r in records}),
            "hosts": HOSTS,
            "paths": PATHS,
            "flow_control_keys": FLOW_KEYS,
            "schedule_ids": SCHEDULES,
            "caller_ips": CALLER_IPS,
        }
        kinds = rng.sample(sorted(pools), rng.choice((0, 1, 1, 2, 2, 3)))
        for kind in kinds:
            values = list(
                dict.fromkeys(
                    _pool_value(rng, tuple(sorted(pools[kind])), f"no-such-{kind}") for _ in range(rng.randint(1, 3))
                )
            )
            if kind in ("urls",):
                values = [v if v.startswith("https://") else f"https://nowhere.example/{v}" for v in values]
            wanted[kind] = frozenset(values)
            op_kwargs[kind] = _list_form(rng, values)
        if not kinds or rng.random() < 0.5:
            times = sorted({r["created"] for r in records})
            lo, hi = sorted(rng.sample(range(len(times)), 2))
            from_ms: int | None = times[lo] if rng.random() < 0.8 else None
            to_ms: int | None = times[hi] if rng.random() < 0.6 else None
            if to_ms is None and from_ms is not None and from_ms >= TASK_START_MS:
                to_ms = times[hi]  # a lower bound after the task's start needs an explicit upper bound
            if from_ms is None and to_ms is None:
                from_ms = times[lo]
            if from_ms is not None and rng.random() < 0.2:
                from_ms -= rng.randint(0, 1000)  # not exactly on a message
            window = (from_ms, to_ms)
            if from_ms is not None:
                op_kwargs["from_date"] = _date_form(rng, from_ms)
            if to_ms is not None:
                op_kwargs["to_date"] = _date_form(rng, to_ms)
    profile = FAULT_PROFILES[seed % len(FAULT_PROFILES)]
    return Scenario(
        seed=seed,
        records=records,
        messages=messages,
        op_kwargs=op_kwargs,
        window=window,
        wanted=wanted,
        message_ids=message_ids,
        profile=profile,
        faults=_fault_config(rng, profile, seed),
    )


def _has(have: frozenset[str] | str | None, values: frozenset[str]) -> bool:
    """A message's labels (a set) match if one is wanted; any other field if its value is wanted."""
    if isinstance(have, frozenset):
        return bool(have & values)
    return have is not None and have in values


def oracle(scenario: Scenario) -> set[str]:
    """
    The ids the scenario's task must cancel, from the generator's records alone.

    QStash's rules, stated here independently: values of one filter are ORed, filters are ANDed, both
    date bounds are inclusive on ``createdAt``, an unset ``to_date`` is the task's start, and
    ``message_ids`` select exactly those ids (no dates).
    """
    if scenario.message_ids is not None:
        return {r["id"] for r in scenario.records if r["id"] in scenario.message_ids}
    from_ms, to_ms = scenario.window
    upper = TASK_START_MS if to_ms is None else to_ms
    selected = set()
    for record in scenario.records:
        if from_ms is not None and record["created"] < from_ms:
            continue
        if record["created"] > upper:
            continue
        if all(_has(record[LIST_FILTERS[name]], values) for name, values in scenario.wanted.items()):
            selected.add(record["id"])
    return selected


# --------------------------------------------------------------------------- running the task


def ti_context(start: dt.datetime = TASK_START) -> Any:
    """A task context without a metadata DB: a task instance with a start date (typed loosely, like one)."""
    return {"ti": SimpleNamespace(start_date=start)}


def gave_up(err: BaseException) -> bool:
    """Whether a task failure is the legitimate end of exhausted connection retries."""
    return "gave up after" in str(err)


def run_sync(
    op_kwargs: dict[str, Any], *, task_id: str = "soak", max_runs: int = MAX_TASK_RUNS
) -> tuple[dict[str, Any], int]:
    """Run the sync operator until it succeeds; returns (XCom value, re-runs needed)."""
    for attempt in range(max_runs):
        op = QStashBulkCancelOperator(task_id=task_id, deferrable=False, **op_kwargs)
        try:
            return op.execute(ti_context()), attempt
        except AirflowException as err:
            if not gave_up(err) or attempt == max_runs - 1:
                raise
    raise AssertionError("unreachable")


async def first_event(trigger: QStashBulkCancelTrigger) -> dict[str, Any]:
    """What the triggerer does: take the trigger's first event, then close the generator."""
    agen: Any = trigger.run()  # an async generator: the triggerer closes it after the first event
    try:
        event = await agen.__anext__()
    finally:
        await agen.aclose()
    return dict(event.payload)


def run_deferrable(
    op_kwargs: dict[str, Any], *, task_id: str = "soak", max_runs: int = MAX_TASK_RUNS
) -> tuple[dict[str, Any], int]:
    """Defer, run the trigger on a fresh event loop, resume with ``execute_complete``; re-run on give-up."""
    for attempt in range(max_runs):
        op = QStashBulkCancelOperator(task_id=task_id, deferrable=True, **op_kwargs)
        try:
            op.execute(ti_context())
        except TaskDeferred as deferred:
            trigger = deferred.trigger
        else:
            raise AssertionError("the deferrable operator did not defer")
        # the triggerer rebuilds the trigger from its serialised form
        classpath, kwargs = trigger.serialize()
        assert classpath == "airflow_qstash.triggers.qstash.QStashBulkCancelTrigger"
        event = asyncio.run(first_event(QStashBulkCancelTrigger(**json.loads(json.dumps(kwargs)))))
        try:
            return op.execute_complete(ti_context(), event), attempt
        except AirflowException as err:
            if not gave_up(err) or attempt == max_runs - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What the soak saw, summed over scenarios and paths."""

    scenarios: int = 0
    scarce_scenarios: int = 0
    scarce_task_runs: int = 0
    scarce_task_reruns: int = 0
    task_runs: int = 0
    task_reruns: int = 0
    requests: int = 0
    messages_checked: int = 0
    messages_expected_cancelled: int = 0
    collateral_cancels: int = 0
    left_behind: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    profiles: Counter[str] = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def count_requests(self, log: list[dict[str, Any]]) -> None:
        self.requests += len(log)
        self.faults.update(entry["fault"] for entry in log if entry["fault"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenarios_run": self.scenarios + self.scarce_scenarios,
            "scenarios_generous_retries": self.scenarios,
            "scenarios_scarce_retries": self.scarce_scenarios,
            "task_runs": self.task_runs,
            "task_reruns_needed": self.task_reruns,
            "scarce_task_runs": self.scarce_task_runs,
            "scarce_task_reruns_needed": self.scarce_task_reruns,
            "requests": self.requests,
            "faults_injected": {kind: self.faults.get(kind, 0) for kind in FAULT_KINDS},
            "faults_injected_total": sum(self.faults.values()),
            "profiles": dict(sorted(self.profiles.items())),
            "messages_checked": self.messages_checked,
            "messages_expected_cancelled": self.messages_expected_cancelled,
            "collateral_cancels": self.collateral_cancels,
            "messages_left_behind": self.left_behind,
            **self.extra,
        }


def check_exact(emu: QStashEmulator, all_ids: set[str], expected: set[str]) -> tuple[set[str], set[str]]:
    """(collateral, left behind): cancelled but not selected, and selected but still held."""
    held = emu.held_ids()
    assert held <= all_ids, "the emulator holds messages the scenario did not create"
    cancelled = all_ids - held
    return cancelled - expected, expected & held
