"""The dead-letter queue (DLQ) of the emulator: messages whose delivery failed for good.

The emulator never delivers, so entries arrive two ways: :meth:`DeadLetterStore.fail_messages`
moves held messages there as if they had exhausted their retries (they leave the message table,
as a delivered-or-failed message leaves QStash), and :meth:`DeadLetterStore.add` /
:meth:`DeadLetterStore.seed` put entries there directly for tests and benchmarks.

Storage and paging, so that a 100-entry page stays in milliseconds at a million entries:

* table ``dlq`` (one row per entry, ``id`` increasing with insertion) and a side table
  ``dlq_labels(label, created_at, id)`` for the label filter;
* one index ``(column, created_at)`` per filter column (partial: ``WHERE column IS NOT NULL``)
  and ``(created_at)`` for requests without a column filter; SQLite appends the row id to each,
  so every index yields entries in ``(createdAt, id)`` order;
* a request picks one *driving* filter (most selective kind first), scans its index once per
  value in page order with the other filters as residual conditions and the cursor as a range
  start, merges the per-value scans and keeps ``count + 1`` entries: the extra one says whether
  a cursor comes back (the selection of :mod:`qstash_emulator.tables`, shared with the
  message store).

Order: newest first (``latestFirst``, the SDKs' default) unless ``order=earliestFirst``. A
cursor is ``"<createdAt>.<id>"`` of the last entry of a page; the next page starts strictly
after it. Deleting or retrying a page removes its entries, so the next request finds the same
entries with or without the cursor. No cursor back means there is nothing more.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qstash_emulator.headers import UpstashHeaders
from qstash_emulator.query import DlqQuery, dlq_cursor
from qstash_emulator.records import NewMessage, now_ms
from qstash_emulator.store import (
    STORED_COLUMNS,
    MessageStore,
    StoredMessage,
    message_from_dict,
    new_message_id,
)
from qstash_emulator.tables import FilteredTable, Scan, explain, json_list, limited

#: API filter name -> column of ``dlq``; ``label`` uses the side table.
DLQ_FILTER_COLUMNS: Mapping[str, str] = {
    "messageId": "message_id",
    "url": "url",
    "topicName": "topic_name",
    "scheduleId": "schedule_id",
    "queueName": "queue_name",
    "callerIp": "caller_ip",
    "flowControlKey": "flow_control_key",
    "responseStatus": "response_status",
}

#: Which present filter drives the index scan: roughly most selective kind first.
DLQ_DRIVING_ORDER: tuple[str, ...] = (
    "messageId",
    "url",
    "scheduleId",
    "flowControlKey",
    "callerIp",
    "label",
    "topicName",
    "queueName",
    "responseStatus",
)

#: Keys accepted by :meth:`DeadLetterStore.add` on top of the message keys.
DLQ_ENTRY_KEYS: frozenset[str] = frozenset({"dlqId", "responseStatus", "responseBody", "responseHeader"})

#: Response statuses of generated entries (:meth:`DeadLetterStore.seed`), drawn uniformly.
SEED_STATUSES: tuple[int, ...] = (500, 502, 503, 504, 404, 429, 400)

_TABLES = """
CREATE TABLE IF NOT EXISTS dlq (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dlq_id TEXT NOT NULL UNIQUE,
    message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    topic_name TEXT,
    queue_name TEXT,
    labels TEXT,
    flow_control_key TEXT,
    schedule_id TEXT,
    caller_ip TEXT,
    method TEXT NOT NULL,
    body TEXT,
    max_retries INTEGER,
    header TEXT,
    upstash_headers TEXT,
    created_at INTEGER NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT,
    response_header TEXT
);
"""

#: The ``dlq`` table as the DLQ routes select from it (every entry, by page).
DLQ_TABLE = FilteredTable(
    name="dlq",
    alias="d",
    labels="dlq_labels",
    labels_key="id",
    labels_index="ix_dlq_labels_id",
    columns=DLQ_FILTER_COLUMNS,
    driving_order=DLQ_DRIVING_ORDER,
    not_null=frozenset({"url", "message_id", "response_status"}),
    index_prefix="ix_dlq_",
)

#: What the DLQ reads of an entry: row id, the entry's own fields, then :class:`StoredMessage`.
_COLUMNS = f"id, dlq_id, response_status, response_body, response_header, {STORED_COLUMNS}"

_Key = tuple[int, int]  # (created_at, id)


class DlqIdsNotFound(LookupError):
    """Some of the ``dlqIds`` of a retry are not in the DLQ (answered 404; nothing was retried).

    :param missing: the ids not found, in request order.
    """

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(f"not found in the DLQ: {', '.join(missing)}")
        self.missing = tuple(missing)


@dataclass(frozen=True)
class DlqEntry:
    """One DLQ entry to insert (validated).

    :param message: the message that failed.
    :param response_status: HTTP status of its last delivery attempt.
    :param response_body: body of that answer, if any.
    :param response_header: headers of that answer (JSON text), if any.
    :param dlq_id: the entry's id (default random).
    """

    message: NewMessage
    response_status: int
    response_body: str | None = None
    response_header: str | None = None
    dlq_id: str | None = None


@dataclass(frozen=True)
class DlqPage:
    """Entries of one page and the cursor of the next (``None``: nothing more)."""

    keys: list[_Key]
    cursor: str | None


def new_dlq_id() -> str:
    """A fresh random DLQ id."""
    return "dlq_" + uuid.uuid4().hex


def entry_from_dict(data: Mapping[str, Any]) -> DlqEntry:
    """Validate an admin DLQ entry: a message dict plus ``responseStatus`` (required, integer 100..599),
    ``responseBody`` (string), ``responseHeader`` (name -> list of strings) and ``dlqId``.

    :raises ValueError: on a missing or invalid value.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a DLQ entry must be an object, got {data!r}")
    status = data.get("responseStatus")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"responseStatus is required and must be an HTTP status (100..599), got {status!r}")
    body = data.get("responseBody")
    if body is not None and not isinstance(body, str):
        raise ValueError(f"responseBody must be a string, got {body!r}")
    header = data.get("responseHeader")
    if header is not None and not (
        isinstance(header, Mapping)
        and all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(i, str) for i in v) for k, v in header.items()
        )
    ):
        raise ValueError(f"responseHeader must be an object of string lists, got {header!r}")
    dlq_id = data.get("dlqId")
    if dlq_id is not None and (not isinstance(dlq_id, str) or not dlq_id.strip()):
        raise ValueError(f"dlqId must be a non-empty string, got {dlq_id!r}")
    message = message_from_dict({k: v for k, v in data.items() if k not in DLQ_ENTRY_KEYS})
    return DlqEntry(message, status, body, json.dumps(header) if header else None, dlq_id)


