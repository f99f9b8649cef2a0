"""The example DAGs parse cleanly, offline, with the schedules and forms their docs promise.

No metadata DB: ``DagBag`` only parses files. Import hygiene (what a DAG file pulls in at parse time)
is checked in a fresh interpreter per file, against a baseline of what Airflow itself imports.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.timetables.interval import CronDataIntervalTimetable
from airflow.timetables.trigger import CronTriggerTimetable

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.operators.qstash import QStashBulkCancelOperator
from tests.support.example_dags import DAG_FOLDER, REPO, NetworkBlocked, guard_network

DAG_FILES = sorted(DAG_FOLDER.glob("*.py"))
SCHEDULED = ("qstash_scheduled_cleanup", "qstash_backfill_cleanup")
ON_DEMAND = ("qstash_on_demand_cancel", "qstash_on_demand_cancel_deferrable")
TASK_START = pendulum.datetime(2026, 11, 2, 0, 5, tz="UTC")


def test_network_guard_bites(monkeypatch: pytest.MonkeyPatch):
    attempts: list[Any] = []
    guard_network(monkeypatch, attempts)
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("127.0.0.1", 9))
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("qstash.upstash.io", 443), timeout=1)
    assert [kind for kind, _ in attempts] == ["connect", "getaddrinfo"]


def test_example_dags_parse_without_errors_or_network(parsed: SimpleNamespace):
    assert parsed.dagbag.import_errors == {}
    assert parsed.network_attempts == []
    # The DAGs this file checks are there; DAGs of other example files (DLQ, mapped fan-out) have their own tests.
    assert {*SCHEDULED, *ON_DEMAND} <= set(parsed.dagbag.dag_ids)
    assert {Path(p).name for p in parsed.dagbag.file_last_changed} == {p.name for p in DAG_FILES}
    dag_files = {Path(dag.fileloc).name for dag in parsed.dagbag.dags.values()}
    assert dag_files == {p.name for p in DAG_FILES}, "every example file defines at least one DAG"


@pytest.mark.parametrize("dag_id", [*SCHEDULED, *ON_DEMAND])
def test_each_dag_has_one_qstash_task(parsed: SimpleNamespace, dag_id: str):
    dag = parsed.dagbag.dags[dag_id]
    assert dag is not None
    assert [type(task) for task in dag.tasks] == [QStashBulkCancelOperator]
    assert "qstash" in dag.tags


@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_scheduled_dags_use_a_data_interval_timetable(parsed: SimpleNamespace, dag_id: str):
    dag = parsed.dagbag.dags[dag_id]
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert not isinstance(dag.timetable, CronTriggerTimetable)
    # A real, non-zero-width window: what the operator's from_date/to_date templates render.
    interval = dag.timetable.infer_manual_data_interval(run_after=TASK_START)
    assert interval.end - interval.start == pendulum.duration(days=1)
    task = dag.tasks[0]
    assert (task.from_date, task.to_date) == ("{{ data_interval_start }}", "{{ data_interval_end }}")


def test_backfill_dag_catches_up_and_scheduled_dag_does_not(parsed: SimpleNamespace):
    assert parsed.dagbag.dags["qstash_backfill_cleanup"].catchup is True
    assert parsed.dagbag.dags["qstash_scheduled_cleanup"].catchup is False


@pytest.mark.parametrize("dag_id", SCHEDULED)
def test_scheduled_task_renders_its_data_interval_into_a_valid_plan(parsed: SimpleNamespace, dag_id: str):
    dag = parsed.dagbag.dags[dag_id]
    interval = dag.timetable.infer_manual_data_interval(run_after=TASK_START)
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"data_interval_start": interval.start, "data_interval_end": interval.end})
    run = task.plan(now_ms=TASK_START.int_timestamp * 1000)
    assert run.bulk_filter.from_date == interval.start.int_timestamp * 1000
    assert run.bulk_filter.to_date == interval.end.int_timestamp * 1000
    assert run.bulk_filter.labels


@pytest.mark.parametrize("dag_id", ON_DEMAND)
def test_on_demand_dags_have_no_schedule_and_a_trigger_form(parsed: SimpleNamespace, dag_id: str):
    dag = parsed.dagbag.dags[dag_id]
    # Airflow 2.11 keeps the DAG's schedule argument as ``schedule_interval``, 3.x as ``schedule``
    assert (dag.schedule if hasattr(dag, "schedule") else dag.schedule_interval) is None
    params = dag.params

    for name in ("labels", "queue_names", "url_groups", "urls"):
        values = params.get_param(name)
        assert values.schema["type"] == ["null", "array"]
        assert values.schema["items"] == {"type": "string"}
        assert values.value == []
    for name in ("from_date", "to_date"):
        date = params.get_param(name)
        assert date.schema["format"] == "date-time"
        assert date.schema["type"] == ["null", "string"]
        assert date.value is None
    batch_size = params.get_param("batch_size")
    assert batch_size.schema["type"] == "integer"
    assert (batch_size.schema["minimum"], batch_size.schema["maximum"]) == (1, 500)
    cancel_all = params.get_param("cancel_all")
    assert cancel_all.schema["type"] == ["null", "boolean"]
    assert cancel_all.value is False


def _required_in_the_form(schema: dict[str, Any]) -> bool:
    """Airflow 3's Trigger form marks a param required (red asterisk) when its type excludes ``null``."""
    kinds = schema.get("type")
    return bool(kinds) and (not isinstance(kinds, list) or "null" not in kinds)


