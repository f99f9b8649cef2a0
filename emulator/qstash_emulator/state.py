"""What the emulator's routes share: :class:`EmulatorState` (reachable as ``app.state.emulator``) and its
request log.

Kept apart from :mod:`qstash_emulator.app` (which builds the application) so that the route helpers of
:mod:`qstash_emulator.web` can name it without importing the application: no module of the emulator
imports one that imports it back.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from qstash_emulator.actions import ActionStore
from qstash_emulator.cancel_mode import BulkCancelMode
from qstash_emulator.dlq import DeadLetterStore
from qstash_emulator.faults import FaultConfig, FaultInjector
from qstash_emulator.store import MessageStore

#: How many ``/v2`` requests the request log keeps unless told otherwise.
DEFAULT_REQUEST_LOG_SIZE = 100_000


class RequestLog:
    """Bounded, thread-safe log of the ``/v2`` requests the emulator answered.

    Each entry: ``method``, ``path``, ``query`` (list of ``(name, value)`` pairs, blanks kept),
    ``status`` (``None`` for a dropped connection), ``time`` (Unix seconds at arrival),
    ``durationMs`` (time in the app, injected latency included), ``storeMs`` and ``storeCpuMs``
    (wall and thread-CPU time of the SQLite work, ``None`` if there was none) and ``fault``
    (``None``, ``"drop"``, ``"429"``, ``"429_daily"``, ``"5xx"``, ``"status"`` or ``"partial"``).

    :param maxlen: oldest entries are discarded beyond this many.
    """

    def __init__(self, maxlen: int = DEFAULT_REQUEST_LOG_SIZE) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, entry: dict[str, Any]) -> None:
        """Add one entry."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """A copy of all entries, oldest first."""
        with self._lock:
            return [dict(e, query=list(e["query"])) for e in self._entries]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


@dataclass
class EmulatorState:
    """Everything the routes share; reachable as ``app.state.emulator``.

    :param store: the message store.
    :param token: the bearer token ``/v2`` routes require.
    :param faults: the fault injector.
    :param initial_faults: configuration :meth:`reset` goes back to.
    :param request_log: log of ``/v2`` requests.
    :param actions: the bulk actions (same database as ``store``).
    :param bulk_cancel: the server generation answering bulk cancels and bulk-action routes.
    :param dlq: the dead-letter queue (same database as ``store``).
    """

    store: MessageStore
    token: str
    faults: FaultInjector
    actions: ActionStore
    bulk_cancel: BulkCancelMode
    dlq: DeadLetterStore
    initial_faults: FaultConfig | None = None
    request_log: RequestLog = field(default_factory=RequestLog)

    def reset(self) -> None:
        """Empty the store, the bulk actions, the DLQ and the request log, and restore the initial faults."""
        self.actions.reset()
        self.dlq.reset()
        self.store.reset()
        self.request_log.clear()
        self.faults.configure(self.initial_faults)

    def close(self) -> None:
        """Stop the background work (bounded) and close the database."""
        self.bulk_cancel.close()
        self.store.close()


def check_token(token: str) -> str:
    """``token`` if it can protect the ``/v2`` routes.

    :raises ValueError: for an empty or whitespace-only token: ``Authorization: Bearer`` with
        nothing after it, or ``?qstash_token=``, would be accepted.
    """
    if not isinstance(token, str) or not token.strip():
        raise ValueError(
            "the emulator's token must not be empty or blank: set --token, QSTASH_EMULATOR_TOKEN or token="
        )
    return token


__all__ = ["DEFAULT_REQUEST_LOG_SIZE", "EmulatorState", "RequestLog", "check_token"]
