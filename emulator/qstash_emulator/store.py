"""SQLite message store of the QStash emulator.

One connection, guarded by a re-entrant lock, is shared by uvicorn's worker
threads and the test thread (``check_same_thread=False``). Messages are never
deleted: cancelling sets ``held = 0`` and ``cancelled_at``, so tests can look at
what was cancelled.

Indexing, so that a 500-message bulk cancel stays in milliseconds whatever the
size of the store:

* every filterable column has a *partial* index ``(column, created_at) WHERE
  held = 1 AND column IS NOT NULL``: cancelled messages drop out of it, and a
  lookup for one value yields the held messages in creation order;
* ``ix_held_created`` on ``created_at WHERE held = 1`` serves requests without a
  column filter (date window only, or nothing but ``count``);
* labels live in a side table ``message_labels(label, created_at, mid)`` whose
  primary key plays the same role; its rows are deleted when the message is
  cancelled, and an index on ``(mid, label)`` answers "has this message one of
  these labels" for residual checks.

A bulk cancel picks one *driving* filter (the most selective kind first, see
:data:`DRIVING_ORDER`), runs one index range scan per value of that filter in
``created_at`` order with the other filters as residual conditions, merges the
per-value results and keeps the oldest ``count`` (see :mod:`qstash_emulator.tables`,
shared with the DLQ). Hence "oldest matching held messages first", and no full scan as long
as the driving filter is selective enough for the residual conditions to be met quickly.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

from qstash_emulator.query import COUNT_BY, INT64_MAX, AdminFilter, BulkCancelQuery
from qstash_emulator.records import NewMessage, now_ms
from qstash_emulator.seeding import generate_messages
from qstash_emulator.tables import (
    BULK_LOAD_THRESHOLD,
    FilteredTable,
    Scan,
    Statement,
    explain,
    json_list,
    limited,
)

#: API filter name -> column of ``messages``; ``label`` is handled by the side table.
FILTER_COLUMNS: Mapping[str, str] = {
    "topicName": "topic_name",
    "queueName": "queue_name",
    "url": "url",
    "host": "host",
    "path": "path",
    "flowControlKey": "flow_control_key",
    "scheduleId": "schedule_id",
    "callerIp": "caller_ip",
}

#: Which present filter drives the index scan: roughly most selective kind first.
DRIVING_ORDER: tuple[str, ...] = (
    "url",
    "scheduleId",
    "flowControlKey",
    "callerIp",
    "path",
    "label",
    "topicName",
    "queueName",
    "host",
)

#: Keys accepted by :meth:`MessageStore.add_messages`.
MESSAGE_KEYS: frozenset[str] = frozenset(
    {
        "messageId",
        "url",
        "label",
        "labels",
        "topicName",
        "queueName",
        "flowControlKey",
        "scheduleId",
        "callerIp",
        "callerIP",
        "createdAt",
        "method",
        "body",
        "maxRetries",
        "header",
        "upstashHeaders",
    }
)

STATES: tuple[str, ...] = ("held", "cancelled", "all")

_TABLES = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    host TEXT NOT NULL,
    path TEXT NOT NULL,
    topic_name TEXT,
    queue_name TEXT,
    labels TEXT,
    flow_control_key TEXT,
    schedule_id TEXT,
    caller_ip TEXT,
    method TEXT NOT NULL DEFAULT 'POST',
    body TEXT,
    created_at INTEGER NOT NULL,
    held INTEGER NOT NULL DEFAULT 1,
    cancelled_at INTEGER,
    max_retries INTEGER,
    header TEXT,
    upstash_headers TEXT
);
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    lag INTEGER NOT NULL DEFAULT 0
);
"""

#: The ``messages`` table as bulk cancels select from it: held messages only (the filter indexes
#: are partial, on them), with their queue.
MESSAGES = FilteredTable(
    name="messages",
    alias="m",
    labels="message_labels",
    labels_key="mid",
    labels_index="ix_labels_mid",
    columns=FILTER_COLUMNS,
    driving_order=DRIVING_ORDER,
    not_null=frozenset({"url", "host", "path"}),
    index_prefix="ix_held_",
    index_where="held = 1",
    other_indexes={"ix_message_id": "CREATE UNIQUE INDEX IF NOT EXISTS ix_message_id ON messages (message_id)"},
    conditions=("m.held = 1",),
    carried=("m.queue_name",),
)

