"""What the message store and the DLQ share about their SQLite tables.

Both keep messages in one table (``messages``, ``dlq``) with a side table of labels
(``message_labels``, ``dlq_labels``: ``(label, created_at, <row id>)`` as primary key) and one
index ``(column, created_at)`` per filter column, so both select the same way, described once
here by a :class:`FilteredTable`:

* the request picks one *driving* filter (the most selective kind first), and the table runs one
  index range scan per value of that filter in ``(created_at, id)`` order, with the other filters,
  the date window and the cursor as residual conditions;
* the per-value scans are merged in that order, each row kept once, up to the limit.

Both also load large generated batches the same way (:meth:`FilteredTable.load`): in one
transaction, dropping the secondary indexes first and rebuilding them afterwards when the batch
dominates what is stored, which is several times faster than updating them row by row.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

#: Loads of at least this many rows drop the secondary indexes and rebuild them afterwards.
BULK_LOAD_THRESHOLD = 50_000

_T = TypeVar("_T")

#: One SQL statement and its parameters.
Statement = tuple[str, list[Any]]


def json_list(values: Iterable[Any]) -> str:
    """``values`` as a JSON array, for ``IN (SELECT value FROM json_each(?))``."""
    return json.dumps(list(values))


def limited(sql: str, params: Sequence[Any], limit: int | None) -> Statement:
    """``sql`` with ``LIMIT ?`` appended (and ``limit`` to its parameters), or as it is for no limit."""
    if limit is None:
        return sql, list(params)
    return sql + " LIMIT ?", [*params, limit]


@dataclass(frozen=True)
class Scan:
    """What a selection asks for.

    :param values: filter name (the API's) -> the values it accepts (OR-ed); filters are AND-ed.
    :param from_date: inclusive lower bound on ``created_at``, or ``None``.
    :param to_date: inclusive upper bound on ``created_at``, or ``None``.
    :param limit: at most this many rows, or all.
    :param cursor: ``(created_at, id)`` the rows must come strictly after (in scan order), or ``None``.
    :param descending: newest first instead of oldest first.
    """

    values: Mapping[str, Sequence[Any]]
    from_date: int | None = None
    to_date: int | None = None
    limit: int | None = None
    cursor: tuple[int, int] | None = None
    descending: bool = False


@dataclass(frozen=True)
class FilteredTable:
    """A table of messages the API filters, with its label side table and its indexes.

    :param name: the table (its owner creates it; it has ``id`` and ``created_at`` columns).
    :param alias: its alias in the statements.
    :param labels: the label side table (alias ``l``; ``l2`` in residual conditions).
    :param labels_key: the side table's column that holds the row's ``id``.
    :param labels_index: the name of the side table's index ``(labels_key, label)``.
    :param columns: API filter name -> column of :attr:`name` (``label`` uses the side table).
    :param driving_order: which present filter drives the scan, most selective kind first.
    :param not_null: the filter columns declared ``NOT NULL`` (the others are indexed only where set).
    :param index_prefix: the index ``(c, created_at)`` of filter column ``c`` is ``index_prefix + c``,
        the index on ``created_at`` alone (a scan without a column filter) ``index_prefix + "created"``.
    :param index_where: the condition of those (partial) indexes, if any (e.g. ``held = 1``).
    :param other_indexes: name -> ``CREATE INDEX`` statement of more secondary indexes, created first.
    :param conditions: conditions every selected row meets (e.g. ``m.held = 1``).
    :param carried: more expressions selected after ``created_at`` and ``id``.
    """

    name: str
    alias: str
    labels: str
    labels_key: str
    labels_index: str
    columns: Mapping[str, str]
    driving_order: tuple[str, ...]
    not_null: frozenset[str]
    index_prefix: str
    index_where: str | None = None
    other_indexes: Mapping[str, str] = field(default_factory=dict)
    conditions: tuple[str, ...] = ()
    carried: tuple[str, ...] = ()

    # -- schema and loading -----------------------------------------------------------------

    @property
    def created_index(self) -> str:
        """The index on ``created_at`` alone."""
        return self.index_prefix + "created"

    @property
    def indexes(self) -> dict[str, str]:
        """Every secondary index, ``name -> CREATE statement``: :attr:`other_indexes`, the one on
        ``created_at``, the side table's, then one per filter column."""
        indexes = dict(self.other_indexes)
        indexes[self.created_index] = self._index(self.created_index, "created_at", None)
        indexes[self.labels_index] = (
            f"CREATE INDEX IF NOT EXISTS {self.labels_index} ON {self.labels} ({self.labels_key}, label)"
        )
        for column in self.columns.values():
            name = self.index_prefix + column
            indexes[name] = self._index(name, f"{column}, created_at", None if column in self.not_null else column)
        return indexes

    def _index(self, name: str, key: str, nullable: str | None) -> str:
        """``CREATE INDEX`` of a (partial) index on :attr:`name`: rows that meet :attr:`index_where` and
        have a ``nullable`` column set."""
        where = [self.index_where] if self.index_where else []
        if nullable is not None:
            where.append(f"{nullable} IS NOT NULL")
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        return f"CREATE INDEX IF NOT EXISTS {name} ON {self.name} ({key}){condition}"

    def create(self, conn: sqlite3.Connection) -> None:
        """Create the label side table and the secondary indexes that do not exist yet."""
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.labels} (label TEXT NOT NULL, created_at INTEGER NOT NULL, "
            f"{self.labels_key} INTEGER NOT NULL, PRIMARY KEY (label, created_at, {self.labels_key})) WITHOUT ROWID"
        )
        self.create_indexes(conn)

    def create_indexes(self, conn: sqlite3.Connection) -> None:
        """Create the secondary indexes that do not exist yet."""
        for create in self.indexes.values():
            conn.execute(create)

    def last_id(self, conn: sqlite3.Connection) -> int:
        """The largest row id (``0`` for an empty table)."""
        return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {self.name}").fetchone()[0])

    def load(
        self,
        conn: sqlite3.Connection,
        items: Iterable[_T],
        insert: Callable[[Sequence[_T]], object],
        *,
        count: int,
        stored: int,
        chunk: int,
    ) -> None:
        """Insert ``count`` generated ``items`` through ``insert``, ``chunk`` at a time.

        When ``count >= BULK_LOAD_THRESHOLD`` and ``count`` is at least the ``stored`` rows, the
        secondary indexes are dropped first and rebuilt at the end (rebuilding costs
        O(stored + count): worth it only when the batch dominates). The caller holds the store's
        lock and has opened a transaction, so that the indexes come back whatever happens.
        """
        rebuild = count >= BULK_LOAD_THRESHOLD and count >= stored
        if rebuild:
            for name in self.indexes:
                conn.execute(f"DROP INDEX IF EXISTS {name}")
        batch: list[_T] = []
        for item in items:
            batch.append(item)
            if len(batch) >= chunk:
                insert(batch)
                batch = []
        if batch:
            insert(batch)
        if rebuild:
            self.create_indexes(conn)

    # -- selecting --------------------------------------------------------------------------

    def select(self, conn: sqlite3.Connection, scan: Scan) -> list[tuple[Any, ...]]:
        """The rows ``scan`` selects, as ``(created_at, id, *carried)`` in scan order.

        An empty date window (``from_date > to_date``) selects nothing without a query.
        """
        if scan.from_date is not None and scan.to_date is not None and scan.from_date > scan.to_date:
            return []
        per_value = [conn.execute(sql, params).fetchall() for sql, params in self.statements(scan)]
        return merge_unique(per_value, scan.limit, descending=scan.descending)

    def explain(self, conn: sqlite3.Connection, scan: Scan) -> list[str]:
        """SQLite's query plans of the statements :meth:`select` runs (for tests and benchmarks)."""
        return explain(conn, self.statements(scan))

    def statements(self, scan: Scan) -> Iterator[Statement]:
        """The statements of ``scan``: one per value of the driving filter, or one without a column filter."""
        alias = self.alias
        driver = next((name for name in self.driving_order if name in scan.values), None)
        # the scanned table: the side table for a label, else this table through the driver's index
        if driver == "label":
            scanned, key = "l", self.labels_key
            source = f"{self.labels} AS l CROSS JOIN {self.name} AS {alias} ON {alias}.id = l.{key}"
            head = ["l.label = ?"]
        else:
            scanned, key = alias, "id"
            index = self.created_index if driver is None else self.index_prefix + self.columns[driver]
            source = f"{self.name} AS {alias} INDEXED BY {index}"
            head = [] if driver is None else [f"{alias}.{self.columns[driver]} = ?"]
        where = [*head, *self.conditions]
        params: list[Any] = []
        for name, wanted in scan.values.items():
            if name == driver:
                continue
            if name == "label":
                where.append(
                    f"EXISTS (SELECT 1 FROM {self.labels} AS l2 WHERE l2.{self.labels_key} = {alias}.id "
                    "AND l2.label IN (SELECT value FROM json_each(?)))"
                )
            else:
                where.append(f"{alias}.{self.columns[name]} IN (SELECT value FROM json_each(?))")
            params.append(json_list(wanted))
        if scan.from_date is not None:
            where.append(f"{scanned}.created_at >= ?")
            params.append(scan.from_date)
        if scan.to_date is not None:
            where.append(f"{scanned}.created_at <= ?")
            params.append(scan.to_date)
        if scan.cursor is not None:
            where.append(f"({scanned}.created_at, {scanned}.{key}) {'<' if scan.descending else '>'} (?, ?)")
            params.extend(scan.cursor)
        direction = "DESC" if scan.descending else "ASC"
        columns = ", ".join([f"{scanned}.created_at", f"{scanned}.{key}", *self.carried])
        sql, params = limited(
            f"SELECT {columns} FROM {source} WHERE {' AND '.join(where) or '1'} "
            f"ORDER BY {scanned}.created_at {direction}, {scanned}.{key} {direction}",
            params,
            scan.limit,
        )
        if driver is None:
            yield sql, params
            return
        for value in scan.values[driver]:
            yield sql, [value, *params]


