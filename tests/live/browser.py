"""
Driving the Airflow UI in headless Chromium (Debian's, through Playwright) for the live suite: sign in, open
a DAG's Trigger form, enter a date-time param through its picker, submit and wait for the task's success.

The ``browser`` and ``page`` fixtures that launch Chromium are in ``tests/live/conftest.py``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from playwright import sync_api

from tests.ui_dates import shown

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def open_trigger_form(page: sync_api.Page, airflow: Any, dag_id: str) -> sync_api.Locator:
    """
    Sign in through the simple auth manager's page, go to the DAG from the DAG list and open its Trigger form;
    the form's "Unpause on trigger" box must be checked. Returns the form (the Trigger dialog).
    """
    expect = sync_api.expect
    page.goto(airflow.base_url + "/")
    page.get_by_label("Username").fill(airflow.username)
    page.get_by_label("Password").fill(airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dags", exact=True).first.click()
    page.get_by_role("link", name=dag_id, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/dags/{dag_id}$"))

    # Open Trigger once the list (one Trigger button per DAG) has given way to the DAG's page; a click
    # can still land before the button is wired up, so retry it.
    trigger_button = page.get_by_role("button", name="Trigger Dag")
    expect(trigger_button).to_have_count(1)
    form = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=f"Trigger Dag - {dag_id}"))
    for _attempt in range(3):
        trigger_button.click()
        try:
            expect(form).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            continue
    expect(form).to_be_visible()
    expect(form.get_by_role("checkbox", name=f"Unpause {dag_id} on trigger")).to_be_checked()
    return form


def pick(page: sync_api.Page, form: sync_api.Locator, title: str, moment: datetime) -> None:
    """Enter a date-time param through its picker: date ``YYYY/MM/DD`` and time ``HH:mm`` (UTC)."""
    field = form.get_by_role("group").filter(has_text=title)
    field.get_by_test_id("datetime-input").click()
    picker = page.get_by_role("dialog").filter(has=page.get_by_role("textbox", name=title))
    picker.get_by_role("textbox", name=title).fill(f"{moment:%Y/%m/%d}")
    picker.get_by_role("textbox", name="HH:mm").fill(f"{moment:%H:%M}")
    page.keyboard.press("Escape")  # closes the picker, not the Trigger dialog
    sync_api.expect(picker).to_have_count(0)
    sync_api.expect(field).to_contain_text(shown(moment))


def trigger_and_wait_for_success(
    page: sync_api.Page, form: sync_api.Locator, airflow_api: Any, dag_id: str, task_id: str
) -> str:
    """
    Submit the Trigger form and wait on the run's page until the task's row says Success (the UI refreshes
    a running run by itself; if it does not, the run is read through the REST API and the page reloaded).
    Returns the run id.
    """
    expect = sync_api.expect
    form.get_by_role("button", name="Trigger").click()
    expect(page).to_have_url(re.compile(rf"/dags/{dag_id}/runs/"), timeout=30_000)
    run_id = unquote(page.url.split("/runs/", 1)[1].split("/", 1)[0])

    task_row = page.get_by_role("row").filter(has=page.get_by_role("link", name=task_id, exact=True))
    try:
        expect(task_row).to_contain_text("Success", timeout=120_000)
    except AssertionError:
        run = airflow_api.wait_run(dag_id, run_id, timeout=30)
        assert run["state"] == "success", airflow_api.task_log(dag_id, run_id, task_id)
        page.reload()  # finished, but the page did not refresh: look again
        expect(task_row).to_contain_text("Success")
    return run_id


def assert_form_run(
    airflow_api: Any, dag_id: str, run_id: str, label: str, from_dt: datetime, to_dt: datetime
) -> dict[str, Any]:
    """
    The run succeeded, triggered from the UI with ``label`` and the picked window in its ``conf`` (whole
    minutes, as the form sends them), and the form's "Unpause on trigger" unpaused the DAG. Returns the run.
    """
    run: dict[str, Any] = airflow_api.run(dag_id, run_id)
    assert run["state"] == "success"
    assert run["triggered_by"] == "ui"
    assert run["conf"]["labels"] == [label]
    assert (run["conf"]["from_date"], run["conf"]["to_date"]) == (
        from_dt.strftime("%Y-%m-%dT%H:%M:00.000Z"),
        to_dt.strftime("%Y-%m-%dT%H:%M:00.000Z"),
    )
    assert airflow_api.dag(dag_id)["is_paused"] is False
    return run
