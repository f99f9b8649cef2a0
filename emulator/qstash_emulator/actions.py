"""Bulk actions of today's hosted QStash: the store of actions and the worker that runs them.

A filter bulk cancel on a server in ``actions`` mode does not cancel anything in the request:
it snapshots the held messages that match at accept time, records a *bulk action* and returns.
:class:`ActionRunner` (one daemon thread) then cancels the snapshot at ``rate`` messages per
second and per action, and marks the action ``FINISHED``. A snapshot message cancelled
meanwhile by someone else counts as processed, not cancelled twice; messages created after
acceptance are not in the snapshot and are never touched.

Actions live in the same SQLite database as the messages (tables ``bulk_actions`` and
``bulk_action_items``), so with a database file they survive a restart, and an action still
``IN_PROGRESS`` resumes when the emulator starts again. Actions older than
:data:`RETENTION_MS` (7 days) are dropped when actions are read.

The API shape of an action (``BulkAction``)::

    {"actionId": "...", "kind": "cancel", "state": "IN_PROGRESS" | "FINISHED",
     "total": n, "processed": m, "createdAt": ms, "completedAt": ms (once finished),
     "filter": {"label": ["a", "b"], "fromDate": ["1700000000000"], ...}}
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qstash_emulator.query import BulkCancelQuery
from qstash_emulator.records import now_ms
from qstash_emulator.store import MessageStore

log = logging.getLogger(__name__)

#: How long a bulk action is kept, in milliseconds (7 days).
RETENTION_MS = 7 * 24 * 3600 * 1000
#: The states of a bulk action.
ACTION_STATES: tuple[str, ...] = ("IN_PROGRESS", "FINISHED")
#: Default processing rate of a bulk action, messages per second.
DEFAULT_ACTION_RATE = 2000.0

_TABLES = """
CREATE TABLE IF NOT EXISTS bulk_actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    total INTEGER NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    cancel_limit INTEGER,
    created_at INTEGER NOT NULL,
    completed_at INTEGER,
    filter TEXT NOT NULL,
    filter_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_actions_in_progress ON bulk_actions (filter_key) WHERE state = 'IN_PROGRESS';