class DeadLetterStore:
    """The DLQ, in the message store's SQLite database (same connection, same lock).

    :param store: the message store (retried entries become its messages).
    """

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        with store.lock:
            store.connection.executescript(_TABLES)
            DLQ_TABLE.create(store.connection)

    # -- lifecycle and admin -----------------------------------------------------------------

    def reset(self) -> None:
        """Empty the DLQ."""
        with self.store.lock, self.store.transaction():
            self.store.connection.execute("DELETE FROM dlq_labels")
            self.store.connection.execute("DELETE FROM dlq")

    def count(self) -> int:
        """How many entries the DLQ holds."""
        with self.store.lock:
            return int(self.store.connection.execute("SELECT count(*) FROM dlq").fetchone()[0])

    def add(self, entries: Iterable[Mapping[str, Any] | DlqEntry]) -> list[str]:
        """Insert entries (see :func:`entry_from_dict`) in one transaction; returns their DLQ ids.

        :raises ValueError: on an invalid entry or a DLQ id that already exists (nothing is inserted then).
        """
        batch = [e if isinstance(e, DlqEntry) else entry_from_dict(e) for e in entries]
        with self.store.lock:
            try:
                with self.store.transaction():
                    return self._insert(batch)
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"cannot insert DLQ entries: {exc}") from exc

    def fail_messages(
        self, message_ids: Sequence[str], response_status: int, response_body: str | None = None
    ) -> list[str]:
        """Move held messages to the DLQ as if their last delivery attempt got ``response_status``.

        Unknown and cancelled ids are skipped. Returns the new DLQ ids, in the messages' order.
        """
        if isinstance(response_status, bool) or not isinstance(response_status, int):
            raise ValueError(f"responseStatus must be an integer, got {response_status!r}")
        if not 100 <= response_status <= 599:
            raise ValueError(f"responseStatus must be an HTTP status (100..599), got {response_status}")
        with self.store.lock, self.store.transaction():
            taken = self.store.take_held(message_ids)
            return self._insert([DlqEntry(m, response_status, response_body) for m in taken])

    def seed(self, n: int, seed: int = 0, *, now: int | None = None, chunk: int = 50_000) -> int:
        """Insert ``n`` generated entries (the messages of :mod:`~qstash_emulator.seeding`, with a
        ``responseStatus`` drawn from :data:`SEED_STATUSES`), atomically; returns ``n``.

        Large seeds drop and rebuild the indexes in the same transaction, as the message store does.
        """
        import random

        from qstash_emulator.seeding import generate_messages

        conn = self.store.connection
        with self.store.lock:
            stored = DLQ_TABLE.last_id(conn)
            statuses = random.Random(f"dlq-statuses:{seed}")
            ids = random.Random(f"dlq-ids:{seed}:{stored}")
            entries = (
                DlqEntry(
                    message,
                    SEED_STATUSES[int(statuses.random() * len(SEED_STATUSES))],
                    dlq_id=f"dlq_{ids.getrandbits(128):032x}",
                )
                for message in generate_messages(n, seed, now=now, id_salt=stored + 1_000_003)
            )
            with self.store.transaction():
                DLQ_TABLE.load(conn, entries, self._insert, count=n, stored=stored, chunk=chunk)
        return n

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries in insertion order, as API dicts (at most ``limit``)."""
        statement = limited(f"SELECT {_COLUMNS} FROM dlq ORDER BY id", (), limit)
        with self.store.lock:
            rows = self.store.connection.execute(*statement).fetchall()
        return [_row_to_dict(row) for row in rows]

    def _insert(self, batch: Sequence[DlqEntry]) -> list[str]:
        conn = self.store.connection
        first = DLQ_TABLE.last_id(conn) + 1
        rows = []
        label_rows: list[tuple[str, int, int]] = []
        dlq_ids = []
        for offset, entry in enumerate(batch):
            m = entry.message
            row_id = first + offset
            dlq_id = entry.dlq_id or new_dlq_id()
            dlq_ids.append(dlq_id)
            own = (row_id, dlq_id, entry.response_status, entry.response_body, entry.response_header)
            rows.append((*own, *StoredMessage.of(m)))
            label_rows.extend((label, m.created_at, row_id) for label in m.labels)
        conn.executemany(f"INSERT INTO dlq ({_COLUMNS}) VALUES ({', '.join('?' * 19)})", rows)
        conn.executemany("INSERT INTO dlq_labels (label, created_at, id) VALUES (?, ?, ?)", label_rows)
        return dlq_ids

    # -- selecting --------------------------------------------------------------------------------

    def select(self, query: DlqQuery) -> DlqPage:
        """The entries of the page ``query`` asks for (by filters, ``count`` and ``cursor``)."""
        with self.store.lock:
            # one entry more than the page: whether there is a next page
            rows = DLQ_TABLE.select(self.store.connection, _scan(query))
        page = [(int(created_at), int(row_id)) for created_at, row_id in rows[: query.count]]
        cursor = dlq_cursor(*page[-1]) if len(rows) > query.count else None
        return DlqPage(page, cursor)

    def explain(self, query: DlqQuery) -> list[str]:
        """SQLite's plans of the statements :meth:`select` runs (for tests and benchmarks)."""
        with self.store.lock:
            return explain(self.store.connection, DLQ_TABLE.statements(_scan(query)))

    def _ids_of(self, dlq_ids: Sequence[str]) -> dict[str, int]:
        rows = self.store.connection.execute(
            "SELECT dlq_id, id FROM dlq WHERE dlq_id IN (SELECT value FROM json_each(?))", (json_list(dlq_ids),)
        ).fetchall()
        return {str(a): int(b) for a, b in rows}

    # -- API operations -------------------------------------------------------------------------------

    def list_page(self, query: DlqQuery) -> tuple[list[dict[str, Any]], str | None]:
        """``GET /v2/dlq``: one page of entries (API dicts) and the next cursor."""
        with self.store.lock:
            page = self.select(query)
            return [_row_to_dict(row) for row in self._rows([key[1] for key in page.keys])], page.cursor

    def get(self, dlq_id: str) -> dict[str, Any] | None:
        """One entry (API dict), ``None`` if not in the DLQ."""
        with self.store.lock:
            row = self.store.connection.execute(f"SELECT {_COLUMNS} FROM dlq WHERE dlq_id = ?", (dlq_id,)).fetchone()
        return None if row is None else _row_to_dict(row)

    def delete(self, query: DlqQuery) -> tuple[int, str | None]:
        """``DELETE /v2/dlq``: by ``dlqIds`` (all found ones, no cursor) or one page of the filter."""
        with self.store.lock:
            if query.dlq_ids:
                ids, cursor = list(self._ids_of(query.dlq_ids).values()), None
            else:
                ids, cursor = self._page_ids(query)
            with self.store.transaction():
                self._remove(ids)
            return len(ids), cursor

    def delete_one(self, dlq_id: str) -> bool:
        """``DELETE /v2/dlq/{dlqId}``; ``False`` if it is not in the DLQ."""
        with self.store.lock:
            found = self._ids_of([dlq_id])
            with self.store.transaction():
                self._remove(list(found.values()))
        return bool(found)

    def retry(self, query: DlqQuery, headers: UpstashHeaders) -> tuple[list[str], str | None]:
        """``POST /v2/dlq/retry``: re-enqueue the selected entries as new messages and remove them.

        By ``dlqIds``: all of them, or, if some are missing, none (:class:`DlqIdsNotFound`; the
        spec only says "404 when some messages were not found": doing nothing then is the reading
        that lets a client retry the rest without retrying anything twice). By filter: one page.

        :return: the new message ids, in page order, and the next cursor.
        """
        with self.store.lock:
            if query.dlq_ids:
                found = self._ids_of(query.dlq_ids)
                missing = [dlq_id for dlq_id in query.dlq_ids if dlq_id not in found]
                if missing:
                    raise DlqIdsNotFound(missing)
                ids, cursor = [found[dlq_id] for dlq_id in query.dlq_ids], None
            else:
                ids, cursor = self._page_ids(query)
            return self._retry(ids, headers), cursor

    def retry_one(self, dlq_id: str, headers: UpstashHeaders) -> str | None:
        """``POST /v2/dlq/retry/{dlqId}``: the new message id, ``None`` if not in the DLQ."""
        with self.store.lock:
            found = self._ids_of([dlq_id])
            if not found:
                return None
            return self._retry(list(found.values()), headers)[0]

    def _page_ids(self, query: DlqQuery) -> tuple[list[int], str | None]:
        """The row ids of the page ``query`` selects, and the next cursor."""
        page = self.select(query)
        return [key[1] for key in page.keys], page.cursor

    def _retry(self, ids: Sequence[int], headers: UpstashHeaders) -> list[str]:
        rows = self._rows(ids)
        stamp = now_ms()
        messages = [headers.apply(_retried_message(row, stamp)) for row in rows]
        with self.store.transaction():
            self.store.insert_rows(messages)
            self._remove([row[0] for row in rows])
        return [m.message_id for m in messages]

    def _remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        text = json_list(ids)
        self.store.connection.execute("DELETE FROM dlq_labels WHERE id IN (SELECT value FROM json_each(?))", (text,))
        self.store.connection.execute("DELETE FROM dlq WHERE id IN (SELECT value FROM json_each(?))", (text,))

    def _rows(self, ids: Sequence[int]) -> list[Any]:
        """The ``SELECT {_COLUMNS}`` rows of these row ids, in their order (ids not in the DLQ skipped)."""
        rows = self.store.connection.execute(
            f"SELECT {_COLUMNS} FROM dlq WHERE id IN (SELECT value FROM json_each(?))", (json_list(ids),)
        ).fetchall()
        by_id = {row[0]: row for row in rows}
        return [by_id[i] for i in ids if i in by_id]