def merge_unique(
    streams: Sequence[Sequence[tuple[Any, ...]]], limit: int | None, *, descending: bool = False
) -> list[tuple[Any, ...]]:
    """Merge rows sorted by ``(created_at, id)`` (each stream in the same direction), each ``id`` once.

    :param streams: the rows of each scan, ``(created_at, id, ...)``.
    :param limit: keep at most this many rows, or all.
    :param descending: the streams are in descending order.
    """
    source: Iterable[tuple[Any, ...]] = streams[0] if len(streams) == 1 else heapq.merge(*streams, reverse=descending)
    merged: list[tuple[Any, ...]] = []
    seen: set[int] = set()
    for row in source:
        if row[1] in seen:
            continue
        seen.add(row[1])
        merged.append(row)
        if limit is not None and len(merged) >= limit:
            break
    return merged


def explain(conn: sqlite3.Connection, statements: Iterable[Statement]) -> list[str]:
    """SQLite's query plan of each statement, its steps joined with ``"; "``."""
    return [
        "; ".join(str(step[-1]) for step in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        for sql, params in statements
    ]


__all__ = [
    "BULK_LOAD_THRESHOLD",
    "FilteredTable",
    "Scan",
    "Statement",
    "explain",
    "json_list",
    "limited",
    "merge_unique",
]
