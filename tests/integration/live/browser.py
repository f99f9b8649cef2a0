"""
Driving the Airflow UI in headless Chromium (Debian's, through Playwright) for the live suite: sign in, open
a DAG's Trigger form, check its sections, enter a date-time param through its picker, submit and wait for
the task's success.

The ``browser`` and ``page`` fixtures that launch Chromium are in ``tests/integration/live/conftest.py``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from playwright import sync_api

from tests.support.ui_dates import shown

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


#: The titles of the labelled fields (``[role=group]`` with a label) inside an element, in page order: each
#: label's own text, without the required asterisk Chakra renders in it.
_FIELD_TITLES_JS = """
(root) => [...root.querySelectorAll('[role="group"] label')].map((label) =>
    [...label.childNodes].filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.textContent).join('').trim()).filter((title) => title)
"""
#: The section Airflow 3's Trigger form opens: the params without a ``section``.
DEFAULT_SECTION = "Run Parameters"


def form_section(form: sync_api.Locator, title: str) -> tuple[sync_api.Locator, sync_api.Locator]:
    """A section of the Trigger form (an accordion item): its header button and the region it opens."""
    header = form.get_by_role("button", name=title, exact=True)
    sync_api.expect(header).to_have_count(1)
    region_id = header.get_attribute("aria-controls")
    assert region_id, f"the {title!r} header controls no region"
    return header, form.locator(f'[id="{region_id}"]')


def field_titles(region: sync_api.Locator) -> list[str]:
    """The titles of the labelled fields inside ``region``, in page order."""
    titles: list[str] = region.evaluate(_FIELD_TITLES_JS)
    return titles


def open_collapsed_section(form: sync_api.Locator, title: str, fields: list[str]) -> None:
    """
    The section ``title`` is shown collapsed (its header says so and none of its fields is visible), holds
    exactly ``fields`` once opened, and none of them is in the default section. Leaves it open; Airflow 3.3's
    form opens one section at a time, so the default section folds (what was entered in it is kept).
    """
    expect = sync_api.expect
    header, region = form_section(form, title)
    expect(header).to_have_attribute("aria-expanded", "false")
    expect(region).to_be_hidden()
    for field in fields:
        expect(form.get_by_role("group").filter(has_text=field)).to_be_hidden()
    _default_header, default_region = form_section(form, DEFAULT_SECTION)
    expect(default_region).to_be_visible()
    shown_first = field_titles(default_region)
    assert shown_first and not set(shown_first) & set(fields), shown_first

    header.click()
    expect(header).to_have_attribute("aria-expanded", "true")
    expect(region).to_be_visible()
    assert field_titles(region) == fields
    for field in fields:
        expect(form.get_by_role("group").filter(has_text=field)).to_be_visible()


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
    # The task's row says Success before the scheduler marks the run itself, on its next loop: callers read
    # the run's state next, so wait for it here.
    run = airflow_api.wait_run(dag_id, run_id, timeout=30)
    assert run["state"] == "success", airflow_api.task_log(dag_id, run_id, task_id)
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
