"""
The on-demand DAG driven like a person would: headless Chromium (Debian's, through Playwright) logs in
to the Airflow UI, opens the DAG, fills the Trigger form's params (labels, the date-time window) and
submits it. The run must reach success in the UI, and the emulator must show exactly the selected
messages cancelled. Screenshots of the filled form and of the finished run go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from urllib.parse import unquote

import pytest
from playwright import sync_api

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(420)]


DAG_ID = "qstash_on_demand_cancel"
TASK_ID = "cancel_selected_messages"
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


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} not installed (make chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, artifacts_dir, request):
    # Tall enough for the whole Trigger form to show in one screenshot.
    context = browser.new_context(viewport={"width": 1400, "height": 1900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        page.screenshot(path=str(artifacts_dir / "ui-failure.png"))
    context.close()


#: Each Trigger-form field of the on-demand DAG, by title, and whether it must carry Airflow's red
#: "required" asterisk: only the batch size; every filter, the window, the bound and the switch may stay blank.
REQUIRED_IN_THE_FORM = {
    "Labels": False,
    "Queues": False,
    "URL groups": False,
    "Destination URLs": False,
    "Created from": False,
    "Created until": False,
    "Batch size": True,
    "Max batches": False,
    "Cancel ALL messages if no filter is given": False,
}
#: Every field label of the form, its title (the label's own text) and whether it shows the asterisk (the
#: aria-hidden "*" Chakra's Field.RequiredIndicator renders inside the label of a required field).
_REQUIRED_MARKS_JS = """
(form) => [...form.querySelectorAll('[role="group"] label')].map((label) => [
    [...label.childNodes].filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.textContent).join('').trim(),
    [...label.querySelectorAll('[aria-hidden="true"]')].some((mark) => mark.textContent.trim() === '*'),
])
"""


def _required_marks(form) -> dict[str, bool]:
    """Title -> asterisk shown, for the labelled fields of the Trigger form."""
    return {title: marked for title, marked in form.evaluate(_REQUIRED_MARKS_JS) if title}


def _shown(moment: datetime) -> str:
    """How the form shows a picked date-time: ``Nov 20, 2026 10:00``."""
    return f"{moment:%b} {moment.day}, {moment:%Y %H:%M}"


def _pick(page, form, title: str, moment: datetime) -> None:
    """Enter a date-time param through its picker: date ``YYYY/MM/DD`` and time ``HH:mm`` (UTC)."""
    field = form.get_by_role("group").filter(has_text=title)
    field.get_by_test_id("datetime-input").click()
    picker = page.get_by_role("dialog").filter(has=page.get_by_role("textbox", name=title))
    picker.get_by_role("textbox", name=title).fill(f"{moment:%Y/%m/%d}")
    picker.get_by_role("textbox", name="HH:mm").fill(f"{moment:%H:%M}")
    page.keyboard.press("Escape")  # closes the picker, not the Trigger dialog
    sync_api.expect(picker).to_have_count(0)
    sync_api.expect(field).to_contain_text(_shown(moment))


def test_trigger_form_in_the_ui_cancels_the_selected_window(
    live_airflow, airflow_api, emulator, seed_window, page, artifacts_dir
):
    expect = sync_api.expect
    scenario = seed_window("cleanup-me")
    airflow_api.set_paused(DAG_ID, True)  # the form's "Unpause on trigger" box does it

    # Log in through the simple auth manager's page, then go to the DAG from the DAG list.
    page.goto(live_airflow.base_url + "/")
    page.get_by_label("Username").fill(live_airflow.username)
    page.get_by_label("Password").fill(live_airflow.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Dags", exact=True).first.click()
    page.get_by_role("link", name=DAG_ID, exact=True).click()
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}$"))

    # Open Trigger once the list (one Trigger button per DAG) has given way to the DAG's page; a click
    # can still land before the button is wired up, so retry it.
    trigger_button = page.get_by_role("button", name="Trigger Dag")
    expect(trigger_button).to_have_count(1)
    form = page.get_by_role("dialog").filter(has=page.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}"))
    for _attempt in range(3):
        trigger_button.click()
        try:
            expect(form).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            continue
    expect(form).to_be_visible()

    unpause = form.get_by_role("checkbox", name=f"Unpause {DAG_ID} on trigger")
    expect(unpause).to_be_checked()
    expect(form.get_by_role("spinbutton", name="Batch size")).to_be_visible()
    marks = _required_marks(form)
    assert any(marks.values()), f"no asterisk found at all, so the check would be vacuous: {marks}"
    assert {title: marks.get(title) for title in REQUIRED_IN_THE_FORM} == REQUIRED_IN_THE_FORM, marks
    form.get_by_role("group").filter(has_text="Labels").get_by_role("textbox").fill(scenario.label)
    _pick(page, form, "Created from", scenario.from_dt)
    _pick(page, form, "Created until", scenario.to_dt)
    form.get_by_role("spinbutton", name="Batch size").fill("2")
    expect(form.get_by_role("checkbox", name="Cancel ALL messages if no filter is given")).not_to_be_checked()
    form.screenshot(path=str(artifacts_dir / "ui-trigger-form-filled.png"))

    form.get_by_role("button", name="Trigger").click()
    expect(page).to_have_url(re.compile(rf"/dags/{DAG_ID}/runs/"), timeout=30_000)
    run_id = unquote(page.url.split("/runs/", 1)[1].split("/", 1)[0])

    # The UI refreshes a running run by itself: wait for the task's row to say Success.
    task_row = page.get_by_role("row").filter(has=page.get_by_role("link", name=TASK_ID, exact=True))
    try:
        expect(task_row).to_contain_text("Success", timeout=120_000)
    except AssertionError:
        run = airflow_api.wait_run(DAG_ID, run_id, timeout=30)
        assert run["state"] == "success", airflow_api.task_log(DAG_ID, run_id, TASK_ID)
        page.reload()  # finished, but the page did not refresh: look again
        expect(task_row).to_contain_text("Success")
    page.screenshot(path=str(artifacts_dir / "ui-run-success.png"))

    run = airflow_api.run(DAG_ID, run_id)
    assert run["state"] == "success"
    assert run["triggered_by"] == "ui"
    assert run["conf"]["labels"] == [scenario.label]
    assert (run["conf"]["from_date"], run["conf"]["to_date"]) == (
        scenario.from_dt.strftime("%Y-%m-%dT%H:%M:00.000Z"),
        scenario.to_dt.strftime("%Y-%m-%dT%H:%M:00.000Z"),
    )
    assert airflow_api.dag(DAG_ID)["is_paused"] is False
    scenario.assert_only_targets_cancelled(emulator)
    assert airflow_api.xcom(DAG_ID, run_id, TASK_ID)["cancelled"] == len(scenario.targets)