#: Secondary indexes, ``name -> CREATE statement``; dropped and rebuilt around large seeds.
_INDEXES: dict[str, str] = MESSAGES.indexes

#: Columns added after the first release, with their types: an older database file gets them on open.
_ADDED_COLUMNS: dict[str, str] = {"max_retries": "INTEGER", "header": "TEXT", "upstash_headers": "TEXT"}

#: ``maxRetries`` of a message published without ``Upstash-Retries`` (QStash's default).
DEFAULT_MAX_RETRIES = 3


def new_message_id() -> str:
    """A fresh random message id in QStash's ``msg_...`` style."""
    return "msg_" + uuid.uuid4().hex


def split_url(url: str) -> tuple[str, str]:
    """Return ``(host, path)`` of a destination URL, as the API's ``host``/``path`` filters see it.

    The host keeps an explicit port (``example.com:8080``) and drops user info.

    :raises ValueError: if the URL is not an absolute http(s) URL.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"url must be an absolute http(s) URL, got {url!r}")
    return host, parts.path


class StoredMessage(NamedTuple):
    """The columns a message keeps in both the ``messages`` and the ``dlq`` table, in
    :data:`STORED_COLUMNS` order (labels comma-joined, ``None`` when there is none)."""

    message_id: str
    url: str
    topic_name: str | None
    queue_name: str | None
    labels: str | None
    flow_control_key: str | None
    schedule_id: str | None
    caller_ip: str | None
    method: str
    body: str | None
    created_at: int
    max_retries: int | None
    header: str | None
    upstash_headers: str | None

    @classmethod
    def of(cls, m: NewMessage) -> StoredMessage:
        """The stored columns of ``m``."""
        labels = ",".join(m.labels) if m.labels else None
        return cls(
            m.message_id,
            m.url,
            m.topic_name,
            m.queue_name,
            labels,
            m.flow_control_key,
            m.schedule_id,
            m.caller_ip,
            m.method,
            m.body,
            m.created_at,
            m.max_retries,
            m.header,
            m.upstash_headers,
        )

    def to_message(self, host: str | None = None, path: str | None = None) -> NewMessage:
        """The message back; ``host`` and ``path`` are read from the URL when the table does not keep them."""
        if host is None or path is None:
            host, path = split_url(self.url)
        labels = tuple(self.labels.split(",")) if self.labels else ()
        return NewMessage(
            message_id=self.message_id,
            url=self.url,
            host=host,
            path=path,
            topic_name=self.topic_name,
            queue_name=self.queue_name,
            labels=labels,
            flow_control_key=self.flow_control_key,
            schedule_id=self.schedule_id,
            caller_ip=self.caller_ip,
            method=self.method,
            body=self.body,
            created_at=self.created_at,
            max_retries=self.max_retries,
            header=self.header,
            upstash_headers=self.upstash_headers,
        )

    def api_dict(
        self, required: Mapping[str, Any] | None = None, optional: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The API's ``Message`` fields (``maxRetries`` defaults to :data:`DEFAULT_MAX_RETRIES`).

        :param required: more fields, set after ``maxRetries``.
        :param optional: more fields, set after ``body`` when not ``None``.
        """
        out: dict[str, Any] = {
            "messageId": self.message_id,
            "url": self.url,
            "method": self.method,
            "createdAt": self.created_at,
            "maxRetries": DEFAULT_MAX_RETRIES if self.max_retries is None else self.max_retries,
            **(required or {}),
        }
        fields = {
            "topicName": self.topic_name,
            "queueName": self.queue_name,
            "flowControlKey": self.flow_control_key,
            "scheduleId": self.schedule_id,
            "callerIP": self.caller_ip,
            "body": self.body,
            **(optional or {}),
        }
        out.update({key: value for key, value in fields.items() if value is not None})
        if self.labels:
            labels = self.labels.split(",")
            out["labels"] = labels
            out["label"] = labels[0]
        if self.header:
            out["header"] = json.loads(self.header)
        return out


#: The columns of :class:`StoredMessage`, for ``SELECT`` and ``INSERT`` statements.
STORED_COLUMNS = ", ".join(StoredMessage._fields)


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