@pytest.mark.parametrize("dag_id", ON_DEMAND)
def test_on_demand_form_requires_only_what_is_required(parsed: SimpleNamespace, dag_id: str):
    params = parsed.dagbag.dags[dag_id].params
    required = {name for name in params if _required_in_the_form(params.get_param(name).schema)}
    assert required == {"batch_size"}


@pytest.mark.parametrize("dag_id", ON_DEMAND)
def test_on_demand_form_fields_are_the_optional_filters(parsed: SimpleNamespace, dag_id: str):
    task = parsed.dagbag.dags[dag_id].tasks[0]
    filters = {"labels", "queue_names", "url_groups", "urls", "from_date", "to_date"}
    assert set(task.optional_filters) == filters
    assert set(task.templated) == filters
    assert filters <= set(parsed.dagbag.dags[dag_id].params)


def test_on_demand_dags_differ_only_in_deferrable(parsed: SimpleNamespace):
    sync_task = parsed.dagbag.dags["qstash_on_demand_cancel"].tasks[0]
    deferred_task = parsed.dagbag.dags["qstash_on_demand_cancel_deferrable"].tasks[0]
    assert (sync_task.deferrable, deferred_task.deferrable) == (False, True)


def _render_on_demand(parsed: SimpleNamespace, **form: Any) -> QStashBulkCancelOperator:
    dag = parsed.dagbag.dags["qstash_on_demand_cancel"]
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"params": {**dag.params.dump(), **form}})
    return task


@pytest.mark.parametrize(
    "blank",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            dict.fromkeys(["labels", "queue_names", "url_groups", "urls", "from_date", "to_date", "cancel_all"]),
            id="all-null",
        ),
        pytest.param({"labels": [], "from_date": "", "to_date": ""}, id="empty-strings"),
    ],
)
def test_on_demand_blank_form_is_refused(parsed: SimpleNamespace, blank: dict[str, Any]):
    task = _render_on_demand(parsed, **blank)
    with pytest.raises(QStashInputError, match="No filter given") as err:
        task.plan(now_ms=TASK_START.int_timestamp * 1000)
    assert "set cancel_all=True" in str(err.value)


def test_on_demand_form_with_labels_plans_an_open_window_pinned_to_now(parsed: SimpleNamespace):
    now_ms = TASK_START.int_timestamp * 1000
    run = _render_on_demand(parsed, labels=["a", "b"], batch_size=100).plan(now_ms=now_ms)
    assert run.bulk_filter.labels == ("a", "b")
    assert (run.bulk_filter.from_date, run.bulk_filter.to_date) == (None, now_ms)
    assert (run.batch_size, run.max_batches) == (100, 100_000)


