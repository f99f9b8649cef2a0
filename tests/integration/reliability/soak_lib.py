"""
The fault soak's pieces, kept out of the test module so ``bench/soak_report.py`` can name them too.

* :func:`make_scenario`: a seeded store (message dicts with explicit ``createdAt``), a filter set in the
  operator's input forms, a batch size and a fault profile for one server generation (:data:`MODES`:
  ``legacy`` honours ``count`` and cancels synchronously; ``actions`` runs filter cancels as background
  bulk actions, with faults on their start, their polls and their outcome too).
* :func:`soak_emulator`: the emulator of one server generation as the soak runs it.
* :func:`oracle`: which messages the filter selects, in plain Python over the generator's own records.
  It uses neither the emulator's query code nor the provider's filter code.
* :func:`run_sync` / :func:`run_deferrable`: run the task the way Airflow would, re-running it (a task
  retry) when a run legitimately gives up after exhausting its connection retries.
* :func:`request_kinds` / :func:`joins_in`: what the request log says about starts, polls and joins.
* :class:`Figures`: what the soak saw per server generation, written to ``test-artifacts/soak-figures.json``.

The pieces both soaks draw from (the bulk-cancel soak here, the DLQ soak in ``dlq_soak_lib``) live here
once: the value pools, the record fields and the window a seeded generator draws (:func:`draw_created`,
:func:`draw_fields`, :func:`draw_window`), the input forms (:func:`list_form`, :func:`date_form`), the
request-level fault profiles (:func:`request_fault_config`), the oracle's selection (:func:`select`), the
task runner (:func:`run_task`) and the figures' fault counts and file (:func:`faults_injected`,
:func:`write_figures`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.triggers.base import BaseTrigger

from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from airflow_qstash.triggers.qstash import QStashBulkCancelTrigger
from qstash_emulator import FaultConfig, QStashEmulator
from tests.conftest import TEST_TOKEN
from tests.support.trigger_events import first_event

REPO_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO_ROOT / "test-artifacts"
SOAK_FIGURES = ARTIFACTS / "soak-figures.json"
BAD_INPUT_FIGURES = ARTIFACTS / "bad-input-figures.json"

UTC = dt.timezone.utc
#: The task's start in every scenario (``ti.start_date``): an unset ``to_date`` is pinned to it.
TASK_START = dt.datetime(2026, 11, 1, tzinfo=UTC)
TASK_START_MS = 1_793_491_200_000
DAY_MS = 86_400_000

#: The server generations the soak runs against (the emulator's ``bulk_cancel``).
MODES = ("legacy", "actions")
#: Messages per second one bulk action cancels in the soak's ``actions`` emulator: a few thousand
#: messages take a few ticks of its worker, so each action is polled a few times.
ACTION_RATE = 20_000.0
#: How long a filter cancel without ``async=true`` waits (the provider always sends ``async=true``).
SYNC_WAIT = 0.2
#: Connection settings of the soak: retries generous enough that 30 % faults rarely exhaust them, and
#: polls of a bulk action every 20 ms (the first pause is ``min(1 s, poll_interval_max)``).
SOAK_RETRIES: dict[str, Any] = {
    "max_retries": 10,
    "backoff_initial": 0,
    "backoff_max": 0.01,
    "timeout": 10,
    "poll_interval_max": 0.02,
}
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
#: The message field -> the record field a generator drew it as (set on the message when not ``None``).
MESSAGE_FIELDS = (
    ("queueName", "queue"),
    ("topicName", "topic"),
    ("flowControlKey", "flow_key"),
    ("scheduleId", "schedule"),
    ("callerIp", "caller_ip"),
)
#: Fault profiles per server generation; a scenario's seed picks one. ``actions`` adds faults of the
#: bulk-action endpoints: a spurious 412 on the start, a start whose answer is lost (429 without
#: rate-limit headers while the action runs) and an action that finishes leaving part of its snapshot.
#: Request-level faults (429, 5xx, drops) hit every ``/v2`` request, so polls and listings too.
FAULT_PROFILES: dict[str, tuple[str, ...]] = {
    "legacy": ("429", "429_daily", "5xx", "drop", "partial", "latency", "mixed", "mixed"),
    "actions": ("429", "5xx", "drop", "412", "start_lost", "action_partial", "mixed", "mixed"),
}
#: The request log's fault names counted in the figures, per server generation.
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "legacy": ("429", "429_daily", "5xx", "drop", "partial"),
    "actions": ("429", "429_daily", "5xx", "drop", "partial", "412", "start_lost", "action_partial"),
}


@dataclass
class Scenario:
    """One seeded soak scenario."""

    seed: int
    mode: str
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
            f"mode={self.mode} seed={self.seed} messages={len(self.messages)} profile={self.profile} "
            f"batch_size={self.op_kwargs['batch_size']} filters={wanted}{ids}{window}"
        )


def _pool_value(rng: random.Random, pool: tuple[str, ...], miss: str) -> str:
    return miss if rng.random() < 0.05 else rng.choice(pool)


def list_form(rng: random.Random, values: list[Any], *, single: float, single_first: bool = False) -> Any:
    """
    The same values in one of the operators' accepted input forms, or one value alone with chance ``single``.

    :param single_first: draw that chance before the form (the DLQ generator's order) rather than after it;
        the order of the draws decides every seeded scenario, so each generator keeps its own.
    """
    if single_first and len(values) == 1 and rng.random() < single:
        return values[0]
    form = rng.choice(("list", "tuple", "comma", "text"))
    if not single_first and len(values) == 1 and rng.random() < single:
        return values[0]
    if form == "list":
        return list(values)
    if form == "tuple":
        return tuple(values)
    if form == "comma":
        return ", ".join(str(v) for v in values)
    return repr(list(values))


def date_form(rng: random.Random, ms: int) -> Any:
    """The instant ``ms`` in one of the operators' accepted date forms."""
    form = rng.choice(("int", "iso", "datetime", "digits"))
    when = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)
    if form == "int":
        return ms
    if form == "digits":
        return str(ms)
    if form == "iso":
        return when.isoformat(timespec="milliseconds")
    return when


