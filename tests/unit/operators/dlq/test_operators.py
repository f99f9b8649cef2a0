"""QStashDLQDeleteOperator and QStashDLQRetryOperator without a metadata DB: construction, rendering,
refusals before any request (sync and deferrable), the pinned window, the loop, deferral and the summary.

HTTP goes to :class:`~tests.doubles.fake_qstash.FakeDLQ` through requests-mock (the ``sync_fake`` fixture).
"""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import DLQ_FILTERS
from airflow_qstash.inputs import DEFAULT_ACTION_TIMEOUT
from airflow_qstash.operators.dlq import QStashDLQDeleteOperator, QStashDLQRetryOperator
from airflow_qstash.runs.dlq import DLQRetryRun
from airflow_qstash.triggers.dlq import QStashDLQTrigger
from tests.conftest import TEST_TOKEN
from tests.doubles.fake_qstash import FakeDLQ
from tests.support.dlq_task import OPERATORS, TASK_START_MS, rendered, ti_context
from tests.support.task_logs import capture_task_logs

REPO = Path(__file__).resolve().parents[4]
WEEK_START = pendulum.datetime(2026, 10, 26, 3, tz="UTC")
WEEK_START_MS = 1_792_983_600_000
OWN_FIELDS = {
    QStashDLQDeleteOperator: ("batch_size", "delete_all"),
    QStashDLQRetryOperator: ("override_retries", "override_delay", "override_timeout", "override_headers", "retry_all"),
}
DELETE_SUMMARY = {
    "deleted",
    "mode",
    "action_ids",
    "rounds",
    "polls",
    "detection_requests",
    "requests",
    "selected",
    "list_requests",
    "from_date",
    "to_date",
    "filters",
    "duration_seconds",
}
RETRY_SUMMARY = DELETE_SUMMARY - {"deleted"} | {
    "retried",
    "message_ids",
    "deduplicated",
    "vanished",
    "not_found_answers",
    "overrides",
}


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize("cls", OPERATORS)
def test_template_fields_are_every_filter_the_bound_and_the_operators_own(cls: type):
    assert set(cls.template_fields) == {
        *DLQ_FILTERS.names,
        "max_requests",
        "action_timeout",
        "dry_run",
        *OWN_FIELDS[cls],
    }


@pytest.mark.parametrize("cls", OPERATORS)
def test_every_template_field_is_documented_as_templated(cls: type):
    doc = inspect.getdoc(cls) or ""
    for name in cls.template_fields:
        match = re.search(rf":param {name}:(.*?)(?=\n:param |\n:return:|\Z)", doc, re.S)
        assert match, f"{cls.__name__} does not document {name}"
        assert "(templated)" in match.group(1), f"{cls.__name__}.{name} is not marked (templated)"


@pytest.mark.parametrize("cls", OPERATORS)
def test_init_keeps_every_templated_value_unchanged(cls: type):
    templates = {name: f"{{{{ params.{name} }}}}" for name in cls.template_fields}
    op = cls(task_id="t", **templates)
    for name, template in templates.items():
        assert getattr(op, name) == template, name


def test_the_filter_keywords_match_the_table():
    """The operators' explicit filter keywords are DLQ_FILTERS, in table order (declared once)."""
    init = inspect.signature(QStashDLQDeleteOperator.__mro__[1].__init__).parameters
    assert [name for name in init if name in DLQ_FILTERS] == list(DLQ_FILTERS.names)
    for cls in OPERATORS:
        op = cls(task_id="t", **{name: None for name in DLQ_FILTERS.names})
        assert all(getattr(op, name) is None for name in DLQ_FILTERS.names)


@pytest.mark.parametrize("cls", OPERATORS)
@pytest.mark.parametrize("name", ["hosts", "paths", "host", "path"])
def test_host_and_path_are_refused_when_the_dag_is_parsed(cls: type, name: str):
    with pytest.raises(AirflowFailException, match="DLQ endpoints reject"):
        cls(task_id="t", labels="a", **{name: "x"})


@pytest.mark.parametrize("cls", OPERATORS)
def test_optional_filters_take_the_filters_and_the_operators_own_optional_fields_in_order(cls: type):
    op = cls(task_id="t", labels="a", optional_filters=("to_date", "labels", "urls", "labels"))
    assert op.optional_filters == ("urls", "labels", "to_date")
    if cls is QStashDLQRetryOperator:
        op = cls(task_id="t", labels="a", optional_filters={"override_delay", "labels"})
        assert op.optional_filters == ("labels", "override_delay")
    else:
        expected = r"unknown field\(s\) \['override_delay'\]; known fields: dlq_ids,"
        with pytest.raises(AirflowFailException, match=expected):
            cls(task_id="t", labels="a", optional_filters=["override_delay"])