def _scan(query: DlqQuery) -> Scan:
    """The page ``query`` asks for, plus one entry (whether a cursor comes back)."""
    values: dict[str, Sequence[Any]] = dict(query.values)
    if query.response_statuses:
        values["responseStatus"] = query.response_statuses
    return Scan(
        values,
        from_date=query.from_date,
        to_date=query.to_date,
        limit=query.count + 1,
        cursor=query.cursor,
        descending=query.latest_first,
    )


def _retried_message(row: Sequence[Any], created_at: int) -> NewMessage:
    """A new message (new id, created now) with the body, destination and settings of a DLQ entry."""
    message = StoredMessage._make(row[5:]).to_message()
    return message._replace(message_id=new_message_id(), created_at=created_at)


def _row_to_dict(row: Sequence[Any]) -> dict[str, Any]:
    """A ``SELECT {_COLUMNS}`` row as the API's ``DLQMessage`` with its ``dlqId``."""
    _id, dlq_id, response_status, response_body, response_header = row[:5]
    out = {
        "dlqId": dlq_id,
        **StoredMessage._make(row[5:]).api_dict({"responseStatus": response_status}, {"responseBody": response_body}),
    }
    if response_header:
        out["responseHeader"] = json.loads(response_header)
    return out


__all__ = [
    "DLQ_FILTER_COLUMNS",
    "DLQ_TABLE",
    "DeadLetterStore",
    "DlqEntry",
    "DlqIdsNotFound",
    "DlqPage",
    "entry_from_dict",
]
