"""
The ``qstash_dlq_replay`` DAG ("replay after an incident") in a real Airflow against the emulator's DLQ.

* Triggered through the public REST API with a JWT, with a filled form as ``conf``: the run retries
  exactly the DLQ entries the form selects (labels, response statuses, the window, both bounds
  included), each becomes a new message carrying ``Upstash-Retries`` from the form, every other entry
  stays in the DLQ and the held messages are untouched.
* Its Trigger form filled in headless Chromium (Debian's, through Playwright): the same outcome, with the
  form's values in the run's ``conf``.
* An empty form (every field blank, as the UI sends it) is refused: the run fails before any request
  reaches QStash and nothing is retried.
* "Preview only" is on by default: a run with the switch left on lists the selection (count, per status,
  a sample) and touches nothing (only ``GET /v2/dlq`` reaches QStash, the DLQ and the messages are as
  seeded). The replaying runs turn it off: ``preview_only: false`` in the REST ``conf``, and a click on the
  form's switch in the browser.

Every check reads the emulator back; the oracle is the seeded entries themselves.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from playwright import sync_api

from tests.conftest import TEST_TOKEN
from tests.integration.live.browser import (
    assert_form_run,
    open_collapsed_section,
    open_trigger_form,
    pick,
    trigger_and_wait_for_success,
)

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(420)]

DAG_ID = "qstash_dlq_replay"
TASK_ID = "replay_selected_entries"
#: The form's fields, every one blank: what the Trigger form sends when nothing is filled in.
BLANK_FORM: dict[str, Any] = {
    "labels": None,
    "response_statuses": None,
    "from_date": None,
    "to_date": None,
    "retries": None,
}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class IncidentDLQ:
    """
    A DLQ around an incident: ``selected`` entries carry ``label``, a status in ``statuses`` and a
    ``createdAt`` inside the window (both bounds included); each of ``others`` misses by one criterion.
    ``bystanders`` are held messages, not in the DLQ. Bounds are whole minutes (the UI's picker).
    """

    label: str
    statuses: tuple[int, ...]
    from_dt: datetime
    to_dt: datetime
    selected: frozenset[str]
    others: frozenset[str]
    bystanders: frozenset[str]
    #: the labels each selected entry was seeded with (a retried message keeps them)
    labels_of: dict[str, list[str]]

    def conf(self, retries: int) -> dict[str, Any]:
        """The filled form as the REST API takes it."""
        return {
            "labels": [self.label],
            "response_statuses": list(self.statuses),
            "from_date": self.from_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "to_date": self.to_dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "retries": retries,
            "preview_only": False,
        }

    def assert_exactly_selected_retried(self, emulator: Any, retries: int) -> dict[str, dict[str, Any]]:
        """
        The emulator's view: the selected entries left the DLQ, each as one new message with its own URL
        and labels and ``Upstash-Retries`` from the form; everything else is as seeded. Returns the new
        messages by the DLQ id they came from.
        """
        assert emulator.dlq_ids() == self.others
        messages = emulator.messages("all")
        held = {m["messageId"] for m in messages if m["state"] == "held"}
        assert self.bystanders <= held, "a bystander message was cancelled"
        new = [m for m in messages if m["messageId"] not in self.bystanders]
        retried_from = {str(m.get("body")).removeprefix("body-of-"): m for m in new}
        assert len(retried_from) == len(new), "an entry was retried twice"
        assert set(retried_from) == self.selected
        for dlq_id, message in retried_from.items():
            assert message["state"] == "held"
            assert message["url"] == f"https://consumer.example/{dlq_id}"
            assert message["labels"] == self.labels_of[dlq_id]
            assert message["maxRetries"] == retries
            assert message["upstashHeaders"] == {"upstash-retries": str(retries)}
        return retried_from

    def assert_replayed(self, emulator: Any, summary: dict[str, Any], retries: int, log: str | None = None) -> None:
        """
        The run replayed exactly the selection (see :meth:`assert_exactly_selected_retried`) with requests as
        :meth:`assert_wire` says, and its summary (the task's XCom) counts it, names the bulk actions it
        followed (a bulk action reports no per-message ids) and the ``Upstash-Retries`` override; the task
        log (when given) shows the action id and its progress.
        """
        self.assert_exactly_selected_retried(emulator, retries=retries)
        self.assert_wire(emulator, summary)
        assert summary["mode"] == "bulk_action"
        assert summary["retried"] == len(self.selected)
        assert summary["message_ids"] is None
        assert summary["overrides"] == {"Upstash-Retries": str(retries)}
        if log is not None:
            first = summary["action_ids"][0]
            assert f"bulk action {first} started" in log, log[-4000:]
            assert re.search(
                rf"bulk action {first}: FINISHED, {len(self.selected)} of {len(self.selected)} processed", log
            )
            assert "confirmed" in log

    def assert_wire(self, emulator: Any, summary: dict[str, Any]) -> None:
        """
        The run started a retry bulk action with every filter of the form (``POST /v2/dlq/retry/bulk``,
        the override as a header), followed it by id (``GET /v2/bulkActions/{id}``), then started the
        confirming round that selected 0; QStash never saw an empty selection, nor the paging API.
        """
        log = emulator.request_log()
        starts = [e for e in log if (e["method"], e["path"]) == ("POST", "/v2/dlq/retry/bulk")]
        polls = [e for e in log if e["method"] == "GET" and e["path"].startswith("/v2/bulkActions/")]
        assert len(starts) == 2 and len(starts) + len(polls) == len(log), log
        assert {e["status"] for e in starts} == {202} and {e["status"] for e in polls} == {200}
        assert {e["path"].rsplit("/", 1)[-1] for e in polls} == set(summary["action_ids"])
        assert (summary["requests"], summary["polls"]) == (len(starts), len(polls))
        for entry in starts:
            query = entry["query"]
            assert ("label", self.label) in query
            assert {v for k, v in query if k == "responseStatus"} == {str(s) for s in self.statuses}
            assert ("fromDate", str(_ms(self.from_dt))) in query
            assert ("toDate", str(_ms(self.to_dt))) in query
            assert "dlqIds" not in {k for k, _ in query}
        [first, confirming] = [a for a in emulator.bulk_actions() if a["actionId"] in summary["action_ids"]]
        assert (first["total"], confirming["total"]) == (len(self.selected), 0)


@pytest.fixture
def seed_incident(emulator: Any) -> Callable[[str], IncidentDLQ]:
    """Seed an :class:`IncidentDLQ` for a label: 6 selected entries, 7 others, 3 held bystander messages."""

    def seed(label: str) -> IncidentDLQ:
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        from_dt = now - timedelta(hours=3)
        to_dt = from_dt + timedelta(minutes=90)
        lo, hi = _ms(from_dt), _ms(to_dt)

        def entry(dlq_id: str, created: int, status: int, labels: list[str] | None = None) -> dict[str, Any]:
            value: dict[str, Any] = {
                "dlqId": dlq_id,
                "url": f"https://consumer.example/{dlq_id}",
                "createdAt": created,
                "responseStatus": status,
                "maxRetries": 3,
                "body": f"body-of-{dlq_id}",
            }
            if labels is None:
                value["labels"] = [label]
            elif labels:
                value["labels"] = labels
            return value

        selected = [
            entry(f"{label}-on-from", lo, 500),
            entry(f"{label}-early", lo + 1_000, 503),
            entry(f"{label}-middle", lo + 30 * 60_000, 500),
            entry(f"{label}-late", lo + 60 * 60_000, 503),
            entry(f"{label}-on-to", hi, 500),
            entry(f"{label}-two-labels", lo + 45 * 60_000, 503, [label, "unrelated"]),
        ]
        others = [
            entry(f"{label}-before", lo - 1, 500),  # a millisecond before the window
            entry(f"{label}-after", hi + 1, 503),  # a millisecond after it
            entry(f"{label}-a-minute-ago", _ms(now) - 60_000, 500),
            entry(f"{label}-not-found", lo + 10 * 60_000, 404),  # another status
            entry(f"{label}-bad-request", lo + 20 * 60_000, 400),
            entry(f"{label}-other-label", lo + 30 * 60_000, 500, ["billing"]),
            entry(f"{label}-no-label", lo + 40 * 60_000, 503, []),
        ]
        emulator.add_dlq(selected + others)
        bystanders = emulator.add_messages(
            [{"url": "https://consumer.example/live", "labels": [label], "createdAt": lo + i} for i in range(3)]
        )
        assert emulator.dlq_count() == len(selected) + len(others)
        return IncidentDLQ(
            label=label,
            statuses=(500, 503),
            from_dt=from_dt,
            to_dt=to_dt,
            selected=frozenset(e["dlqId"] for e in selected),
            others=frozenset(e["dlqId"] for e in others),
            bystanders=frozenset(bystanders),
            labels_of={e["dlqId"]: e["labels"] for e in selected},
        )

    return seed


@pytest.fixture
def replay_dag(airflow_api: Any) -> str:
    """The replay DAG's id, once the DAG processor has parsed it (the session waits for other DAGs only)."""
    deadline = time.monotonic() + 120
    while DAG_ID not in airflow_api.dag_ids():
        assert time.monotonic() < deadline, f"{DAG_ID} was not parsed within 120 s"
        time.sleep(1)
    return DAG_ID


def test_replay_via_rest_api_retries_exactly_the_form_selection(airflow_api, emulator, seed_incident, replay_dag):
    incident = seed_incident("incident-rest")
    airflow_api.set_paused(replay_dag, False)

    run_id = airflow_api.trigger(replay_dag, incident.conf(retries=0))
    run = airflow_api.wait_run(replay_dag, run_id)

    log = airflow_api.task_log(replay_dag, run_id, TASK_ID)
    assert run["state"] == "success", log
    assert run["conf"]["labels"] == [incident.label]
    summary = airflow_api.xcom(replay_dag, run_id, TASK_ID)
    incident.assert_replayed(emulator, summary, retries=0, log=log)
    assert (summary["from_date"], summary["to_date"]) == (_ms(incident.from_dt), _ms(incident.to_dt))
    assert (summary["vanished"], summary["not_found_answers"]) == (0, 0)
    assert TEST_TOKEN not in log


def test_replay_previews_by_default_and_touches_nothing(airflow_api, emulator, seed_incident, replay_dag):
    incident = seed_incident("incident-preview")
    airflow_api.set_paused(replay_dag, False)
    form = {k: v for k, v in incident.conf(retries=0).items() if k != "preview_only"}  # the switch's default

    run_id = airflow_api.trigger(replay_dag, form)
    run = airflow_api.wait_run(replay_dag, run_id)

    log = airflow_api.task_log(replay_dag, run_id, TASK_ID)
    assert run["state"] == "success", log
    summary = airflow_api.xcom(replay_dag, run_id, TASK_ID)
    assert summary["dry_run"] is True and summary["retried"] == 0
    assert summary["selected"] == len(incident.selected)
    assert sum(summary["by_response_status"].values()) == len(incident.selected)
    assert {item["dlq_id"] for item in summary["sample"]} <= incident.selected
    assert len(summary["sample"]) == min(len(incident.selected), summary["sample_limit"])
    # touched nothing: only listings reached QStash, the DLQ and the messages are as seeded
    assert {(e["method"], e["path"]) for e in emulator.request_log()} == {("GET", "/v2/dlq")}
    assert emulator.dlq_ids() == incident.selected | incident.others
    assert {m["messageId"] for m in emulator.messages("all")} == incident.bystanders
    assert "DRY RUN" in log


def _raw_task_log(live_airflow: Any, run_id: str) -> str:
    """This run's task log files as written (JSON lines, with the failure's ``error_detail``)."""
    return "\n".join(
        path.read_text(errors="replace")
        for path in live_airflow.task_log_files()
        if f"run_id={run_id}" in path.parts and path.parent.name == f"task_id={TASK_ID}"
    )


def test_replay_refuses_an_empty_form(live_airflow, airflow_api, emulator, seed_incident, replay_dag):
    incident = seed_incident("incident-empty")
    airflow_api.set_paused(replay_dag, False)

    run_id = airflow_api.trigger(replay_dag, BLANK_FORM)
    run = airflow_api.wait_run(replay_dag, run_id)

    log = airflow_api.task_log(replay_dag, run_id, TASK_ID)
    assert run["state"] == "failed", log
    task = airflow_api.task_instance(replay_dag, run_id, TASK_ID)
    assert (task["state"], task["try_number"]) == ("failed", 1), task  # refused, not retried
    raw = _raw_task_log(live_airflow, run_id)
    assert "No filter given" in raw, raw[-4000:]
    assert "retry_all=True" in raw, raw[-4000:]
    assert emulator.request_log() == [], "a request reached QStash"
    assert emulator.dlq_ids() == incident.selected | incident.others
    assert {m["messageId"] for m in emulator.messages("all")} == incident.bystanders


def test_replay_trigger_form_in_the_ui_retries_the_selection(
    live_airflow, airflow_api, emulator, seed_incident, replay_dag, artifacts_dir, page
):
    expect = sync_api.expect
    incident = seed_incident("incident-ui")
    airflow_api.set_paused(replay_dag, True)  # the form's "Unpause on trigger" box does it

    form = open_trigger_form(page, live_airflow, replay_dag)

    # Labels: one per line. Response statuses: a JSON array in the form's code editor.
    form.get_by_role("group").filter(has_text="Labels").get_by_role("textbox").fill(incident.label)
    statuses = form.locator("#element_response_statuses")
    statuses.locator(".view-lines").click()
    page.keyboard.press("ControlOrMeta+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text("[500,503]")
    # accepted: the editor shows the parsed array again, pretty-printed over several lines
    expect(statuses.locator(".view-lines")).to_contain_text(re.compile(r"\[\s*500,\s*503\s*\]"))
    pick(page, form, "Failed from", incident.from_dt)
    pick(page, form, "Failed until", incident.to_dt)
    form.get_by_role("spinbutton", name="Retries of the replayed messages").fill("2")
    # "Preview only" is on by default; this run replays, so the switch is turned off
    preview = form.get_by_role("checkbox", name="Preview only")
    expect(preview).to_be_checked()
    preview.focus()  # the switch's input is visually hidden under its track: toggle it as a keyboard user does
    page.keyboard.press("Space")
    expect(preview).not_to_be_checked()
    open_collapsed_section(form, "Advanced", ["Max requests"])  # the bound: left blank, 100,000
    form.screenshot(path=str(artifacts_dir / "ui-dlq-replay-form-filled.png"))

    run_id = trigger_and_wait_for_success(page, form, airflow_api, replay_dag, TASK_ID)
    page.screenshot(path=str(artifacts_dir / "ui-dlq-replay-success.png"))

    run = assert_form_run(airflow_api, replay_dag, run_id, incident.label, incident.from_dt, incident.to_dt)
    assert run["conf"]["response_statuses"] == [500, 503]
    assert run["conf"]["retries"] == 2
    assert run["conf"]["max_requests"] is None
    assert run["conf"]["preview_only"] is False
    log = airflow_api.task_log(replay_dag, run_id, TASK_ID)
    incident.assert_replayed(emulator, airflow_api.xcom(replay_dag, run_id, TASK_ID), retries=2, log=log)
