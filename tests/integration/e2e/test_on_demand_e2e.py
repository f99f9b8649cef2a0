"""
``qstash_on_demand_cancel`` and ``qstash_on_demand_cancel_deferrable`` end to end, with trigger-form confs.

Under Airflow 3.3's ``dag.test()`` a deferrable task really defers: ``dag.test`` runs the trigger in line
(``[DAG TEST] running trigger in line``) and resumes the task with its event, so both DAGs run here. The
emulator runs as today's hosted QStash: each run is a bulk action followed to ``FINISHED`` by the task (or
by the trigger), then a confirming one that finds nothing.
"""

from __future__ import annotations

import importlib.util
import itertools
from datetime import timedelta

import pendulum
import pytest

from qstash_emulator import QStashEmulator
from tests.integration.e2e.conftest import DAGS_FOLDER
from tests.integration.e2e.dag_runner import DagTestRunner
from tests.integration.e2e.e2e_lib import (
    MS,
    assert_bulk_action_run,
    assert_failed,
    assert_succeeded,
    cancelled_ids,
    message,
    ms,
    requests,
    seed,
    with_async,
)

pytestmark = pytest.mark.e2e

DAG_IDS = ("qstash_on_demand_cancel", "qstash_on_demand_cancel_deferrable")
INLINE_TRIGGER = "[DAG TEST] running trigger in line"
FROM = pendulum.datetime(2026, 10, 5, tz="UTC")
TO = pendulum.datetime(2026, 10, 6, 12, tz="UTC")
#: The ``count`` every request carries: the operator's default batch size (a bulk-action server ignores it).
COUNT = ("count", "500")


def blank_form() -> dict[str, object]:
    """What the Trigger form submits when nothing is filled in: every param of the DAG file at its default."""
    spec = importlib.util.spec_from_file_location("on_demand_form", DAGS_FOLDER / "qstash_on_demand_cancel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: param.value for name, param in module.PARAMS.items()}


BLANK_FORM = blank_form()


def check_deferral(dag_id: str, log: str) -> None:
    """The deferrable DAG ran its loop in the (inline) trigger; the other one did not defer."""
    assert (INLINE_TRIGGER in log) == dag_id.endswith("_deferrable")


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_form_with_labels_queues_and_window_cancels_only_that(
    dag_runner: DagTestRunner, emu: QStashEmulator, dag_id: str
):
    times = {"from": FROM, "mid": FROM + timedelta(hours=17), "to": TO, "before": FROM - MS, "after": TO + MS}
    expected: list[dict[str, object]] = []
    kept: list[dict[str, object]] = []
    for labels, queue, when in itertools.product(
        (["cleanup-me"], ["retry-me"], ["keep-me", "retry-me"], ["keep-me"], None),
        ("emails", "sms", None),
        times,
    ):
        fields = {"queueName": queue} if queue else {}
        batch = [message(labels, times[when], **fields) for _ in range(40)]
        selected = queue == "emails" and when in ("from", "mid", "to") and labels not in (["keep-me"], None)
        (expected if selected else kept).extend(batch)
    ids = seed(emu, {"expected": expected, "kept": kept})
    n = len(ids["expected"])
    assert n == 3 * 3 * 40  # three label sets, three moments inside the window

    conf = dict(
        BLANK_FORM,
        labels=["cleanup-me", "retry-me"],
        queue_names=["emails"],
        from_date=FROM.isoformat(),
        to_date=TO.isoformat(),
    )
    answer = dag_runner.run(dag_id, run_conf=conf)

    xcom = assert_succeeded(answer)
    check_deferral(dag_id, answer["log"])
    assert cancelled_ids(emu) == ids["expected"]
    assert emu.held_ids() == ids["kept"]
    assert (xcom["from_date"], xcom["to_date"]) == (ms(FROM), ms(TO))
    query = with_async(
        [
            ("label", "cleanup-me"),
            ("label", "retry-me"),
            ("queueName", "emails"),
            ("fromDate", str(ms(FROM))),
            ("toDate", str(ms(TO))),
            COUNT,
        ]
    )
    assert_bulk_action_run(emu, answer, xcom, query, n)


@pytest.mark.parametrize("dag_id", DAG_IDS)
@pytest.mark.parametrize("conf", [{}, BLANK_FORM], ids=["no-conf", "blank-form"])
def test_blank_form_fails_and_sends_nothing(
    dag_runner: DagTestRunner, emu: QStashEmulator, dag_id: str, conf: dict[str, object]
):
    now = pendulum.now("UTC")
    ids = seed(emu, {"all": [message(["x"], now - timedelta(minutes=m)) for m in range(1, 30)]})

    answer = dag_runner.run(dag_id, run_conf=conf)

    assert_failed(answer)
    assert "No filter given" in answer["log"]
    assert INLINE_TRIGGER not in answer["log"]  # refused before deferring
    assert requests(emu) == []
    assert emu.held_ids() == ids["all"]


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_cancel_all_cancels_everything_created_before_the_task_started(
    dag_runner: DagTestRunner, emu: QStashEmulator, dag_id: str
):
    now = pendulum.now("UTC")
    emu.seed(1100, seed=4)  # labels, queues, URL groups..., created over the last 30 days
    past = emu.held_ids()
    ids = seed(emu, {"future": [message(["daily-report"], now + timedelta(hours=1))]})
    before_ms = ms(pendulum.now("UTC"))

    answer = dag_runner.run(dag_id, run_conf=dict(BLANK_FORM, cancel_all=True))

    after_ms = ms(pendulum.now("UTC"))
    xcom = assert_succeeded(answer)
    check_deferral(dag_id, answer["log"])
    assert cancelled_ids(emu) == past
    assert emu.held_ids() == ids["future"]
    # to_date pinned to the task's start, the only bound sent; no other filter.
    assert xcom["from_date"] is None
    assert before_ms <= xcom["to_date"] <= after_ms
    assert_bulk_action_run(emu, answer, xcom, with_async([COUNT, ("toDate", str(xcom["to_date"]))]), 1100)