@pytest.mark.parametrize("cls", OPERATORS)
def test_optional_filters_must_name_known_fields(cls: type):
    with pytest.raises(AirflowFailException, match="unknown field"):
        cls(task_id="t", labels="a", optional_filters=["label"])
    with pytest.raises(AirflowFailException, match="must be a list"):
        cls(task_id="t", labels="a", optional_filters="labels")


def test_the_override_names_leave_the_tasks_own_retries_alone():
    op = QStashDLQRetryOperator(task_id="t", labels="a", retries=4, override_retries=0)
    assert (op.retries, op.override_retries) == (4, 0)


# --------------------------------------------------------------------------- refusals before any request

REFUSALS = [
    pytest.param({}, "delete_all=True|retry_all=True", id="no-filter"),
    pytest.param({"labels": ""}, "labels is empty", id="empty-literal"),
    pytest.param({"labels": []}, "labels is empty", id="empty-list"),
    pytest.param(
        {"labels": "{{ params.missing }}", "queue_names": "q"},
        "labels is templated but rendered empty",
        id="templated-empty",
    ),
    pytest.param({"dlq_ids": ["d1"], "labels": "a"}, "cannot be combined", id="ids-and-filter"),
    pytest.param({"labels": "a", "from_date": "2026-10-01", "to_date": "2026-10-01"}, "zero-width", id="zero-width"),
    pytest.param({"labels": "a", "to_date": 0}, "to_date=0", id="to-date-zero"),
    pytest.param({"to_date": "2099-01-01"}, "no filter", id="future-to-date-alone"),
    pytest.param({"labels": "a", "from_date": "2099-01-01"}, "after the task's start", id="from-after-start"),
    pytest.param({"labels": "{{ params.g }}"}, "generator", id="generator-rendering"),
    pytest.param({"response_statuses": "5xx"}, "whole number", id="status-not-a-number"),
    pytest.param({"labels": "a", "max_requests": 0}, "max_requests", id="max-requests-0"),
    pytest.param({"message_ids": ["m1", "m2"]}, "at most 1", id="two-message-ids"),
]


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize("cls", OPERATORS)
@pytest.mark.parametrize(("kwargs", "match"), REFUSALS)
def test_refusals_happen_before_any_request_or_deferral(
    sync_fake: FakeDLQ, defer_calls, cls: type, deferrable: bool, kwargs: dict[str, Any], match: str
):
    op = rendered(
        cls(task_id="t", deferrable=deferrable, **kwargs),
        params={"missing": None, "g": (x for x in "a")},
    )
    with pytest.raises(AirflowFailException, match=match):
        op.execute(ti_context())
    assert sync_fake.seen == []
    assert defer_calls == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 101}, "batch_size must be a whole number from 1 to 100"),
        ({"batch_size": "{{ params.n }}"}, "batch_size"),
        ({"delete_all": "maybe"}, "delete_all must be True or False"),
    ],
)
def test_delete_refusals_of_its_own_fields(sync_fake: FakeDLQ, kwargs: dict[str, Any], match: str):
    op = rendered(QStashDLQDeleteOperator(task_id="t", labels="a", **kwargs), params={"n": 0})
    with pytest.raises(AirflowFailException, match=match):
        op.execute(ti_context())
    assert sync_fake.seen == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"override_retries": -1}, "override_retries must be a whole number"),
        ({"override_delay": float("inf")}, "override_delay must be whole seconds"),
        ({"override_timeout": "0s"}, "override_timeout must be whole seconds > 0"),
        ({"override_headers": {"Authorization": "Bearer x"}}, "not an Upstash"),
        ({"override_headers": {"Upstash-Callback": "a\r\nX: y"}}, "line break"),
        ({"override_retries": 1, "override_headers": {"Upstash-Retries": "2"}}, "given twice"),
        ({"override_retries": ""}, "override_retries is empty"),
        ({"override_retries": "{{ params.r }}"}, "override_retries is templated but rendered empty"),
        ({"retry_all": "maybe"}, "retry_all must be True or False"),
    ],
)
def test_retry_refusals_of_its_own_fields(sync_fake: FakeDLQ, kwargs: dict[str, Any], match: str):
    op = rendered(QStashDLQRetryOperator(task_id="t", labels="a", **kwargs), params={"r": None})
    with pytest.raises(AirflowFailException, match=match):
        op.execute(ti_context())
    assert sync_fake.seen == []