def request_fault_config(
    rng: random.Random,
    profile: str,
    seed: int,
    *,
    latency_ms: tuple[float, float] = (0, 5),
    slow_ms: tuple[float, float] = (2, 5),
    partial: bool = True,
) -> FaultConfig:
    """
    Request-level faults of one profile (every ``/v2`` request): 429 with burst or daily rate-limit
    headers, 5xx, dropped connections, partial batch failures, latency, or a mix.

    :param latency_ms: the range of every request's latency; ``slow_ms`` that of the ``latency`` profile.
    :param partial: whether the mix adds partial batch failures (a bulk-cancel fault only).
    """
    base: dict[str, Any] = {"seed": seed, "reset_after_s": 0, "latency_ms": rng.uniform(*latency_ms)}
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
        return FaultConfig(**{**base, "latency_ms": rng.uniform(*slow_ms)})
    # mixed: request-level faults sharing at most 30 %, plus (for a bulk cancel) partial batch failures
    total = rng.uniform(0.1, 0.3)
    weights = [rng.random() + 0.1 for _ in range(4)]
    parts = [total * w / sum(weights) for w in weights]
    extra = {"rate_partial": rng.uniform(0.05, 0.3)} if partial else {}
    return FaultConfig(
        rate_429=parts[0],
        rate_429_daily=parts[1],
        rate_5xx=parts[2],
        rate_drop=parts[3],
        statuses_5xx=(500, 503),
        **extra,
        **base,
    )


def _fault_config(rng: random.Random, profile: str, seed: int, mode: str) -> FaultConfig:
    if mode == "actions":
        return _action_fault_config(rng, profile, seed)
    return request_fault_config(rng, profile, seed)


