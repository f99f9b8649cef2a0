"""What the emulator's routes share: :class:`EmulatorState` (reachable as ``app.state.emulator``) and its
request log.

Kept apart from :mod:`qstash_emulator.app` (which builds the application) so that the route helpers of
:mod:`qstash_emulator.web` can name it without importing the application: no module of the emulator
imports one that imports it back.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qstash_emulator.actions import ActionStore
from qstash_emulator.cancel_mode import BulkCancelMode
from qstash_emulator.dlq import DeadLetterStore
from qstash_emulator.faults import FaultConfig, FaultInjector
from qstash_emulator.store import MessageStore

#: How many ``/v2`` requests the request log keeps unless told otherwise.
DEFAULT_REQUEST_LOG_SIZE = 100_000
#: How many bytes of entries the request log keeps unless told otherwise (64 MiB, by :func:`entry_size`, which
#: follows what CPython holds for an entry within a few per cent). Before the log had a byte bound, its 100,000
#: entries of up to ~64 kB of query each could hold gigabytes (200 of 60 kB held 11.94 MiB); 64 MiB keeps
#: ~50,000 small requests or ~3,500 bulk cancels of 85 message ids each.
DEFAULT_REQUEST_LOG_BYTES = 64 * 1024 * 1024
#: What :func:`entry_size` counts for an entry's fixed fields (its dict, numbers and short strings).
ENTRY_OVERHEAD_BYTES = 1024
#: What :func:`entry_size` counts per query pair beside its text (the pair and its two strings).
PAIR_OVERHEAD_BYTES = 160
#: How much of the path of a request without a valid token the log keeps.
UNAUTHORIZED_PATH_CHARS = 200
#: The header of ``GET /_emulator/requests`` that says how many entries the bounds dropped.
DROPPED_HEADER = "X-Request-Log-Dropped"
#: What a redacted value reads as in the log.
REDACTED = "***"

#: Query parameter names whose value is a credential: it is never logged (``qstash_token`` among them).
_SECRET_NAME_RE = re.compile(
    r"token|secret|passw|signature|credential|authori[sz]ation|cookie|session|^(api[_-]?)?key$|^sig$", re.I
)
#: Values that carry a credential whatever their parameter's name.
_SECRET_VALUE_RE = re.compile(r"^\s*(bearer|basic)\s+\S|^eyJ[\w-]+\.[\w-]+\.", re.I)


def redact_query(query: list[tuple[str, str]], token: str) -> list[tuple[str, str]]:
    """``query`` with every credential replaced by :data:`REDACTED`: the value of a parameter whose name says
    it is one (``qstash_token``, ``*token*``, ``*secret*``, ``key``, ...), a value that looks like one (a
    ``Bearer``/``Basic`` credential, a JWT), and the emulator's ``token`` wherever it appears."""
    return [(name, redact_text(value, token) if not _secret(name, value) else REDACTED) for name, value in query]


def redact_text(text: str, token: str) -> str:
    """``text`` with every occurrence of ``token`` replaced by :data:`REDACTED`."""
    return text.replace(token, REDACTED) if token else text


def _secret(name: str, value: str) -> bool:
    return bool(_SECRET_NAME_RE.search(name) or _SECRET_VALUE_RE.search(value))


def entry_size(entry: Mapping[str, Any]) -> int:
    """The bytes a request-log entry is counted for: its texts (UTF-8) plus fixed overheads."""
    query = entry.get("query") or ()
    texts = len(str(entry.get("method", "")).encode()) + len(str(entry.get("path", "")).encode())
    pairs = sum(len(name.encode()) + len(value.encode()) + PAIR_OVERHEAD_BYTES for name, value in query)
    return ENTRY_OVERHEAD_BYTES + texts + pairs


class RequestLog:
    """Bounded, thread-safe log of the ``/v2`` requests the emulator answered.

    Each entry: ``method``, ``path``, ``query`` (list of ``(name, value)`` pairs, blanks kept, credentials
    redacted: see :func:`redact_query`), ``authorized`` (whether the request carried the token; without it
    the entry keeps no query and at most :data:`UNAUTHORIZED_PATH_CHARS` of the path), ``queryOmitted``
    (whether the query was dropped because the entry alone exceeded ``max_bytes``), ``status`` (``None`` for
    a dropped connection), ``time`` (Unix seconds at arrival), ``durationMs`` (time in the app, injected
    latency included), ``storeMs`` and ``storeCpuMs`` (wall and thread-CPU time of the SQLite work,
    ``None`` if there was none) and ``fault`` (``None``, ``"drop"``, ``"429"``, ``"429_daily"``, ``"5xx"``,
    ``"status"`` or ``"partial"``).

    :param maxlen: oldest entries are discarded beyond this many.
    :param max_bytes: oldest entries are discarded while the entries' :func:`entry_size` sum exceeds this;
        an entry that alone exceeds it is kept without its query (``queryOmitted``) and with at most
        :data:`UNAUTHORIZED_PATH_CHARS` of its path.
    :raises ValueError: if a bound is not an integer >= 1.
    """

    def __init__(self, maxlen: int = DEFAULT_REQUEST_LOG_SIZE, max_bytes: int = DEFAULT_REQUEST_LOG_BYTES) -> None:
        for name, value in (("maxlen", maxlen), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"the request log's {name} must be an integer >= 1, got {value!r}")
        self._entries: deque[tuple[dict[str, Any], int]] = deque()
        self._maxlen = maxlen
        self.max_bytes = max_bytes
        self._bytes = 0
        self._dropped = 0
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """How many entries went to keep the bounds since the last :meth:`clear` (served as the
        ``X-Request-Log-Dropped`` header of ``GET /_emulator/requests``: a count read from the log is short by it)."""
        with self._lock:
            return self._dropped

    @property
    def bytes(self) -> int:
        """The :func:`entry_size` sum of the entries held (never above ``max_bytes``)."""
        with self._lock:
            return self._bytes

    def append(self, entry: dict[str, Any]) -> None:
        """Add one entry, discarding the oldest ones beyond the bounds."""
        entry.setdefault("queryOmitted", False)
        size = entry_size(entry)
        if size > self.max_bytes:
            entry["query"], entry["queryOmitted"] = [], True
            entry["path"] = entry["path"][:UNAUTHORIZED_PATH_CHARS]
            size = entry_size(entry)
        with self._lock:
            self._entries.append((entry, size))
            self._bytes += size
            while len(self._entries) > self._maxlen or self._bytes > self.max_bytes:
                self._bytes -= self._entries.popleft()[1]
                self._dropped += 1

    def entries(self) -> list[dict[str, Any]]:
        """A copy of all entries, oldest first."""
        with self._lock:
            return [dict(e, query=list(e["query"])) for e, _ in self._entries]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._dropped = 0


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


__all__ = [
    "DEFAULT_REQUEST_LOG_BYTES",
    "DEFAULT_REQUEST_LOG_SIZE",
    "DROPPED_HEADER",
    "EmulatorState",
    "RequestLog",
    "check_token",
    "entry_size",
    "redact_query",
    "redact_text",
]