def test_on_demand_form_window_is_read_from_the_date_fields(parsed: SimpleNamespace):
    now_ms = TASK_START.int_timestamp * 1000
    form = {"labels": ["a"], "from_date": "2026-10-05T00:00:00Z", "to_date": "2026-10-06T12:00:00Z"}
    run = _render_on_demand(parsed, **form).plan(now_ms=now_ms)
    window = (pendulum.datetime(2026, 10, 5, tz="UTC"), pendulum.datetime(2026, 10, 6, 12, tz="UTC"))
    assert (run.bulk_filter.from_date, run.bulk_filter.to_date) == tuple(t.int_timestamp * 1000 for t in window)


def test_on_demand_form_with_cancel_all_is_accepted(parsed: SimpleNamespace):
    now_ms = TASK_START.int_timestamp * 1000
    run = _render_on_demand(parsed, cancel_all=True).plan(now_ms=now_ms)
    assert run.bulk_filter.select_all is True
    assert run.bulk_filter.to_date == now_ms


# --------------------------------------------------------------------------- the forms' Advanced section

#: The form DAGs -> the fields of their collapsed "Advanced" section: the knob that only matters on older
#: servers (batch_size) and the bounds. Everything else (the filters, the window, the switches, the retries
#: override) stays in the first section, which Airflow 3's UI opens.
ADVANCED_FIELDS = {
    "qstash_on_demand_cancel": ["batch_size", "max_batches", "action_timeout"],
    "qstash_on_demand_cancel_deferrable": ["batch_size", "max_batches", "action_timeout"],
    "qstash_dlq_replay": ["max_requests"],
}


@pytest.mark.parametrize("dag_id", sorted(ADVANCED_FIELDS))
def test_the_forms_advanced_section_holds_exactly_the_knobs_and_the_bounds(parsed: SimpleNamespace, dag_id: str):
    params = parsed.dagbag.dags[dag_id].params
    sections = {name: params.get_param(name).schema.get("section") for name in params}
    assert [name for name, section in sections.items() if section == "Advanced"] == ADVANCED_FIELDS[dag_id]
    assert set(sections.values()) == {None, "Advanced"}  # no third section
    # the UI lays sections out in the order their first field appears: the open default section comes first
    assert list(sections)[-len(ADVANCED_FIELDS[dag_id]) :] == ADVANCED_FIELDS[dag_id]
    task = parsed.dagbag.dags[dag_id].tasks[0]
    assert not set(ADVANCED_FIELDS[dag_id]) & set(task.optional_filters)  # no filter hides in Advanced


@pytest.mark.parametrize("dag_id", sorted(ADVANCED_FIELDS))
def test_a_collapsed_field_never_needs_the_user(parsed: SimpleNamespace, dag_id: str):
    """A field the user does not see must not block the run: each has a default, or may stay blank."""
    params = parsed.dagbag.dags[dag_id].params
    for name in ADVANCED_FIELDS[dag_id]:
        param = params.get_param(name)
        assert param.value is not None or not _required_in_the_form(param.schema), name
        param.resolve(param.value)  # the default passes its own schema


@pytest.mark.parametrize("dag_id", ON_DEMAND)
@pytest.mark.parametrize(("form", "seconds"), [(90, 90.0), (None, 21_600.0)], ids=["90", "blank"])
def test_the_on_demand_forms_action_timeout_reaches_the_run(
    parsed: SimpleNamespace, dag_id: str, form: Any, seconds: float
):
    dag = parsed.dagbag.dags[dag_id]
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"params": {**dag.params.dump(), "labels": ["a"], "action_timeout": form}})
    assert task.plan(now_ms=TASK_START.int_timestamp * 1000).action_timeout == seconds