def _labels_of(data: Mapping[str, Any]) -> tuple[str, ...]:
    raw: list[str] = []
    label = data.get("label")
    if label is not None:
        if not isinstance(label, str):
            raise ValueError(f"label must be a string, got {label!r}")
        raw.append(label)
    labels = data.get("labels")
    if labels is not None:
        if isinstance(labels, str) or not all(isinstance(item, str) for item in labels):
            raise ValueError(f"labels must be a list of strings, got {labels!r}")
        raw.extend(labels)
    seen: dict[str, None] = {}
    for item in raw:
        for part in item.split(","):
            if part.strip():
                seen.setdefault(part.strip(), None)
    return tuple(seen)


def message_from_dict(data: Mapping[str, Any], *, default_created_at: int | None = None) -> NewMessage:
    """Validate a message dict (the shape of ``add_messages`` and ``POST /_emulator/messages``).

    Keys: ``url`` (required), ``label`` (string, may be comma-separated) and/or ``labels``
    (list), ``topicName``, ``queueName``, ``flowControlKey``, ``scheduleId``, ``callerIp``
    (or ``callerIP``), ``createdAt`` (Unix ms, default now), ``messageId`` (default random),
    ``method``, ``body``.

    :raises ValueError: on an unknown key or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a message must be an object, got {data!r}")
    unknown = set(data) - MESSAGE_KEYS
    if unknown:
        raise ValueError(f"unknown message keys: {sorted(unknown)}")
    url = data.get("url")
    if not isinstance(url, str) or not url:
        raise ValueError("url is required and must be a string")
    host, path = split_url(url)
    created_at = data.get("createdAt")
    if created_at is None:
        created_at = now_ms() if default_created_at is None else default_created_at
    check_timestamp("createdAt", created_at)
    caller_ip = _opt_str(data, "callerIp") or _opt_str(data, "callerIP")
    max_retries = data.get("maxRetries")
    if max_retries is not None and (isinstance(max_retries, bool) or not isinstance(max_retries, int)):
        raise ValueError(f"maxRetries must be an integer, got {max_retries!r}")
    if max_retries is not None and not 0 <= max_retries <= 1000:
        raise ValueError(f"maxRetries must be between 0 and 1000, got {max_retries}")
    header = _json_object(data, "header", list)
    upstash_headers = _json_object(data, "upstashHeaders", str)
    return NewMessage(
        message_id=_opt_str(data, "messageId") or new_message_id(),
        url=url,
        host=host,
        path=path,
        topic_name=_opt_str(data, "topicName"),
        queue_name=_opt_str(data, "queueName"),
        labels=_labels_of(data),
        flow_control_key=_opt_str(data, "flowControlKey"),
        schedule_id=_opt_str(data, "scheduleId"),
        caller_ip=caller_ip,
        method=_opt_str(data, "method") or "POST",
        body=_opt_str(data, "body"),
        created_at=created_at,
        max_retries=max_retries,
        header=header,
        upstash_headers=upstash_headers,
    )


def _json_object(data: Mapping[str, Any], key: str, value_type: type) -> str | None:
    """``data[key]`` (an object of string keys and ``value_type`` values) as JSON text, or ``None``."""
    value = data.get(key)
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, value_type) for k, v in value.items()
    ):
        raise ValueError(f"{key} must be an object of {value_type.__name__} values, got {value!r}")
    return json.dumps(dict(value))


def check_timestamp(name: str, value: object) -> int:
    """``value`` if it is an integer Unix-ms timestamp SQLite can store (``0`` to 2**63 - 1).

    :raises ValueError: naming ``name``, for a non-integer (``bool`` and ``float`` included) or
        a value out of that range (e.g. ``1e30`` or ``10**30``).
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer (Unix ms), got {value!r}")
    if not 0 <= value <= INT64_MAX:
        raise ValueError(f"{name} must be between 0 and {INT64_MAX} (Unix ms), got {value}")
    return value


@dataclass(frozen=True)
class CancelResult:
    """Outcome of :meth:`MessageStore.bulk_cancel`.

    :param cancelled: number of messages cancelled.
    :param selected: number of messages the request selected (equal to ``cancelled``
        unless a partial failure was emulated).
    :param failed_message_id: the message the emulated failure stopped at, or ``None``.
    """

    cancelled: int
    selected: int
    failed_message_id: str | None = None


