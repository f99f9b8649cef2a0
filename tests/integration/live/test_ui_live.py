"""
The on-demand DAG driven like a person would: headless Chromium (Debian's, through Playwright) logs in
to the Airflow UI, opens the DAG, fills the Trigger form's params (labels, the date-time window) and
submits it. The run must reach success in the UI, and the emulator must show exactly the selected
messages cancelled. Screenshots of the filled form and of the finished run go to ``test-artifacts/``.
"""

from __future__ import annotations

import pytest
from playwright import sync_api

from tests.integration.live.browser import (
    assert_form_run,
    open_collapsed_section,
    open_trigger_form,
    pick,
    trigger_and_wait_for_success,
)

pytestmark = [pytest.mark.airflow_live, pytest.mark.timeout(420)]


DAG_ID = "qstash_on_demand_cancel"
TASK_ID = "cancel_selected_messages"


#: Each Trigger-form field of the on-demand DAG, by title, and whether it must carry Airflow's red
#: "required" asterisk: only the batch size; every filter, the window, the bounds and the switch may stay blank.
REQUIRED_IN_THE_FORM = {
    "Labels": False,
    "Queues": False,
    "URL groups": False,
    "Destination URLs": False,
    "Created from": False,
    "Created until": False,
    "Cancel ALL messages if no filter is given": False,
    "Batch size": True,
    "Max batches": False,
    "Action timeout (seconds)": False,
}
#: The collapsed "Advanced" section: the knob that only matters on older servers and the bounds.
ADVANCED = ["Batch size", "Max batches", "Action timeout (seconds)"]
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


def test_trigger_form_in_the_ui_cancels_the_selected_window(
    live_airflow, airflow_api, emulator, seed_window, page, artifacts_dir
):
    expect = sync_api.expect
    scenario = seed_window("cleanup-me")
    airflow_api.set_paused(DAG_ID, True)  # the form's "Unpause on trigger" box does it

    form = open_trigger_form(page, live_airflow, DAG_ID)
    marks = _required_marks(form)  # every field is in the page, a collapsed section's too
    assert any(marks.values()), f"no asterisk found at all, so the check would be vacuous: {marks}"
    assert {title: marks.get(title) for title in REQUIRED_IN_THE_FORM} == REQUIRED_IN_THE_FORM, marks
    form.get_by_role("group").filter(has_text="Labels").get_by_role("textbox").fill(scenario.label)
    pick(page, form, "Created from", scenario.from_dt)
    pick(page, form, "Created until", scenario.to_dt)
    expect(form.get_by_role("checkbox", name="Cancel ALL messages if no filter is given")).not_to_be_checked()
    form.screenshot(path=str(artifacts_dir / "ui-trigger-form-advanced-collapsed.png"))
    # Airflow 3.3 opens one section at a time: opening Advanced folds Run Parameters, keeping what was entered
    open_collapsed_section(form, "Advanced", ADVANCED)
    form.get_by_role("spinbutton", name="Batch size").fill("2")
    form.screenshot(path=str(artifacts_dir / "ui-trigger-form-filled.png"))

    run_id = trigger_and_wait_for_success(page, form, airflow_api, DAG_ID, TASK_ID)
    page.screenshot(path=str(artifacts_dir / "ui-run-success.png"))

    run = assert_form_run(airflow_api, DAG_ID, run_id, scenario.label, scenario.from_dt, scenario.to_dt)
    scenario.assert_only_targets_cancelled(emulator)
    assert airflow_api.xcom(DAG_ID, run_id, TASK_ID)["cancelled"] == len(scenario.targets)
    assert run["conf"]["batch_size"] == 2  # entered in the Advanced section