@pytest.mark.parametrize(("form", "requests"), [(5, 5), (None, 100_000)], ids=["5", "blank"])
def test_the_replay_forms_max_requests_reaches_the_run(parsed: SimpleNamespace, form: Any, requests: int):
    dag = parsed.dagbag.dags["qstash_dlq_replay"]
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"params": {**dag.params.dump(), "labels": ["a"], "max_requests": form}})
    assert task.plan(now_ms=TASK_START.int_timestamp * 1000).max_requests == requests


@pytest.mark.parametrize(
    ("switch", "dry_run"), [(None, True), (True, True), (False, False)], ids=["default", "on", "off"]
)
def test_the_replay_forms_preview_switch_is_on_by_default_and_reaches_dry_run(
    parsed: SimpleNamespace, switch: Any, dry_run: bool
):
    from airflow_qstash.inputs import parse_bool

    dag = parsed.dagbag.dags["qstash_dlq_replay"]
    param = dag.params.get_param("preview_only")
    assert (param.value, param.schema["type"], param.schema.get("section")) == (True, "boolean", None)
    form = {**dag.params.dump(), "labels": ["a"]}
    if switch is not None:
        form["preview_only"] = switch
    task = copy.deepcopy(dag.tasks[0])
    task.render_template_fields({"params": form})
    assert parse_bool(task.dry_run, "dry_run") is dry_run


IMPORT_PROBE = textwrap.dedent(
    """
    import json, runpy, socket, sys

    attempts = []

    def blocked(*args, **kwargs):
        attempts.append(repr(args))
        raise OSError("network blocked while importing a DAG file")

    socket.socket.connect = blocked
    socket.socket.connect_ex = blocked
    socket.getaddrinfo = blocked

    # What Airflow itself (and the DAG authoring API) imports: the baseline. It includes a DAG with one
    # plain task, since constructing an operator is Airflow's own cost (on 3.0 BaseOperator.__init__ loads
    # the serializer, and with it httpx): only what the DAG file adds is judged.
    import pendulum
    from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, conf
    from airflow.providers.common.compat.sdk import DAG, Param
    from airflow.timetables.interval import CronDataIntervalTimetable

    with DAG("import_probe_baseline", schedule=None):
        BaseOperator(task_id="baseline_task")

    baseline = set(sys.modules)
    attempts.clear()
    runpy.run_path(sys.argv[1], run_name="dag_file_under_test")
    print(json.dumps({"new": sorted(set(sys.modules) - baseline), "attempts": attempts}))
    """
)
HEAVY_PREFIXES = ("requests", "httpx", "airflow_qstash.hooks", "airflow_qstash.triggers", "qstash_emulator")
#: An ``AssetWatcher`` holds its trigger instance, built when the DAG file is parsed: the event trigger's
#: module is the one trigger module a DAG file may import (it imports its hook only in the triggerer).
EVENT_TRIGGER_MODULES = frozenset({"airflow_qstash.triggers", "airflow_qstash.triggers.dlq_events"})


@pytest.fixture(scope="module")
def import_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run :data:`IMPORT_PROBE` on every DAG file, each in its own fresh interpreter, concurrently."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path_factory.mktemp("probe_airflow_home")),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    }
    probes = {
        dag_file.stem: subprocess.Popen(
            [sys.executable, "-c", IMPORT_PROBE, str(dag_file)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for dag_file in DAG_FILES
    }
    reports = {}
    for stem, probe in probes.items():
        out, err = probe.communicate(timeout=120)
        assert probe.returncode == 0, err
        reports[stem] = json.loads(out.strip().splitlines()[-1])
    return reports


@pytest.mark.parametrize("stem", [p.stem for p in DAG_FILES])
def test_importing_a_dag_file_pulls_in_no_http_client_hook_or_emulator(
    import_reports: dict[str, dict[str, Any]], stem: str
):
    report = import_reports[stem]
    assert report["attempts"] == []
    # the probe did import the DAG's operator module
    assert any(module.startswith("airflow_qstash.operators.") for module in report["new"])
    heavy = [m for m in report["new"] if m.split(".")[0] in ("requests", "httpx") or m.startswith(HEAVY_PREFIXES)]
    assert [m for m in heavy if m not in EVENT_TRIGGER_MODULES] == []
