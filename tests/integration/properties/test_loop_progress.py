"""
A property of the bulk-cancel loop against servers that misreport (issue #17.11, the class of #17.3/#17.4):
a bulk action that says FINISHED may have cancelled all, part or none of its snapshot, and may report
``processed`` as the snapshot's size, as what really went, or as 0. Whatever the server says, on the sync
and the deferrable path, a run EITHER succeeds with nothing left that its filter selects (a loop ends on
what is LEFT, never on what the server says it processed) and reports no more than what went, OR fails
with an error; and it ends within a bounded number of requests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from tests.doubles.fake_qstash import Answer, BulkActions, FakeQStash, Sent
from tests.doubles.harness import (
    captured_logs,
    no_sleep,
    pinned_clock,
    set_env,
    wire,
)
from tests.integration.properties.tasks import OPERATORS, run_task

CONN_ID = "qstash_prop_op"  # the operator runner's connection
#: What one bulk action does with its snapshot: cancel it all, some of it, or none; and what it reports.
BEHAVIOURS = ("honest", "part", "none")
REPORTS = ("total", "went", "zero")


def action_server(left: int, script: list[tuple[str, str]]) -> BulkActions:
    """Today's hosted QStash with ``left`` messages matching the filter, whose actions follow ``script``."""

    def outcome(start: int, total: int) -> tuple[int, int]:
        behaviour, report = script.pop(0) if script else ("honest", "total")
        went = {"honest": total, "part": total // 2, "none": 0}[behaviour]
        return {"total": total, "went": went, "zero": 0}[report], went

    server = BulkActions(left, outcome=outcome)
    server.route("GET", "/v2/bulkActions", Answer(200, {"bulkActions": []}))
    server.budget = 300
    return server


@given(
    left=st.integers(0, 6),
    script=st.lists(st.tuples(st.sampled_from(BEHAVIOURS), st.sampled_from(REPORTS)), max_size=6),
    deferrable=st.booleans(),
)
def test_a_bulk_cancel_ends_on_what_is_left_whatever_the_server_reports(
    left: int, script: list[tuple[str, str]], deferrable: bool
):
    connection = {
        "conn_type": "qstash",
        "host": "https://qstash.test",
        "password": "sk_loop_token",
        "extra": {"max_retries": 1, "backoff_initial": 0, "backoff_max": 0, "timeout": 5},
    }
    undo = set_env(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    server = action_server(left, list(script))
    case = {"kind": "cancel", "kwargs": {"labels": "a"}, "context": {}, "deferrable": deferrable}
    assert OPERATORS["cancel"]
    try:
        with pinned_clock(), no_sleep(), wire(server), captured_logs():
            xcom, _, error = run_task(case)
    finally:
        undo()
    assert not server.overflow, f"the run did not end: {len(server.sent)} requests, {server.left} left"
    if error is None:
        assert server.left == 0, f"the run succeeded with {server.left} selected messages left: {xcom}"
        assert xcom["cancelled"] <= left, f"reported {xcom['cancelled']} cancelled, {left} went"


#: What one DLQ delete page does: delete its page and say so; delete nothing while the cursor stays.
DLQ_PAGES = ("honest", "stuck")


@dataclass
class DLQPages:
    """``DELETE /v2/dlq`` over ``left`` matching entries, each page as ``script`` says, its last page for ever."""

    left: int
    script: list[str]

    def __call__(self, sent: Sent) -> Answer:
        count = int(dict(parse_qsl(sent.query)).get("count", "100"))
        page = self.script.pop(0) if len(self.script) > 1 else (self.script or ["honest"])[0]  # the last repeats
        if page == "stuck":
            return Answer(200, {"deleted": 0, "cursor": "stuck-cursor"})
        deleted = min(count, self.left)
        self.left -= deleted
        return Answer(200, {"deleted": deleted, **({"cursor": f"c{self.left}"} if self.left else {})})


@given(
    left=st.integers(0, 25),
    script=st.lists(st.sampled_from(DLQ_PAGES), max_size=8),
    deferrable=st.booleans(),
)
def test_a_dlq_delete_that_makes_no_progress_stops_soon_and_never_claims_success_with_entries_left(
    left: int, script: list[str], deferrable: bool
):
    connection = {
        "conn_type": "qstash",
        "host": "https://qstash.test",
        "password": "sk_loop_token",
        "extra": {"max_retries": 1, "backoff_initial": 0, "backoff_max": 0, "timeout": 5},
    }
    undo = set_env(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(connection))
    server, dlq = FakeQStash(), DLQPages(left, list(script))
    server.route("DELETE", "/v2/dlq", dlq)
    server.budget = 300
    case = {"kind": "dlq_delete", "kwargs": {"labels": "a", "batch_size": 10}, "context": {}, "deferrable": deferrable}
    try:
        with pinned_clock(), no_sleep(), wire(server), captured_logs():
            xcom, _, error = run_task(case)
    finally:
        undo()
    assert not server.overflow, f"the run did not stop: {len(server.sent)} requests, {dlq.left} left"
    if error is None:
        assert dlq.left == 0, f"the run succeeded with {dlq.left} selected entries left: {xcom}"
        assert xcom["deleted"] == left, xcom
