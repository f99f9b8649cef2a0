"""
The one driver of the provider's sans-IO procedures in tests, and the bulk-action answers they are fed.

A procedure (:data:`airflow_qstash.protocol.calls.Procedure`) yields a
:class:`~airflow_qstash.protocol.calls.Call` or a :class:`~airflow_qstash.protocol.calls.Sleep` and is sent
the answer; :func:`drive` plays the hook: the next scripted reply for each Call (thrown in when it is an
exception), nothing for a Sleep, and a bound on the number of effects so a procedure that never ends fails
the test instead of hanging it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from airflow_qstash.exceptions import QStashActionConflict
from airflow_qstash.protocol.calls import Call, Effect, Procedure, Sleep

Reply = Any  # an answer, an exception to throw in, or a callable of the Call giving either

#: The effects a driven procedure may yield before :func:`drive` calls it endless.
MAX_EFFECTS = 1000

#: A filter cancel's parameters: one label, asked to run as a bulk action.
PARAMS = [("label", "a"), ("async", "true")]


def drive(
    procedure: Procedure[Any],
    replies: Iterable[Reply],
    effects: list[Effect] | None = None,
    *,
    sleep: Callable[[float], None] | None = None,
) -> tuple[Any, list[Effect]]:
    """
    Run a procedure as a hook would: the next reply for each Call, nothing for a Sleep. Every effect is
    appended to ``effects`` (pass a list to keep them when the procedure ends in an error). ``sleep``, when
    given, is called with each Sleep's seconds (to move a pinned clock). For one answer to every Call pass
    ``itertools.repeat(answer)``.
    """
    pending = iter(replies)
    effects = [] if effects is None else effects
    value: Any = None
    error: BaseException | None = None
    for _ in range(MAX_EFFECTS):
        try:
            effect = procedure.throw(error) if error is not None else procedure.send(value)
        except StopIteration as done:
            return done.value, effects
        effects.append(effect)
        value, error = None, None
        if isinstance(effect, Call):
            reply = next(pending)
            reply = reply(effect) if callable(reply) else reply
            if isinstance(reply, BaseException):
                error = reply
            else:
                value = reply
        elif sleep is not None and isinstance(effect, Sleep):
            sleep(effect.seconds)
    raise AssertionError(f"the procedure did not end within {MAX_EFFECTS} effects")


def calls(effects: list[Effect]) -> list[Call]:
    """The Calls among ``effects``, in order."""
    return [effect for effect in effects if isinstance(effect, Call)]


def sleeps(effects: list[Effect]) -> list[float]:
    """The seconds of the Sleeps among ``effects``, in order."""
    return [effect.seconds for effect in effects if isinstance(effect, Sleep)]


def action(action_id: str, state: str = "IN_PROGRESS", **fields: Any) -> dict[str, Any]:
    """A bulk action as ``GET /v2/bulkActions`` lists it: five matching, one processed, ``label=a``."""
    return {"actionId": action_id, "state": state, "total": 5, "processed": 1, "filter": {"label": ["a"]}, **fields}


def conflict(status: int = 412) -> QStashActionConflict:
    """What the wire raises when a filter cancel meets a running action (412) or a header-less 429."""
    return QStashActionConflict(f"QStash DELETE /v2/messages failed with {status}: conflict", http_status=status)