def test_an_optional_override_that_renders_empty_is_not_sent(sync_fake: FakeDLQ):
    sync_fake.add(2, "a")
    op = QStashDLQRetryOperator(
        task_id="t", labels="a", override_retries="{{ params.r }}", optional_filters=["override_retries"]
    )
    summary = rendered(op, params={"r": None}).execute(ti_context())
    assert summary["overrides"] == {}
    assert all("upstash-retries" not in seen.headers for seen in sync_fake.seen)


def test_a_refusal_fails_the_task_without_retries():
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=0)
    with pytest.raises(AirflowFailException, match="batch_size") as info, op._refusing():
        op.plan(1_800_000_000_000)
    assert isinstance(info.value.__cause__, QStashInputError)


@pytest.mark.parametrize("cls", OPERATORS)
def test_an_undefined_data_interval_on_a_manual_run_explains_itself(cls: type):
    import jinja2

    op = cls(task_id="t", labels="a", from_date="{{ data_interval_start }}")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    with pytest.raises(AirflowFailException, match="manual or API-triggered run has no data interval") as info:
        op.render_template_fields(ti_context(), jinja_env=env)
    assert "data_interval_start" in str(info.value)
    other = cls(task_id="t", labels="{{ no_such_thing }}")
    with pytest.raises(jinja2.UndefinedError, match="no_such_thing"):
        other.render_template_fields(ti_context(), jinja_env=env)


@pytest.mark.parametrize("cls", OPERATORS)
def test_a_dag_with_its_own_jinja_delimiters_marks_those_as_templates(cls: type):
    from airflow.providers.common.compat.sdk import DAG

    dag = DAG("custom_delimiters", schedule=None, jinja_environment_kwargs={"variable_start_string": "[["})
    op = cls(task_id="t", dag=dag, labels="[[ params.labels ]]", queue_names="{{ q }}", urls="https://x/a")
    assert op.set_by_author == ("urls", "queue_names", "labels")
    assert op.templated == ("labels",)


def test_the_retry_overrides_are_judged_literal_or_templated_too():
    op = QStashDLQRetryOperator(task_id="t", labels="a", override_retries="{{ params.r }}", override_delay="5m")
    assert op.templated == ("override_retries",)
    assert set(op.set_by_author) == {"labels", "override_retries", "override_delay"}


@pytest.mark.parametrize("cls", OPERATORS)
def test_the_pinned_to_date_is_logged_only_when_it_was_pinned(sync_fake: FakeDLQ, cls: type):

    with capture_task_logs() as logs:
        cls(task_id="t", labels="a").execute(ti_context())
    pinned = [entry["event"] for entry in logs if "pinned" in entry["event"]]
    assert len(pinned) == 1
    assert str(TASK_START_MS) in pinned[0] and "entries that land in the DLQ during the run" in pinned[0]
    with capture_task_logs() as logs:
        cls(task_id="t", labels="a", to_date=WEEK_START).execute(ti_context())
    assert not any("pinned" in entry["event"] for entry in logs)


# --------------------------------------------------------------------------- the run


def test_delete_runs_over_the_rendered_window_and_pins_nothing_later_than_the_start(sync_fake: FakeDLQ):
    sync_fake.add(250, "report")
    sync_fake.add(5, "other")
    op = QStashDLQDeleteOperator(
        task_id="t", labels=["report"], from_date="{{ data_interval_start }}", to_date="{{ data_interval_end }}"
    )
    summary = rendered(op, data_interval_start=WEEK_START, data_interval_end=pendulum.datetime(2099, 1, 1)).execute(
        ti_context()
    )
    assert set(summary) == DELETE_SUMMARY
    assert (summary["deleted"], summary["requests"], summary["list_requests"]) == (250, 6, 3)
    assert (summary["from_date"], summary["to_date"]) == (WEEK_START_MS, TASK_START_MS)
    assert sync_fake.ids() == sync_fake.ids("other")
    lists = [seen for seen in sync_fake.seen if seen.method == "GET"]
    assert len(lists) == 3
    for seen in lists:  # the window goes into the listing; the deletes carry only the ids it found
        query = dict(seen.query)
        assert (query["fromDate"], query["toDate"], query["count"]) == (str(WEEK_START_MS), str(TASK_START_MS), "100")
    for seen in sync_fake.seen[3:]:
        assert (seen.method, {name for name, _ in seen.query}) == ("DELETE", {"dlqIds", "count"})


