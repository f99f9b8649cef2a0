"""URL groups (QStash's ``topics``): named sets of endpoints a publish fans out to.

* ``POST /v2/topics/{name}/endpoints`` ``{"endpoints": [{"url": ..., "name"?: ...}]}`` creates the
  group if needed and adds (or renames) the endpoints; 200, empty body;
* ``DELETE /v2/topics/{name}/endpoints`` ``{"endpoints": [{"url"?, "name"?}]}`` removes them; a group
  left without endpoints is deleted (as the spec says); 404 for an unknown group;
* ``GET /v2/topics`` (a list) and ``GET /v2/topics/{name}`` (404 when unknown): ``URLGroup``
  ``{"name", "createdAt", "updatedAt", "endpoints": [{"url", "name"?}]}``;
* ``DELETE /v2/topics/{name}``: 200, 404 when unknown.

Publishing to a group name creates one message per endpoint and answers a list (see
:mod:`qstash_emulator.app`); a name that is no group is a 404, never a message to nowhere.

Bodies are read strictly: a body that is not a JSON object with exactly ``endpoints`` (a non-empty
list of objects with a string ``url``, optional string ``name``, nothing else) is a 400.
"""

from __future__ import annotations

import json
from typing import Any

from qstash_emulator.query import QueryError
from qstash_emulator.records import now_ms
from qstash_emulator.store import MessageStore, split_url

_TABLES = """
CREATE TABLE IF NOT EXISTS url_groups (
    name TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS url_group_endpoints (
    group_name TEXT NOT NULL,
    pos INTEGER NOT NULL,
    url TEXT NOT NULL,
    name TEXT,
    PRIMARY KEY (group_name, url)
);
"""


def parse_endpoints(raw: bytes, *, need_url: bool) -> list[tuple[str | None, str | None]]:
    """``[(url, name)]`` of an endpoints body.

    :param need_url: every endpoint must have a ``url`` (adding); otherwise ``url`` or ``name`` (removing).
    :raises QueryError: for anything else.
    """
    shape = 'body must be {"endpoints": [{"url": "https://...", "name"?: "..."}, ...]}'
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"{shape}: {exc}") from exc
    if not isinstance(body, dict) or set(body) != {"endpoints"}:
        raise QueryError(shape)
    items = body["endpoints"]
    if not isinstance(items, list) or not items:
        raise QueryError(shape + " (a non-empty list)")
    out: list[tuple[str | None, str | None]] = []
    for item in items:
        if not isinstance(item, dict) or set(item) - {"url", "name"}:
            raise QueryError(f"{shape}; got the endpoint {item!r}")
        url, name = item.get("url"), item.get("name")
        if (url is not None and not isinstance(url, str)) or (name is not None and not isinstance(name, str)):
            raise QueryError(f"url and name must be strings, got {item!r}")
        if url is not None:
            try:
                split_url(url)
            except ValueError as exc:
                raise QueryError(str(exc)) from exc
        if (need_url and not url) or not (url or name):
            raise QueryError(f"{'url' if need_url else 'url or name'} is required, got {item!r}")
        out.append((url or None, name or None))
    return out


class UrlGroupStore:
    """URL groups in the message store's SQLite database (same connection, same lock)."""

    def __init__(self, store: MessageStore) -> None:
        self.store = store
        with store.lock:
            store.connection.executescript(_TABLES)

    def reset(self) -> None:
        """Forget every group."""
        with self.store.lock, self.store.transaction():
            self.store.connection.execute("DELETE FROM url_group_endpoints")
            self.store.connection.execute("DELETE FROM url_groups")

    def upsert(self, group: str, endpoints: list[tuple[str | None, str | None]]) -> None:
        """Create ``group`` if needed and add the endpoints (an endpoint already there gets the new name)."""
        conn, stamp = self.store.connection, now_ms()
        with self.store.lock, self.store.transaction():
            conn.execute(
                "INSERT INTO url_groups (name, created_at, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at",
                (group, stamp, stamp),
            )
            for url, name in endpoints:
                conn.execute(
                    "INSERT INTO url_group_endpoints (group_name, pos, url, name) VALUES (?, "
                    "(SELECT coalesce(max(pos), -1) + 1 FROM url_group_endpoints WHERE group_name = ?), ?, ?) "
                    "ON CONFLICT (group_name, url) DO UPDATE SET name = excluded.name",
                    (group, group, url, name),
                )

    def remove(self, group: str, endpoints: list[tuple[str | None, str | None]]) -> bool:
        """Remove endpoints (by url, or by name); the group goes with its last endpoint. ``False``: no such group."""
        conn = self.store.connection
        with self.store.lock:
            if conn.execute("SELECT 1 FROM url_groups WHERE name = ?", (group,)).fetchone() is None:
                return False
            with self.store.transaction():
                for url, name in endpoints:
                    if url is not None:
                        conn.execute("DELETE FROM url_group_endpoints WHERE group_name = ? AND url = ?", (group, url))
                    else:
                        conn.execute("DELETE FROM url_group_endpoints WHERE group_name = ? AND name = ?", (group, name))
                left = conn.execute("SELECT count(*) FROM url_group_endpoints WHERE group_name = ?", (group,))
                if left.fetchone()[0] == 0:
                    conn.execute("DELETE FROM url_groups WHERE name = ?", (group,))
                else:
                    conn.execute("UPDATE url_groups SET updated_at = ? WHERE name = ?", (now_ms(), group))
        return True

    def delete(self, group: str) -> bool:
        """Delete a group and its endpoints; ``False`` if there is no such group."""
        conn = self.store.connection
        with self.store.lock, self.store.transaction():
            conn.execute("DELETE FROM url_group_endpoints WHERE group_name = ?", (group,))
            return conn.execute("DELETE FROM url_groups WHERE name = ?", (group,)).rowcount > 0

    def endpoints(self, group: str) -> list[tuple[str, str | None]] | None:
        """``[(url, name)]`` of a group in the order they were added, ``None`` if there is no such group."""
        conn = self.store.connection
        with self.store.lock:
            if conn.execute("SELECT 1 FROM url_groups WHERE name = ?", (group,)).fetchone() is None:
                return None
            rows = conn.execute(
                "SELECT url, name FROM url_group_endpoints WHERE group_name = ? ORDER BY pos", (group,)
            ).fetchall()
        return [(str(url), name) for url, name in rows]

    def get(self, group: str) -> dict[str, Any] | None:
        """The ``URLGroup``, ``None`` if unknown."""
        with self.store.lock:
            row = self.store.connection.execute(
                "SELECT name, created_at, updated_at FROM url_groups WHERE name = ?", (group,)
            ).fetchone()
            if row is None:
                return None
            return _group(row, self.endpoints(group) or [])

    def list(self) -> list[dict[str, Any]]:
        """Every ``URLGroup``, by name."""
        with self.store.lock:
            rows = self.store.connection.execute(
                "SELECT name, created_at, updated_at FROM url_groups ORDER BY name"
            ).fetchall()
            return [_group(row, self.endpoints(row[0]) or []) for row in rows]


def _group(row: Any, endpoints: list[tuple[str, str | None]]) -> dict[str, Any]:
    name, created_at, updated_at = row
    return {
        "name": name,
        "createdAt": created_at,
        "updatedAt": updated_at,
        "endpoints": [{"url": url, **({"name": n} if n else {})} for url, n in endpoints],
    }


__all__ = ["UrlGroupStore", "parse_endpoints"]
