"""
The join policy (:mod:`airflow_qstash.runs.join`): a conflicting start joins the running action with our
filter, a finished one only when it may be ours, a bounded number of tries with backing-off pauses, and a
retry re-attaching to the actions it stored.
"""

from __future__ import annotations

import pytest

from airflow_qstash.exceptions import QStashAPIError
from airflow_qstash.protocol.calls import Effect
from airflow_qstash.protocol.messages import ActionStarted
from airflow_qstash.runs import join
from airflow_qstash.runs.join import CONFLICT_ATTEMPTS, joined_by_server, resume_action_id, start_or_join
from tests.support.procedures import PARAMS, Reply, action, calls, conflict, drive, sleeps


def test_joining_by_stored_id_keeps_every_stored_id_and_reattaches_to_the_last():
    followed = ["a1"]
    assert resume_action_id(["a1", "a2", "a3"], followed) == "a3"
    assert followed == ["a1", "a2", "a3"]  # never joined by filter again
    assert resume_action_id([], followed) is None and followed == ["a1", "a2", "a3"]
    # a DLQ /bulk start the server answered with an action this run did not start
    assert joined_by_server("a2", None, followed, 1_000)
    assert joined_by_server("new", 999, followed, 1_000)
    assert not joined_by_server("new", 1_000, followed, 1_000)
    assert not joined_by_server("new", None, followed, 1_000)


def test_a_finished_action_is_joined_only_when_asked_and_recent_enough():
    listing = {
        "bulkActions": [
            action("old", "FINISHED", createdAt=900),
            action("recent", "FINISHED", createdAt=1_100),
            action("newest", "FINISHED", createdAt=1_200),
            action("excluded", "FINISHED", createdAt=1_300),
        ]
    }
    # a 429 without rate-limit headers: our start was accepted, so the newest finished action is ours
    got, effects = drive(start_or_join(PARAMS, not_before_ms=1_000, exclude=["excluded"]), [conflict(429), listing])
    assert got == ActionStarted("newest", joined=True)
    assert ("state", "IN_PROGRESS") not in calls(effects)[1].params  # finished ones are listed too
    # without not_before_ms a finished action is never joined: the start is tried again
    got, effects = drive(start_or_join(PARAMS), [conflict(429), listing, {"actionId": "fresh"}])
    assert got == ActionStarted("fresh")


def test_a_412_joins_only_a_running_action_never_a_finished_one():
    """A 412 started nothing: a finished action with our filter may be an earlier run's, whose zero would
    end this run with messages left."""
    listing = {"bulkActions": [action("earlier-run", "FINISHED", createdAt=1_200)]}
    got, effects = drive(start_or_join(PARAMS, not_before_ms=1_000), [conflict(412), listing, {"actionId": "fresh"}])
    assert got == ActionStarted("fresh")
    assert ("state", "IN_PROGRESS") in calls(effects)[1].params


def test_a_running_action_is_preferred_over_a_finished_one():
    listing = {"bulkActions": [action("done", "FINISHED", createdAt=2_000), action("running", createdAt=1_500)]}
    got, _ = drive(start_or_join(PARAMS, not_before_ms=1_000), [conflict(), listing])
    assert got == ActionStarted("running", joined=True)


def test_conflicts_with_nothing_to_join_are_tried_a_bounded_number_of_times():
    replies: list[Reply] = []
    for _ in range(CONFLICT_ATTEMPTS):
        replies += [conflict(429), {"bulkActions": []}]
    with pytest.raises(QStashAPIError, match=f"tried {CONFLICT_ATTEMPTS} times") as info:
        drive(start_or_join(PARAMS, max_pause=3.0), replies)
    assert info.value.http_status == 429


def test_conflict_pauses_back_off_to_the_ceiling_and_come_between_the_starts():
    replies: list[Reply] = []
    for _ in range(CONFLICT_ATTEMPTS):
        replies += [conflict(), {"bulkActions": []}]
    effects: list[Effect] = []
    with pytest.raises(QStashAPIError):
        drive(start_or_join(PARAMS, max_pause=3.0), replies, effects)
    pauses = sleeps(effects)
    assert pauses[:3] == [join.CONFLICT_BACKOFF, min(2 * join.CONFLICT_BACKOFF, 3.0), 3.0]
    assert max(pauses) == 3.0
    assert len(calls(effects)) == 2 * CONFLICT_ATTEMPTS
    assert len(pauses) == CONFLICT_ATTEMPTS - 1  # no pause after the last start: it would only delay the error
