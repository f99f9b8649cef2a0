"""Request and response helpers shared by the emulator's route modules.

Kept apart from :mod:`qstash_emulator.app` so that the route modules (bulk cancel
strategies, bulk actions, DLQ) can use them without importing the application; the state they
reach is :class:`qstash_emulator.state.EmulatorState`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from qstash_emulator.faults import NO_FAULT, FaultDecision
from qstash_emulator.query import QueryError
from qstash_emulator.state import EmulatorState

#: Key of the per-request :class:`FaultDecision` in the ASGI scope.
FAULT_SCOPE_KEY = "qstash_emulator.fault"
#: Key of the per-request ``[wall_s, cpu_s]`` spent in the store, in the ASGI scope.
STORE_TIME_SCOPE_KEY = "qstash_emulator.store_time"
#: Key of the request's request-log entry (a dict) in the ASGI scope.
LOG_ENTRY_SCOPE_KEY = "qstash_emulator.log_entry"

_T = TypeVar("_T")


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The API's ``Error`` shape: ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


def emulator_state(request: Request) -> EmulatorState:
    """The :class:`~qstash_emulator.state.EmulatorState` of the app serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state


def fault_decision(request: Request) -> FaultDecision:
    """The fault injector's decision for this ``/v2`` request (no fault outside ``/v2``)."""
    decision: FaultDecision = request.scope.get(FAULT_SCOPE_KEY, NO_FAULT)
    return decision


def record_fault(request: Request, label: str | None) -> None:
    """Set the ``fault`` field of this request's log entry to what was really applied."""
    entry = request.scope.get(LOG_ENTRY_SCOPE_KEY)
    if entry is not None:
        entry["fault"] = label


async def store_call(request: Request, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run store work in the thread pool, adding its wall and thread-CPU time to the request's log entry."""

    def timed() -> tuple[_T, float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn(*args, **kwargs)
        return result, time.perf_counter() - wall, time.thread_time() - cpu

    result, wall, cpu = await run_in_threadpool(timed)
    totals = request.scope.setdefault(STORE_TIME_SCOPE_KEY, [0.0, 0.0])
    totals[0] += wall
    totals[1] += cpu
    return result


# The helpers below answer by raising HTTPException: the app's handler turns it into the API's
# ``Error`` (:func:`error_response`), the same answer a route would return itself.


def parsed(parse: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``parse(*args, **kwargs)``; the :class:`~qstash_emulator.query.QueryError` it raises is answered 400.

    :raises HTTPException: 400 with the error's message.
    """
    try:
        return parse(*args, **kwargs)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc


async def found_or_404(
    request: Request, param: str, lookup: Callable[..., _T | None], not_found: str, *args: Any
) -> _T:
    """``lookup(value, *args)`` run in the store (see :func:`store_call`), ``value`` being the path
    parameter ``param``; what it found.

    :param not_found: the answer when it finds nothing (``None`` or ``False``); ``{}`` stands for the value.
    :raises HTTPException: 404 with ``not_found``.
    """
    value = request.path_params[param]
    found = await store_call(request, lookup, value, *args)
    if found is None or found is False:
        raise HTTPException(404, not_found.format(value))
    return found


__all__ = [
    "FAULT_SCOPE_KEY",
    "LOG_ENTRY_SCOPE_KEY",
    "STORE_TIME_SCOPE_KEY",
    "emulator_state",
    "error_response",
    "fault_decision",
    "found_or_404",
    "parsed",
    "record_fault",
    "store_call",
]