def _action_fault_config(rng: random.Random, profile: str, seed: int) -> FaultConfig:
    """Faults for a bulk-action server: on every request (so on polls and listings), and on the actions."""
    base: dict[str, Any] = {"seed": seed, "reset_after_s": 0, "latency_ms": rng.uniform(0, 5)}
    rate = rng.uniform(0.1, 0.3)
    if profile == "429":
        return FaultConfig(rate_429=rate * 0.6, rate_429_daily=rate * 0.4, **base)
    if profile == "5xx":
        return FaultConfig(rate_5xx=rate, statuses_5xx=(500, 502, 503, 504), **base)
    if profile == "drop":
        return FaultConfig(rate_drop=rate, **base)
    if profile == "412":
        return FaultConfig(rate_spurious_412=rng.uniform(0.3, 0.6), **base)
    if profile == "start_lost":
        return FaultConfig(rate_start_lost=rng.uniform(0.3, 0.6), **base)
    if profile == "action_partial":
        return FaultConfig(rate_action_partial=rng.uniform(0.3, 0.6), rate_partial=rate, **base)
    # mixed: request-level faults sharing at most 30 %, plus every bulk-action fault
    total = rng.uniform(0.1, 0.3)
    weights = [rng.random() + 0.1 for _ in range(4)]
    parts = [total * w / sum(weights) for w in weights]
    return FaultConfig(
        rate_429=parts[0],
        rate_429_daily=parts[1],
        rate_5xx=parts[2],
        rate_drop=parts[3],
        rate_partial=rng.uniform(0.05, 0.3),
        rate_spurious_412=rng.uniform(0.05, 0.2),
        rate_start_lost=rng.uniform(0.05, 0.2),
        rate_action_partial=rng.uniform(0.05, 0.3),
        statuses_5xx=(500, 503),
        **base,
    )


def draw_created(rng: random.Random) -> int:
    """A creation instant: mostly within 20 days before the task's start, a few after it (never selected)."""
    if rng.random() < 0.03:
        return TASK_START_MS + rng.randint(1, 5 * DAY_MS)
    return TASK_START_MS - rng.randint(1, 20 * DAY_MS)


def draw_fields(rng: random.Random) -> dict[str, Any]:
    """A record's labels (a frozenset) and optional queue, URL group, flow key, schedule and caller IP."""
    return {
        "labels": frozenset(rng.sample(LABELS, rng.choice((0, 1, 1, 1, 2, 3)))),
        "queue": rng.choice(QUEUES) if rng.random() < 0.6 else None,
        "topic": rng.choice(URL_GROUPS) if rng.random() < 0.2 else None,
        "flow_key": rng.choice(FLOW_KEYS) if rng.random() < 0.4 else None,
        "schedule": rng.choice(SCHEDULES) if rng.random() < 0.15 else None,
        "caller_ip": rng.choice(CALLER_IPS) if rng.random() < 0.8 else None,
    }