def test_a_literal_none_label_is_the_label_none(sync_fake: FakeDLQ):
    sync_fake.add(2, "none")
    sync_fake.add(3, "other")
    summary = QStashDLQDeleteOperator(task_id="t", labels="none").execute(ti_context())
    assert summary["deleted"] == 2
    assert sync_fake.seen[0].query[0] == ("label", "none")


def test_delete_all_deletes_only_what_was_created_before_the_start(sync_fake: FakeDLQ):
    op = rendered(QStashDLQDeleteOperator(task_id="t", delete_all="{{ params.all }}"), params={"all": True})
    op.execute(ti_context())
    assert sync_fake.seen[0].query == [("toDate", str(TASK_START_MS)), ("count", "100")]


def test_retry_returns_the_new_ids_and_sends_the_overrides(sync_fake: FakeDLQ):
    sync_fake.add(3, "a")
    op = QStashDLQRetryOperator(
        task_id="t",
        labels="{{ params.labels }}",
        override_retries="{{ params.r }}",
        override_delay="2m",
        override_headers={"Upstash-Callback": "https://cb.example/done"},
    )
    summary = rendered(op, params={"labels": ["a"], "r": 0}).execute(ti_context())
    assert set(summary) == RETRY_SUMMARY
    assert summary["retried"] == 3
    assert summary["message_ids"] == [f"msg-dlq-a-{i:07d}" for i in range(3)]
    assert summary["overrides"] == {
        "Upstash-Retries": "0",
        "Upstash-Delay": "120s",
        "Upstash-Callback": "https://cb.example/done",
    }
    listing, retry = sync_fake.seen
    assert (retry.headers["upstash-retries"], retry.headers["upstash-delay"]) == ("0", "120s")
    assert not any(name.startswith("upstash-") for name in listing.headers)  # overrides go with the retry only


def test_reaching_max_requests_fails_the_task_with_the_totals(sync_fake: FakeDLQ):
    sync_fake.add(10, "a")
    op = QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=3, max_requests=2)
    expected = r"max_requests=2 reached.*Deleted 3 entries of the 10 selected in 2 request"
    with pytest.raises(AirflowException, match=expected) as info:
        op.execute(ti_context())  # one listing request, one delete of 3 ids
    assert not isinstance(info.value, AirflowFailException)
    assert len(sync_fake.ids()) == 7


@pytest.mark.parametrize("max_requests", [None, 2])
def test_the_session_is_closed_whether_the_run_ends_or_stops_early(
    sync_fake: FakeDLQ, monkeypatch: pytest.MonkeyPatch, max_requests: int | None
):
    from airflow_qstash.hooks.qstash import QStashHook

    closed: list[bool] = []
    original = QStashHook.close

    def recording(self: QStashHook) -> None:
        closed.append("session" in self.__dict__)
        original(self)

    monkeypatch.setattr(QStashHook, "close", recording)
    sync_fake.add(10, "a")
    op = QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=3, max_requests=max_requests)
    if max_requests is None:
        assert op.execute(ti_context())["deleted"] == 10
    else:
        with pytest.raises(AirflowException, match="max_requests=2 reached"):
            op.execute(ti_context())
    assert closed == [True]  # the session that sent the requests was closed once


def test_a_rerun_after_a_bounded_run_finishes_the_job(sync_fake: FakeDLQ):
    sync_fake.add(10, "a")
    with pytest.raises(AirflowException):
        QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=3, max_requests=2).execute(ti_context())
    summary = QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=3).execute(ti_context())
    assert summary["deleted"] == 7
    assert sync_fake.ids() == set()


def test_on_kill_stops_the_run_before_its_next_request(sync_fake: FakeDLQ):
    sync_fake.add(10, "a")
    op = QStashDLQDeleteOperator(task_id="t", labels="a", batch_size=2)

    def kill_after_first(seen: Any, fake: FakeDLQ) -> None:
        if len(fake.seen) == 1:
            op.on_kill()

    sync_fake.intercept = kill_after_first
    with pytest.raises(AirflowException, match="stopped on request"):
        op.execute(ti_context())
    assert len(sync_fake.seen) == 1


# --------------------------------------------------------------------------- deferral