CREATE TABLE IF NOT EXISTS bulk_action_items (
    seq INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    mid INTEGER NOT NULL,
    PRIMARY KEY (seq, pos)
) WITHOUT ROWID;
"""

_COLUMNS = "seq, action_id, kind, state, total, processed, cancelled, cancel_limit, created_at, completed_at, filter"


def filter_key(action_filter: Mapping[str, Sequence[str]]) -> str:
    """Canonical text of a filter, equal for two filters with the same keys and the same values in any order."""
    return json.dumps({name: sorted(values) for name, values in action_filter.items() if values}, sort_keys=True)


def new_action_id() -> str:
    """A fresh random bulk action id."""
    return "act_" + uuid.uuid4().hex


@dataclass(frozen=True)
class StartResult:
    """Outcome of :meth:`ActionStore.start`.

    :param action: the new action (API dict), or ``None`` when an action with the same filter
        is already in progress (nothing was started).
    :param conflict: the ``IN_PROGRESS`` action with the same filter, when there is one.
    """

    action: dict[str, Any] | None
    conflict: dict[str, Any] | None = None


@dataclass(frozen=True)
class ActionPage:
    """One page of ``GET /v2/bulkActions``.

    :param actions: the actions of the page that pass the state filter (API dicts).
    :param cursor: where the next page starts, or ``None`` at the end.
    """

    actions: list[dict[str, Any]]
    cursor: str | None


class ActionStore:
    """Bulk actions in the message store's SQLite database (same connection, same lock).

    :param store: the message store whose messages the actions cancel.
    :param clock: current time in Unix ms (tests move it to check the 7-day retention).
    """

    def __init__(self, store: MessageStore, *, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.clock = clock
        with store.lock:
            store.connection.executescript(_TABLES)

    def reset(self) -> None:
        """Forget every action."""
        with self.store.lock, self.store.transaction():
            self.store.connection.execute("DELETE FROM bulk_action_items")
            self.store.connection.execute("DELETE FROM bulk_actions")

    # -- starting --------------------------------------------------------------------------

    def start(self, query: BulkCancelQuery, *, partial_fraction: float | None = None) -> StartResult:
        """Snapshot the held messages ``query`` selects and record a bulk action over them.

        ``query.count`` must be ``None`` (a bulk action ignores ``count``). Refused, with nothing
        started, when an ``IN_PROGRESS`` action has the same filter (see :func:`filter_key`).

        :param query: a filter cancel (no ``messageIds``).
        :param partial_fraction: emulate an action that cancels only the first
            ``floor(partial_fraction * total)`` messages of its snapshot (strictly fewer than
            ``total``); ``None`` cancels all of them.
        """
        if query.message_ids or query.count is not None:
            raise ValueError("a bulk action takes a filter cancel without messageIds or count")
        action_filter = query.action_filter()
        key = filter_key(action_filter)
        conn = self.store.connection
        with self.store.lock:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM bulk_actions WHERE filter_key = ? AND state = 'IN_PROGRESS' LIMIT 1", (key,)
            ).fetchone()
            if row is not None:
                return StartResult(action=None, conflict=_row_to_action(row))
            rows = self.store.select(query)
            total = len(rows)
            created = self.clock()
            limit = None
            if partial_fraction is not None and total:
                limit = min(math.floor(partial_fraction * total), total - 1)
            state, completed = ("FINISHED", created) if total == 0 else ("IN_PROGRESS", None)
            action_id = new_action_id()
            with self.store.transaction():
                cursor = conn.execute(
                    "INSERT INTO bulk_actions (action_id, kind, state, total, cancel_limit, created_at, "
                    "completed_at, filter, filter_key) VALUES (?, 'cancel', ?, ?, ?, ?, ?, ?, ?)",
                    (action_id, state, total, limit, created, completed, json.dumps(action_filter), key),
                )
                seq = cursor.lastrowid
                conn.executemany(
                    "INSERT INTO bulk_action_items (seq, pos, mid) VALUES (?, ?, ?)",
                    ((seq, pos, row[1]) for pos, row in enumerate(rows)),
                )
            return StartResult(action=self._get_seq(seq))

    # -- running -----------------------------------------------------------------------------

    def in_progress(self) -> list[tuple[int, int, int]]:
        """``(seq, processed, total)`` of every ``IN_PROGRESS`` action, oldest first."""
        with self.store.lock:
            rows = self.store.connection.execute(
                "SELECT seq, processed, total FROM bulk_actions WHERE state = 'IN_PROGRESS' ORDER BY seq"
            ).fetchall()
        return [(int(a), int(b), int(c)) for a, b, c in rows]

    def advance(self, seq: int, n: int) -> bool:
        """Process the next ``n`` snapshot messages of action ``seq``; ``True`` once it is finished.

        A message still held is cancelled (unless it lies beyond the action's partial-fault
        limit); one cancelled meanwhile is only counted as processed.
        """
        conn = self.store.connection
        with self.store.lock:
            row = conn.execute(
                "SELECT processed, total, cancel_limit, state FROM bulk_actions WHERE seq = ?", (seq,)
            ).fetchone()
            if row is None or row[3] != "IN_PROGRESS":
                return True
            processed, total, limit, _ = row
            end = min(total, processed + max(n, 0))
            stop = end if limit is None else min(end, max(limit, processed))
            targets = conn.execute(
                "SELECT m.created_at, m.id, m.queue_name FROM bulk_action_items AS i "
                "JOIN messages AS m ON m.id = i.mid WHERE i.seq = ? AND i.pos >= ? AND i.pos < ? AND m.held = 1",
                (seq, processed, stop),
            ).fetchall()
            finished = end >= total
            with self.store.transaction():
                if targets:
                    self.store.cancel_rows([tuple(t) for t in targets])  # type: ignore[misc]
                if finished:
                    conn.execute(
                        "UPDATE bulk_actions SET processed = ?, cancelled = cancelled + ?, state = 'FINISHED', "
                        "completed_at = ? WHERE seq = ?",
                        (end, len(targets), self.clock(), seq),
                    )
                    conn.execute("DELETE FROM bulk_action_items WHERE seq = ?", (seq,))
                else:
                    conn.execute(
                        "UPDATE bulk_actions SET processed = ?, cancelled = cancelled + ? WHERE seq = ?",
                        (end, len(targets), seq),
                    )
            return finished

    # -- reading -------------------------------------------------------------------------------

    def purge(self) -> int:
        """Drop the actions created more than :data:`RETENTION_MS` before :attr:`clock`; returns how many."""
        cutoff = self.clock() - RETENTION_MS
        conn = self.store.connection
        with self.store.lock, self.store.transaction():
            old = [r[0] for r in conn.execute("SELECT seq FROM bulk_actions WHERE created_at < ?", (cutoff,))]
            if old:
                ids = json.dumps(old)
                conn.execute("DELETE FROM bulk_action_items WHERE seq IN (SELECT value FROM json_each(?))", (ids,))
                conn.execute("DELETE FROM bulk_actions WHERE seq IN (SELECT value FROM json_each(?))", (ids,))
        return len(old)

    def get(self, action_id: str) -> dict[str, Any] | None:
        """The action (API dict), or ``None`` if unknown or older than the retention."""
        self.purge()
        with self.store.lock:
            row = self.store.connection.execute(
                f"SELECT {_COLUMNS} FROM bulk_actions WHERE action_id = ?", (action_id,)
            ).fetchone()
        return None if row is None else _row_to_action(row)

    def _get_seq(self, seq: int | None) -> dict[str, Any]:
        row = self.store.connection.execute(f"SELECT {_COLUMNS} FROM bulk_actions WHERE seq = ?", (seq,)).fetchone()
        return _row_to_action(row)

    def page(self, *, cursor: int | None, count: int, state: str | None) -> ActionPage:
        """One page of the listing: the next ``count`` actions in creation order after ``cursor``,
        then filtered by ``state`` (so a page may be short, or empty, while more remain).
        """
        self.purge()
        with self.store.lock:
            rows = self.store.connection.execute(
                f"SELECT {_COLUMNS} FROM bulk_actions WHERE seq > ? ORDER BY seq LIMIT ?",
                (-1 if cursor is None else cursor, count + 1),
            ).fetchall()
        more = len(rows) > count
        rows = rows[:count]
        actions = [_row_to_action(row) for row in rows if state is None or row[3] == state]
        return ActionPage(actions=actions, cursor=str(rows[-1][0]) if more else None)

    def all(self) -> list[dict[str, Any]]:
        """Every stored action, oldest first, with the admin field ``cancelled`` (not purged)."""
        with self.store.lock:
            rows = self.store.connection.execute(f"SELECT {_COLUMNS} FROM bulk_actions ORDER BY seq").fetchall()
        return [_row_to_action(row, admin=True) for row in rows]

    def status(self, action_id: str) -> tuple[str, int] | None:
        """``(state, cancelled)`` of an action, ``None`` if unknown (cheap: for the synchronous wait)."""
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT state, cancelled FROM bulk_actions WHERE action_id = ?", (action_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))


def _row_to_action(row: Sequence[Any], *, admin: bool = False) -> dict[str, Any]:
    _seq, action_id, kind, state, total, processed, cancelled, cancel_limit, created_at, completed_at, text = row
    action: dict[str, Any] = {
        "actionId": action_id,
        "kind": kind,
        "state": state,
        "total": total,
        "processed": processed,
        "createdAt": created_at,
        "filter": json.loads(text),
    }
    if completed_at is not None:
        action["completedAt"] = completed_at
    if admin:
        action["cancelled"] = cancelled
        action["cancelLimit"] = cancel_limit
    return action


class ActionRunner:
    """The background worker: one daemon thread that moves every ``IN_PROGRESS`` action on.

    Each action advances at ``rate`` messages per second, measured from when this runner first
    saw it (so an action resumed after a restart goes on at the same pace).

    :param actions: the action store.
    :param rate: messages per second and per action; finite and > 0.
    :param tick: seconds between two rounds while actions are in progress.
    """

    def __init__(self, actions: ActionStore, rate: float = DEFAULT_ACTION_RATE, *, tick: float = 0.01) -> None:
        if not 0 < rate < math.inf:
            raise ValueError(f"action_rate must be a finite number > 0, got {rate!r}")
        self.actions = actions
        self.rate = float(rate)
        self.tick = tick
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._baselines: dict[int, tuple[float, int]] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="qstash-emulator-actions", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Tell the worker a new action may be waiting."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker and wait for it (bounded)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.step()
            except sqlite3.ProgrammingError:  # the store was closed under us: the emulator is stopping
                return
            except Exception:  # keep serving; the next round retries
                log.exception("bulk action worker round failed")
                busy = True
            if busy:
                self._stop.wait(self.tick)
            else:
                self._wake.wait(1.0)
                self._wake.clear()

    def step(self, now: float | None = None) -> bool:
        """One round over the actions in progress; ``True`` if some are still in progress."""
        current = time.monotonic() if now is None else now
        pending = self.actions.in_progress()
        live = {seq for seq, _, _ in pending}
        for seq in list(self._baselines):
            if seq not in live:
                del self._baselines[seq]
        busy = False
        for seq, processed, total in pending:
            started, base = self._baselines.setdefault(seq, (current, processed))
            target = min(total, base + math.floor((current - started) * self.rate))
            if target > processed or total == processed:
                finished = self.actions.advance(seq, target - processed)
            else:
                finished = False
            busy = busy or not finished
        return busy


__all__ = [
    "ACTION_STATES",
    "DEFAULT_ACTION_RATE",
    "RETENTION_MS",
    "ActionPage",
    "ActionRunner",
    "ActionStore",
    "StartResult",
    "filter_key",
    "new_action_id",
]