#: A selected message: ``(created_at, id, queue_name)``.
Row = tuple[int, int, str | None]

#: What the store reads of a message: row id, state, location, then :class:`StoredMessage`.
_COLUMNS = f"id, held, cancelled_at, host, path, {STORED_COLUMNS}"


class MessageStore:
    """Thread-safe SQLite store of held and cancelled messages.

    :param db: ``":memory:"`` (default) or a file path; a file keeps the state across restarts.
    """

    def __init__(self, db: str = ":memory:") -> None:
        self.db = db
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA synchronous = OFF" if db == ":memory:" else "PRAGMA synchronous = NORMAL")
        if db != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA temp_store = MEMORY")
        self._conn.execute("PRAGMA cache_size = -262144")  # 256 MiB page cache
        self._conn.execute("PRAGMA threads = 2")  # let CREATE INDEX sort on a second core
        self._conn.executescript(_TABLES)
        present = {row[1] for row in self._conn.execute("PRAGMA table_info(messages)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in present:
                self._conn.execute(f"ALTER TABLE messages ADD COLUMN {column} {kind}")
        MESSAGES.create(self._conn)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (further calls fail)."""
        with self._lock:
            self._conn.close()

    def reset(self) -> None:
        """Delete every message and queue."""
        with self._lock, self.transaction():
            self._conn.execute("DELETE FROM message_labels")
            self._conn.execute("DELETE FROM messages")
            self._conn.execute("DELETE FROM queues")

    # -- for the sibling stores (bulk actions, DLQ) that share this connection ------------

    @property
    def lock(self) -> threading.RLock:
        """The re-entrant lock that serialises every use of :attr:`connection`."""
        return self._lock

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (autocommit; use under :attr:`lock`, with :meth:`transaction`)."""
        return self._conn

    def transaction(self) -> _Transaction:
        """``with store.transaction():`` ``BEGIN`` ... ``COMMIT`` (``ROLLBACK`` on error); hold :attr:`lock`."""
        return _Transaction(self._conn)

    # -- inserting -----------------------------------------------------------------------

    def add_messages(self, messages: Iterable[Mapping[str, Any] | NewMessage]) -> list[str]:
        """Insert messages directly (held), in one transaction.

        :param messages: message dicts (see :func:`message_from_dict`) or :class:`NewMessage`.
        :return: their message ids, in order.
        :raises ValueError: on an invalid dict or a message id that already exists.
        """
        batch = [m if isinstance(m, NewMessage) else message_from_dict(m) for m in messages]
        self.insert(batch)
        return [m.message_id for m in batch]

    def insert(self, batch: Sequence[NewMessage]) -> None:
        """Insert already validated messages in one transaction (executemany).

        :raises ValueError: if a message id already exists (nothing is inserted then).
        """
        if not batch:
            return
        with self._lock:
            try:
                with self.transaction():
                    self.insert_rows(batch)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"cannot insert messages: {exc}") from exc

    def insert_rows(self, batch: Sequence[NewMessage]) -> None:
        """Insert validated messages; the caller holds :attr:`lock` and has opened a :meth:`transaction`."""
        first_id = MESSAGES.last_id(self._conn) + 1
        message_rows = []
        label_rows = []
        queues: Counter[str] = Counter()
        for offset, m in enumerate(batch):
            mid = first_id + offset
            message_rows.append((mid, m.host, m.path, *StoredMessage.of(m)))
            for label in m.labels:
                label_rows.append((label, m.created_at, mid))
            if m.queue_name is not None:
                queues[m.queue_name] += 1
        stamp = now_ms()
        self._conn.executemany(
            f"INSERT INTO messages (id, host, path, {STORED_COLUMNS}) VALUES ({', '.join('?' * 17)})", message_rows
        )
        self._conn.executemany("INSERT INTO message_labels (label, created_at, mid) VALUES (?, ?, ?)", label_rows)
        self._conn.executemany(
            "INSERT INTO queues (name, created_at, updated_at, lag) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET lag = lag + excluded.lag, updated_at = excluded.updated_at",
            [(name, stamp, stamp, n) for name, n in queues.items()],
        )

    def seed(self, n: int, seed: int = 0, *, now: int | None = None, chunk: int = 50_000) -> int:
        """Insert ``n`` synthetic messages (see :mod:`qstash_emulator.seeding`), atomically.

        When ``n >= BULK_LOAD_THRESHOLD`` and ``n`` is at least the number of stored rows, the
        secondary indexes are dropped and rebuilt inside the same transaction, which is several
        times faster than updating them row by row.

        :param n: how many messages.
        :param seed: seed of the reproducible distribution.
        :param now: reference time in Unix ms for ``createdAt`` (default now).
        :param chunk: messages generated and inserted per ``executemany``.
        :return: ``n``.
        :raises ValueError: if a generated id collides with a stored one (nothing is inserted then).
        """
        with self._lock:
            salt = MESSAGES.last_id(self._conn)
            messages = generate_messages(n, seed, now=now, id_salt=salt)
            try:
                with self.transaction():
                    MESSAGES.load(self._conn, messages, self.insert_rows, count=n, stored=salt, chunk=chunk)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"cannot seed messages: {exc}") from exc
        return n

    # -- reading -------------------------------------------------------------------------

    def get(self, message_id: str, *, include_cancelled: bool = False) -> dict[str, Any] | None:
        """One message as an API ``Message`` dict, or ``None`` if unknown (or cancelled)."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM messages WHERE message_id = ?", (message_id,)).fetchone()
        if row is None or (not row[1] and not include_cancelled):
            return None
        return _row_to_dict(row, admin=include_cancelled)

    def messages(self, state: str = "held", limit: int | None = None) -> list[dict[str, Any]]:
        """Messages in insertion order, as admin dicts (API fields plus ``state``, ``cancelledAt``).

        :param state: ``"held"``, ``"cancelled"`` or ``"all"``.
        :param limit: at most this many, or all.
        :raises ValueError: for an unknown state.
        """
        statement = limited(f"SELECT {_COLUMNS} FROM messages {_state_clause(state)} ORDER BY id", (), limit)
        with self._lock:
            rows = self._conn.execute(*statement).fetchall()
        return [_row_to_dict(row, admin=True) for row in rows]

    def message_ids(self, state: str = "held") -> set[str]:
        """The ids of the messages in ``state`` (``"held"``, ``"cancelled"`` or ``"all"``)."""
        where = _state_clause(state)
        with self._lock:
            return {row[0] for row in self._conn.execute(f"SELECT message_id FROM messages {where}")}

    def admin_select(self, selection: AdminFilter, limit: int | None = None) -> list[dict[str, Any]]:
        """The messages ``selection`` picks, in insertion order, as admin dicts (as :meth:`messages`)."""
        where, params = _admin_where(selection)
        statement = limited(f"SELECT {_COLUMNS} FROM messages {where} ORDER BY id", params, limit)
        with self._lock:
            rows = self._conn.execute(*statement).fetchall()
        return [_row_to_dict(row, admin=True) for row in rows]

    def admin_ids(self, selection: AdminFilter) -> list[str]:
        """The ids of the messages ``selection`` picks, sorted."""
        where, params = _admin_where(selection)
        with self._lock:
            rows = self._conn.execute(f"SELECT message_id FROM messages {where} ORDER BY message_id", params)
            return [row[0] for row in rows]

    def admin_counts(self, by: str, selection: AdminFilter) -> list[dict[str, Any]]:
        """How many of the messages ``selection`` picks are held and cancelled, per label, queue or state.

        A message with two labels counts under each; one without a label (or queue) under ``None``. Rows
        come sorted by key, ``None`` last.

        :param by: ``"label"``, ``"queue"`` or ``"state"``.
        :raises ValueError: for another ``by``.
        """
        if by not in COUNT_BY:
            raise ValueError(f"by must be one of {', '.join(COUNT_BY)}, got {by!r}")
        where, params = _admin_where(selection)
        with self._lock:
            rows = self._conn.execute(f"SELECT labels, queue_name, held FROM messages {where}", params).fetchall()
        counts: dict[str | None, Counter[str]] = {}
        for labels, queue_name, held in rows:
            if by == "label":
                keys: list[str | None] = list(labels.split(",")) if labels else [None]
            elif by == "queue":
                keys = [queue_name]
            else:
                keys = ["held" if held else "cancelled"]
            for key in keys:
                counts.setdefault(key, Counter())["held" if held else "cancelled"] += 1
        ordered = sorted(counts, key=lambda key: (key is None, key or ""))
        return [
            {by: key, "held": counts[key]["held"], "cancelled": counts[key]["cancelled"], "total": counts[key].total()}
            for key in ordered
        ]

    def counts(self) -> dict[str, int]:
        """``{"held": n, "cancelled": m}``."""
        with self._lock:
            held = self._conn.execute("SELECT count(*) FROM messages WHERE held = 1").fetchone()[0]
            total = self._conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        return {"held": int(held), "cancelled": int(total) - int(held)}

    def queues(self) -> list[dict[str, Any]]:
        """Known queues in the API's ``Queue`` shape (``lag`` = held messages in the queue)."""
        with self._lock:
            rows = self._conn.execute("SELECT name, created_at, updated_at, lag FROM queues ORDER BY name").fetchall()
        return [
            {
                "name": name,
                "createdAt": created_at,
                "updatedAt": updated_at,
                "parallelism": 1,
                "paused": False,
                "lag": lag,
            }
            for name, created_at, updated_at, lag in rows
        ]

    # -- cancelling ----------------------------------------------------------------------

    def cancel_one(self, message_id: str) -> bool:
        """Cancel one held message; ``False`` if it is unknown or already cancelled."""
        with self._lock:
            row = self._conn.execute(
                "SELECT created_at, id, queue_name FROM messages WHERE message_id = ? AND held = 1",
                (message_id,),
            ).fetchone()
            if row is None:
                return False
            with self.transaction():
                self.cancel_rows([row])
            return True

    def bulk_cancel(self, query: BulkCancelQuery, *, partial_fraction: float | None = None) -> CancelResult:
        """Cancel the held messages selected by ``query``, oldest first.

        :param query: the parsed request.
        :param partial_fraction: if not ``None`` (a number in ``[0, 1)``) and the selection is
            not empty, emulate a failure part-way: only the first
            ``floor(partial_fraction * selected)`` messages (strictly fewer than selected)
            are cancelled and :attr:`CancelResult.failed_message_id` names the next one.
        :return: what was cancelled.
        """
        with self._lock:
            rows = self.select(query)
            failed: str | None = None
            to_cancel = rows
            if partial_fraction is not None and rows:
                keep = min(int(partial_fraction * len(rows)), len(rows) - 1)
                to_cancel = rows[:keep]
                failed = self._conn.execute(
                    "SELECT message_id FROM messages WHERE id = ?", (rows[keep][1],)
                ).fetchone()[0]
            if to_cancel:
                with self.transaction():
                    self.cancel_rows(to_cancel)
            return CancelResult(cancelled=len(to_cancel), selected=len(rows), failed_message_id=failed)

    def cancel_rows(self, rows: Sequence[Row]) -> None:
        """Cancel held messages given as ``(created_at, id, queue_name)`` rows.

        The caller holds :attr:`lock` and has opened a :meth:`transaction`.
        """
        ids = json_list(row[1] for row in rows)
        stamp = now_ms()
        self._conn.execute(
            "UPDATE messages SET held = 0, cancelled_at = ? WHERE id IN (SELECT value FROM json_each(?))", (stamp, ids)
        )
        self._release(ids, [row[2] for row in rows], stamp)

    def take_held(self, message_ids: Sequence[str]) -> list[NewMessage]:
        """Remove held messages from the store (they leave QStash, e.g. for the DLQ) and return them.

        Unknown and cancelled ids are skipped. The caller holds :attr:`lock` and has opened a
        :meth:`transaction`.
        """
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE message_id IN (SELECT value FROM json_each(?)) "
            "AND held = 1 ORDER BY id",
            (json_list(message_ids),),
        ).fetchall()
        if not rows:
            return []
        messages = [StoredMessage._make(row[5:]).to_message(row[3], row[4]) for row in rows]
        ids = json_list(row[0] for row in rows)
        self._conn.execute("DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))", (ids,))
        self._release(ids, [m.queue_name for m in messages], now_ms())
        return messages

    def _release(self, ids: str, queue_names: Iterable[str | None], stamp: int) -> None:
        """Messages ``ids`` (a JSON list) in these queues leave the held set at ``stamp``: their label
        rows go, and each takes one off its queue's lag."""
        self._conn.execute("DELETE FROM message_labels WHERE mid IN (SELECT value FROM json_each(?))", (ids,))
        queues = Counter(name for name in queue_names if name is not None)
        self._conn.executemany(
            "UPDATE queues SET lag = max(lag - ?, 0), updated_at = ? WHERE name = ?",
            [(n, stamp, name) for name, n in queues.items()],
        )

    def select(self, query: BulkCancelQuery) -> list[Row]:
        """The held messages ``query`` would cancel, as ``(created_at, id, queue_name)``, oldest first."""
        with self._lock:
            if query.message_ids:
                rows = self._conn.execute(*_by_ids(query)).fetchall()
            else:
                rows = MESSAGES.select(self._conn, _scan(query))
        return cast("list[Row]", rows)

    def explain(self, query: BulkCancelQuery) -> list[str]:
        """SQLite's query plans of the statements :meth:`select` would run (for benchmarks/tests)."""
        statements = [_by_ids(query)] if query.message_ids else MESSAGES.statements(_scan(query))
        with self._lock:
            return explain(self._conn, statements)