def with_fields(message: dict[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """``message`` with the record's labels (sorted) and every :data:`MESSAGE_FIELDS` value it has."""
    if record["labels"]:
        message["labels"] = sorted(record["labels"])
    for key, name in MESSAGE_FIELDS:
        if record[name] is not None:
            message[key] = record[name]
    return message


def draw_window(
    rng: random.Random, records: list[dict[str, Any]], op_kwargs: dict[str, Any], *, filtered: bool
) -> tuple[int | None, int | None]:
    """
    A date window over the records' creation instants, never empty, put into ``op_kwargs`` in one of the
    date forms; returns ``(from_ms, to_ms)`` as generated (``None``: unset).

    :param filtered: whether other filters are set (else a window must bound more than the task's start).
    """
    times = sorted({r["created"] for r in records})
    past = [t for t in times if t <= TASK_START_MS]  # a prefix of times
    lo, hi = sorted(rng.sample(range(len(times)), 2))
    lower = past[min(lo, len(past) - 1)]  # <= times[lo] < times[hi]: the window is never empty
    # A lower bound lies before the task's start (a later one is refused: it passes the pinned
    # to_date); an upper bound may lie after it, and is then pinned to the start.
    from_ms: int | None = lower if rng.random() < 0.8 else None
    to_ms: int | None = times[hi] if rng.random() < 0.6 else None
    if to_ms is not None and rng.random() < 0.2:
        to_ms = times[-1]  # the last record's creation, after the task's start: pinned to the start
    if from_ms is None and (to_ms is None or (to_ms >= TASK_START_MS and not filtered)):
        from_ms = lower  # a to_date at or after the start selects everything: not a filter alone
    if from_ms is not None and rng.random() < 0.2:
        from_ms -= rng.randint(0, 1000)  # not exactly on a record
    if from_ms is not None:
        op_kwargs["from_date"] = date_form(rng, from_ms)
    if to_ms is not None:
        op_kwargs["to_date"] = date_form(rng, to_ms)
    return from_ms, to_ms


def make_scenario(seed: int, mode: str = "legacy") -> Scenario:
    """
    A reproducible scenario: 1,500-4,000 messages, a non-empty filter set and a fault profile for the
    server generation ``mode``. The data and the filters depend on the seed only.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    rng = random.Random(f"soak:{seed}")
    n = rng.randint(1500, 4000)
    records: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for i in range(n):
        host, path = rng.choice(HOSTS), rng.choice(PATHS)
        created = draw_created(rng)
        record: dict[str, Any] = {
            "id": f"msg_soak{seed:03d}_{i:05d}",
            "host": host,
            "path": path,
            "url": f"https://{host}{path}",
            **draw_fields(rng),
            "created": created,
        }
        records.append(record)
        message: dict[str, Any] = {"messageId": record["id"], "url": record["url"], "createdAt": created}
        messages.append(with_fields(message, record))

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
            op_kwargs[kind] = list_form(rng, values, single=0.5)
        if not kinds or rng.random() < 0.5:
            window = draw_window(rng, records, op_kwargs, filtered=bool(kinds))
    profile = FAULT_PROFILES[mode][seed % len(FAULT_PROFILES[mode])]
    return Scenario(
        seed=seed,
        mode=mode,
        records=records,
        messages=messages,
        op_kwargs=op_kwargs,
        window=window,
        wanted=wanted,
        message_ids=message_ids,
        profile=profile,
        faults=_fault_config(rng, profile, seed, mode),
    )


def has(have: Any, values: frozenset[Any]) -> bool:
    """A record's labels (a set) match if one is wanted; any other field if its value is wanted."""
    if isinstance(have, frozenset):
        return bool(have & values)
    return have is not None and have in values


def select(
    records: list[dict[str, Any]],
    window: tuple[int | None, int | None],
    wanted: Mapping[str, frozenset[Any]],
    list_filters: Mapping[str, str],
    key: str,
) -> set[str]:
    """
    The ``key`` of every record the filters select: values of one filter ORed, filters ANDed, both date
    bounds inclusive, the upper one the earlier of the given ``to_date`` and the task's start.

    :param list_filters: the operator's list filter -> the record field it compares.
    """
    from_ms, to_ms = window
    upper = effective_to_date(to_ms)
    return {
        record[key]
        for record in records
        if (from_ms is None or record["created"] >= from_ms)
        and record["created"] <= upper
        and all(has(record[list_filters[name]], values) for name, values in wanted.items())
    }


def effective_to_date(to_ms: int | None) -> int:
    """The upper bound a task uses: the earlier of the given ``to_date`` and the task's start."""
    return TASK_START_MS if to_ms is None else min(to_ms, TASK_START_MS)


def oracle(scenario: Scenario) -> set[str]:
    """
    The ids the scenario's task must cancel, from the generator's records alone.

    QStash's rules, stated here independently: values of one filter are ORed, filters are ANDed, both
    date bounds are inclusive on ``createdAt``, the effective ``to_date`` is the earlier of the one given
    and the task's start (the task's start when unset), and ``message_ids`` select exactly those ids (no
    dates).
    """
    if scenario.message_ids is not None:
        return {r["id"] for r in scenario.records if r["id"] in scenario.message_ids}
    return select(scenario.records, scenario.window, scenario.wanted, LIST_FILTERS, "id")


# --------------------------------------------------------------------------- the server and the task


def soak_emulator(mode: str, **options: Any) -> QStashEmulator:
    """
    The in-process emulator of one server generation as the soak runs it (``with soak_emulator(m) as emu``).

    :param mode: ``"legacy"`` or ``"actions"`` (see :data:`MODES`).
    :param options: more :class:`QStashEmulator` arguments (``action_rate`` for a slower server).
    """
    options.setdefault("action_rate", ACTION_RATE)
    options.setdefault("sync_wait", SYNC_WAIT)
    return QStashEmulator(token=TEST_TOKEN, bulk_cancel=mode, **options)


def conn_env(conn_id: str) -> str:
    """The environment variable that holds connection ``conn_id`` (``AIRFLOW_CONN_<ID>``)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def ti_context(start: dt.datetime = TASK_START) -> Any:
    """A task context without a metadata DB: a task instance with a start date (typed loosely, like one)."""
    return {"ti": SimpleNamespace(start_date=start)}


def gave_up(err: BaseException) -> bool:
    """Whether a task failure is the legitimate end of exhausted connection retries."""
    return "gave up after" in str(err)


def trigger_event(op: Any, trigger_cls: type[BaseTrigger], classpath: str) -> dict[str, Any]:
    """Run ``op`` until it defers, rebuild its trigger from the serialised form, run it on a fresh loop."""
    try:
        op.execute(ti_context())
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    else:
        raise AssertionError("the deferrable operator did not defer")
    # the triggerer rebuilds the trigger from its serialised form
    serialized_path, kwargs = trigger.serialize()
    assert serialized_path == classpath, serialized_path
    return asyncio.run(first_event(trigger_cls(**json.loads(json.dumps(kwargs)))))


def run_task(
    make_operator: Callable[[bool], Any],
    *,
    deferrable: bool,
    trigger_cls: type[BaseTrigger],
    classpath: str,
    max_runs: int,
) -> tuple[dict[str, Any], int]:
    """
    Run a task the way Airflow would until it succeeds: on a worker (``execute``), or deferred (the
    trigger through :func:`trigger_event`, then ``execute_complete``); a run that gives up after
    exhausting its connection retries is run again (a task retry), at most ``max_runs`` times in all.

    :param make_operator: a fresh operator for ``deferrable`` (a task try builds its operator anew).
    :param classpath: the trigger's serialised class path the triggerer imports.
    :return: (XCom value, re-runs needed).
    """
    for attempt in range(max_runs):
        op = make_operator(deferrable)
        event = trigger_event(op, trigger_cls, classpath) if deferrable else None
        try:
            if event is None:
                return op.execute(ti_context()), attempt
            return op.execute_complete(ti_context(), event), attempt
        except AirflowException as err:
            if not gave_up(err) or attempt == max_runs - 1:
                raise
    raise AssertionError("unreachable")


def run_bulk_cancel(
    op_kwargs: dict[str, Any],
    *,
    deferrable: bool,
    task_id: str = "soak",
    max_runs: int = MAX_TASK_RUNS,
    conn_id: str = "qstash_default",
) -> tuple[dict[str, Any], int]:
    """Run the bulk-cancel task (:func:`run_task`) until it succeeds; returns (XCom value, re-runs needed)."""

    def make_operator(deferrable: bool) -> QStashBulkCancelOperator:
        return QStashBulkCancelOperator(task_id=task_id, deferrable=deferrable, qstash_conn_id=conn_id, **op_kwargs)

    return run_task(
        make_operator,
        deferrable=deferrable,
        trigger_cls=QStashBulkCancelTrigger,
        classpath="airflow_qstash.triggers.qstash.QStashBulkCancelTrigger",
        max_runs=max_runs,
    )


#: The sync operator until it succeeds; and deferred, the trigger on a fresh event loop, then resumed.
run_sync = functools.partial(run_bulk_cancel, deferrable=False)
run_deferrable = functools.partial(run_bulk_cancel, deferrable=True)


# --------------------------------------------------------------------------- reading the request log

#: ``GET /v2/bulkActions/{actionId}``: one poll of one action.
POLL_PREFIX = "/v2/bulkActions/"
LISTING = "/v2/bulkActions"
BULK_CANCEL = "/v2/messages"


def request_kind(entry: dict[str, Any]) -> str:
    """``start`` (a bulk cancel), ``poll``, ``listing`` or ``other`` for one request log entry."""
    if (entry["method"], entry["path"]) == ("DELETE", BULK_CANCEL):
        return "start"
    if entry["method"] == "GET" and entry["path"].startswith(POLL_PREFIX):
        return "poll"
    if (entry["method"], entry["path"]) == ("GET", LISTING):
        return "listing"
    return "other"


def request_kinds(log: list[dict[str, Any]]) -> Counter[str]:
    """How many requests of each :func:`request_kind` the log holds."""
    return Counter(request_kind(entry) for entry in log)


def polled_ids(log: list[dict[str, Any]]) -> set[str]:
    """The action ids that were polled (answered or not)."""
    return {e["path"][len(POLL_PREFIX) :] for e in log if request_kind(e) == "poll"}


def joins_in(log: list[dict[str, Any]]) -> int:
    """
    How many times a client joined an action it had no start answer for: a listing answered 200 whose next
    request (the log of one sequential client, in arrival order) polls an action rather than starting again.
    """
    ordered = sorted(log, key=lambda entry: entry["time"])
    joins = 0
    for entry, after in itertools.pairwise(ordered):
        if request_kind(entry) == "listing" and entry["status"] == 200 and request_kind(after) == "poll":
            joins += 1
    return joins


def fault_names(log: list[dict[str, Any]]) -> Counter[str]:
    """The faults applied, one count per fault (``start_lost+action_partial`` counts both)."""
    return Counter(name for entry in log if entry["fault"] for name in str(entry["fault"]).split("+"))


# --------------------------------------------------------------------------- figures


def faults_injected(faults: Counter[str], kinds: tuple[str, ...]) -> dict[str, Any]:
    """The figures' fault counts: per kind counted (zeros too), and their total."""
    return {
        "faults_injected": {kind: faults.get(kind, 0) for kind in kinds},
        "faults_injected_total": sum(faults.get(kind, 0) for kind in kinds),
    }


def write_figures(path: Path, figures: dict[str, Any]) -> None:
    """Write a soak's figures as indented JSON under ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


@dataclass(kw_only=True)
class RunCounts:
    """The scenarios a soak ran and the task runs they took (both soaks' figures count them so)."""

    scenarios: int = 0
    task_runs: int = 0
    task_reruns: int = 0

    def count_scenario(self, per_path: list[int]) -> int:
        """Add one scenario run once per path (``per_path``: the re-runs each needed); returns its re-runs."""
        reruns = sum(per_path)
        self.scenarios += 1
        self.task_runs += len(per_path) + reruns
        self.task_reruns += reruns
        return reruns


@dataclass
class Figures(RunCounts):
    """What the soak saw against one server generation, summed over scenarios and paths."""

    mode: str
    #: the scenarios run again with one retry per request
    scarce: RunCounts = field(default_factory=RunCounts)
    requests: Counter[str] = field(default_factory=Counter)
    actions: int = 0
    joins: int = 0
    messages_checked: int = 0
    messages_expected_cancelled: int = 0
    collateral_cancels: int = 0
    left_behind: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    profiles: Counter[str] = field(default_factory=Counter)

    def count_requests(self, log: list[dict[str, Any]]) -> None:
        """Add one run's request log: requests by kind, faults by name, joins."""
        self.requests.update(request_kinds(log))
        self.faults.update(fault_names(log))
        self.joins += joins_in(log)

    def to_dict(self) -> dict[str, Any]:
        kinds = FAULT_KINDS[self.mode]
        return {
            "mode": self.mode,
            "scenarios_run": self.scenarios + self.scarce.scenarios,
            "scenarios_generous_retries": self.scenarios,
            "scenarios_scarce_retries": self.scarce.scenarios,
            "task_runs": self.task_runs,
            "task_reruns_needed": self.task_reruns,
            "scarce_task_runs": self.scarce.task_runs,
            "scarce_task_reruns_needed": self.scarce.task_reruns,
            "requests": sum(self.requests.values()),
            "bulk_cancel_requests": self.requests.get("start", 0),
            "polls": self.requests.get("poll", 0),
            "listings": self.requests.get("listing", 0),
            "bulk_actions": self.actions,
            "joins": self.joins,
            **faults_injected(self.faults, kinds),
            "profiles": dict(sorted(self.profiles.items())),
            "messages_checked": self.messages_checked,
            "messages_expected_cancelled": self.messages_expected_cancelled,
            "collateral_cancels": self.collateral_cancels,
            "messages_left_behind": self.left_behind,
        }


@dataclass
class SoakFigures:
    """The whole soak: :class:`Figures` per server generation, and the runs that are not scenarios."""

    modes: dict[str, Figures] = field(default_factory=lambda: {mode: Figures(mode) for mode in MODES})
    producer_runs: list[dict[str, Any]] = field(default_factory=list)
    kill_runs: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, mode: str) -> Figures:
        return self.modes[mode]

    @property
    def ran_scenarios(self) -> bool:
        return any(f.scenarios or f.scarce.scenarios for f in self.modes.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "modes": {mode: figures.to_dict() for mode, figures in self.modes.items()},
            "producer_runs": self.producer_runs,
            "kill_runs": self.kill_runs,
        }

    def write(self) -> None:
        """Write ``test-artifacts/soak-figures.json``."""
        write_figures(SOAK_FIGURES, self.to_dict())


def check_exact(emu: QStashEmulator, all_ids: set[str], expected: set[str]) -> tuple[set[str], set[str]]:
    """(collateral, left behind): cancelled but not selected, and selected but still held."""
    held = emu.held_ids()
    assert held <= all_ids, "the emulator holds messages the scenario did not create"
    cancelled = all_ids - held
    return cancelled - expected, expected & held
