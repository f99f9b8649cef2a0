"""What the QStash triggers share: drive one run on the async hook and turn how it ended into one event."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.providers.common.compat.sdk import AirflowException
from airflow.triggers.base import TriggerEvent

from airflow_qstash.exceptions import QStashRunIncomplete, redact

if TYPE_CHECKING:
    from airflow_qstash.config import QStashConnectionConfig
    from airflow_qstash.hooks.qstash import QStashAsyncHook
    from airflow_qstash.protocol.calls import Procedure


class _Run(Protocol):
    """A run that reports its totals so far."""

    def summary(self) -> dict[str, Any]:
        """The totals so far, as the XCom value."""


RunT = TypeVar("RunT", bound=_Run)


async def drive_to_event(
    hook: QStashAsyncHook,
    start: Callable[[], RunT],
    steps: Callable[[RunT, QStashConnectionConfig], Procedure[dict[str, Any]]],
    *,
    what: str,
) -> TriggerEvent:
    """
    Drive one run to its end on ``hook`` and return the one event that says how it ended: ``success``
    with the summary; ``error`` with the message and the totals so far when the run stopped early
    (:class:`~airflow_qstash.exceptions.QStashRunIncomplete`),
    or when the connection or the serialised run could not be read (an
    ``AirflowException``, ``ValueError`` or ``TypeError``). The hook's client is closed before the event
    is returned, and when the trigger is cancelled.

    :param hook: a new :class:`~airflow_qstash.hooks.qstash.QStashAsyncHook` for the trigger's connection.
    :param start: builds the run from the trigger's serialised arguments (validated again).
    :param steps: the run's sans-IO procedure for the connection, returning the summary.
    :param what: the run, for the error message (``bulk cancel``, ``DLQ delete``).
    """
    run: RunT | None = None
    try:
        run = start()
        config = await hook.get_config()
        summary = await hook.drive(steps(run, config))
    except QStashRunIncomplete as err:
        # the event is stored in the metadata database: its text passes the one redacting function
        return TriggerEvent({"status": "error", "message": redact(str(err)), **err.summary})
    except (AirflowException, ValueError, TypeError) as err:  # a missing connection, a bad filter dict
        totals = run.summary() if run is not None else {}
        return TriggerEvent({"status": "error", "message": redact(f"QStash {what} failed: {err}"), **totals})
    finally:
        await hook.aclose()
    return TriggerEvent({"status": "success", **summary})


__all__ = ["drive_to_event"]