class _Transaction:
    """``BEGIN``/``COMMIT`` (``ROLLBACK`` on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _scan(query: BulkCancelQuery) -> Scan:
    """The filter selection of ``query``: oldest first, at most ``count``."""
    return Scan(query.values, from_date=query.from_date, to_date=query.to_date, limit=query.count)


def _by_ids(query: BulkCancelQuery) -> Statement:
    """The selection of ``query.message_ids``: held ones, oldest first, at most ``count``."""
    return limited(
        "SELECT created_at, id, queue_name FROM messages "
        "WHERE message_id IN (SELECT value FROM json_each(?)) AND held = 1 ORDER BY created_at, id",
        [json_list(query.message_ids)],
        query.count,
    )


def _admin_where(selection: AdminFilter) -> Statement:
    """The ``WHERE`` clause (possibly empty) and parameters of an admin listing's ``selection``."""
    clauses: list[str] = []
    params: list[Any] = []
    if selection.state != "all":
        clauses.append("held = ?")
        params.append(1 if selection.state == "held" else 0)
    if selection.labels:
        # labels are stored comma-joined and never contain a comma
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(?) AS wanted "
            "WHERE instr(',' || labels || ',', ',' || wanted.value || ',') > 0)"
        )
        params.append(json_list(selection.labels))
    if selection.queues:
        clauses.append("queue_name IN (SELECT value FROM json_each(?))")
        params.append(json_list(selection.queues))
    if selection.from_ms is not None:
        clauses.append("created_at >= ?")
        params.append(selection.from_ms)
    if selection.to_ms is not None:
        clauses.append("created_at <= ?")
        params.append(selection.to_ms)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _state_clause(state: str) -> str:
    if state == "held":
        return "WHERE held = 1"
    if state == "cancelled":
        return "WHERE held = 0"
    if state == "all":
        return ""
    raise ValueError(f"state must be one of {STATES}, got {state!r}")


def _row_to_dict(row: Sequence[Any], *, admin: bool) -> dict[str, Any]:
    """A ``SELECT {_COLUMNS}`` row as the API's ``Message`` (``admin``: plus where it goes and its state)."""
    _id, held, cancelled_at, host, path = row[:5]
    stored = StoredMessage._make(row[5:])
    out = stored.api_dict()
    if admin:
        out["host"] = host
        out["path"] = path
        out["state"] = "held" if held else "cancelled"
        out["cancelledAt"] = cancelled_at
        out["upstashHeaders"] = json.loads(stored.upstash_headers) if stored.upstash_headers else {}
    return out


__all__ = [
    "BULK_LOAD_THRESHOLD",
    "DEFAULT_MAX_RETRIES",
    "FILTER_COLUMNS",
    "MESSAGES",
    "STATES",
    "STORED_COLUMNS",
    "CancelResult",
    "MessageStore",
    "NewMessage",
    "Row",
    "StoredMessage",
    "check_timestamp",
    "message_from_dict",
    "new_message_id",
    "now_ms",
    "split_url",
]