@pytest.mark.parametrize(
    ("cls", "kwargs", "options"),
    [
        (QStashDLQDeleteOperator, {"batch_size": "50"}, {"batch_size": 50}),
        (QStashDLQRetryOperator, {"override_retries": 0}, {"headers": [["Upstash-Retries", "0"]]}),
    ],
)
def test_deferral_hands_the_trigger_the_normalised_run_and_no_token(
    sync_fake: FakeDLQ, cls: type, kwargs: dict[str, Any], options: dict[str, Any]
):
    op = cls(task_id="t", labels="a", from_date=WEEK_START, deferrable=True, max_requests="7", **kwargs)
    with pytest.raises(TaskDeferred) as info:
        op.execute(ti_context())
    trigger = info.value.trigger
    assert isinstance(trigger, QStashDLQTrigger)
    path, data = trigger.serialize()
    assert path == "airflow_qstash.triggers.dlq.QStashDLQTrigger"
    assert data["action"] == op.ACTION
    assert data["max_requests"] == 7
    assert data["options"] == {**options, "action_timeout": DEFAULT_ACTION_TIMEOUT}
    assert data["dlq_filter"]["labels"] == ["a"]
    assert (data["dlq_filter"]["from_date"], data["dlq_filter"]["to_date"]) == (WEEK_START_MS, TASK_START_MS)
    assert TEST_TOKEN not in json.dumps(data)
    assert info.value.method_name == "execute_complete"
    assert sync_fake.seen == []  # nothing sent before deferring


def test_a_bad_connection_fails_before_deferring(monkeypatch: pytest.MonkeyPatch, defer_calls):
    monkeypatch.setenv("AIRFLOW_CONN_QSTASH_DEFAULT", json.dumps({"conn_type": "qstash", "host": "https://q.test"}))
    with pytest.raises(AirflowException, match="no QStash token"):
        QStashDLQDeleteOperator(task_id="t", labels="a", deferrable=True).execute(ti_context())
    assert defer_calls == []


@pytest.mark.parametrize("cls", OPERATORS)
def test_execute_complete_returns_the_summary_or_fails(cls: type):
    op = cls(task_id="t", labels="a")
    done = "deleted" if cls is QStashDLQDeleteOperator else "retried"
    event = {"status": "success", done: 5, "requests": 1, "filters": "labels=['a']"}
    assert op.execute_complete(ti_context(), event) == {done: 5, "requests": 1, "filters": "labels=['a']"}
    with pytest.raises(AirflowException, match="boom"):
        op.execute_complete(ti_context(), {"status": "error", "message": "boom"})


def test_the_trigger_rebuilds_the_operators_retry_run():
    op = QStashDLQRetryOperator(task_id="t", labels="a", override_timeout="30s")
    run = op.plan(TASK_START_MS)
    assert isinstance(run, DLQRetryRun)
    assert run.options() == {"headers": [["Upstash-Timeout", "30s"]], "action_timeout": DEFAULT_ACTION_TIMEOUT}


# --------------------------------------------------------------------------- parse time


PARSE_PROBE = textwrap.dedent(
    """
    import json, runpy, sys
    import airflow, airflow.timetables.interval
    from airflow.providers.common.compat.sdk import DAG, BaseOperator
    # constructing an operator is Airflow's own cost (on 3.0 it loads the serializer, and with it httpx)
    with DAG("parse_probe_baseline", schedule=None):
        BaseOperator(task_id="baseline_task")
    before = set(sys.modules)
    {target}
    print(json.dumps(sorted(set(sys.modules) - before)))
    """
)
FORBIDDEN = (
    "requests",
    "httpx",
    "urllib3",
    "tenacity",
    "airflow_qstash.hooks",
    "airflow_qstash.triggers",
    "qstash_emulator",
    "airflow_qstash.protocol",
    "airflow_qstash.config",
)


@pytest.mark.parametrize(
    "target",
    [
        "import airflow_qstash.operators.dlq",
        f"runpy.run_path({str(REPO / 'dags_examples' / 'qstash_dlq_weekly_cleanup.py')!r})",
        f"runpy.run_path({str(REPO / 'dags_examples' / 'qstash_dlq_replay.py')!r})",
    ],
)
def test_parsing_imports_no_http_client_hook_or_trigger(target: str):
    done = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE.format(target=target)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=REPO,
    )
    new = json.loads(done.stdout.strip().splitlines()[-1])
    assert "airflow_qstash.runs.dlq" in new or "airflow_qstash.operators.dlq" in new
    heavy = [m for m in new if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert heavy == []
