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
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.doubles.harness import (
    Answer,
    FakeQStash,
    Request,
    captured_logs,
    no_sleep,
    pinned_clock,
    set_env,
    wire,
)
from tests.integration.properties.test_operator_inputs import OPERATORS, run_task

CONN_ID = "qstash_prop_op"  # the operator runner's connection
#: What one bulk action does with its snapshot: cancel it all, some of it, or none; and what it reports.
BEHAVIOURS = ("honest", "part", "none")
REPORTS = ("total", "went", "zero")


@dataclass
class ActionServer(FakeQStash):
    """Today's hosted QStash with ``left`` messages matching the filter, whose actions follow ``script``."""

    left: int = 0
    script: list[tuple[str, str]] = field(default_factory=list)
    actions: dict[str, dict[str, Any]] = field(default_factory=dict)
    overflow: bool = False

    def answer(self, request: Request) -> Answer:
        self.sent.append(request)
        if len(self.sent) > 300:
            self.overflow = True
            return Answer(500, {"error": "the test's request budget is spent"})
        if (request.method, request.path) == ("DELETE", "/v2/messages"):
            behaviour, report = self.script.pop(0) if self.script else ("honest", "total")
            total = self.left
            went = {"honest": total, "part": total // 2, "none": 0}[behaviour]
            self.left -= went
            processed = {"total": total, "went": went, "zero": 0}[report]
            action_id = f"act_{len(self.actions)}"
            self.actions[action_id] = {
                "actionId": action_id,
                "state": "FINISHED",
                "total": total,
                "processed": processed,
                "filter": {"label": ["a"]},
            }
            return Answer(202, {"actionId": action_id})
        if request.method == "GET" and request.path.startswith("/v2/bulkActions/"):
            action = self.actions.get(request.path.rsplit("/", 1)[1])
            return Answer(200, action) if action else Answer(404, {"error": "no such action"})
        if (request.method, request.path) == ("GET", "/v2/bulkActions"):
            return Answer(200, {"bulkActions": []})
        return Answer(404, {"error": f"not scripted: {request.method} {request.path}"})


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
    server = ActionServer(left=left, script=list(script))
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
class DLQServer(FakeQStash):
    """A DLQ of ``left`` matching entries whose delete pages follow ``script``, its last page for ever."""

    left: int = 0
    script: list[str] = field(default_factory=list)
    overflow: bool = False

    def answer(self, request: Request) -> Answer:
        self.sent.append(request)
        if len(self.sent) > 300:
            self.overflow = True
            return Answer(500, {"error": "the test's request budget is spent"})
        if (request.method, request.path) != ("DELETE", "/v2/dlq"):
            return Answer(404, {"error": f"not scripted: {request.method} {request.path}"})
        count = int(dict(request.query).get("count", "100"))
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
    server = DLQServer(left=left, script=list(script))
    case = {"kind": "dlq_delete", "kwargs": {"labels": "a", "batch_size": 10}, "context": {}, "deferrable": deferrable}
    try:
        with pinned_clock(), no_sleep(), wire(server), captured_logs():
            xcom, _, error = run_task(case)
    finally:
        undo()
    assert not server.overflow, f"the run did not stop: {len(server.sent)} requests, {server.left} left"
    if error is None:
        assert server.left == 0, f"the run succeeded with {server.left} selected entries left: {xcom}"
        assert xcom["deleted"] == left, xcom
