"""The JSON bodies the QStash routes read, and the rule for everything else: what cannot be read is a 400.

Ids may travel in a JSON body instead of the query (qstash-py 3.4 sends them so):

* ``DELETE /v2/messages`` ``{"messageIds": [...]}``;
* ``DELETE /v2/dlq``, ``POST /v2/dlq/retry``, ``DELETE /v2/dlq/multi``, ``POST /v2/dlq/retry/multi``
  ``{"dlqIds": [...]}``.

Declared readings (the published API says nothing about them; each is the one that can never act
wider than the request named):

* an empty body (or only whitespace) is no body;
* a body must be a JSON object (UTF-8) with exactly the one ids key; anything else (not JSON, a list,
  another or an extra key, ids that are not a list of non-empty strings) is a 400;
* ids in the body **and** a filter or ids in the query is a 400 (which one was meant cannot be
  told);
* an empty id list names nothing: nothing is touched and the count is 0 (never "no filter");
* a body on a filter-only route (``DELETE /v2/dlq/bulk``, ``POST /v2/dlq/retry/bulk``) is a 400:
  those routes read their filters from the query only.

Query parameters: on the bulk cancel (``DELETE /v2/messages``) and on every DLQ route that takes
filters, a parameter name the route does not know (``lable=x``, ``dlqId=...``) is a 400
(:func:`refuse_unknown_params`): read as "no filter" it would select everything.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from starlette.requests import Request

from qstash_emulator.query import (
    DEPRECATED_ALIASES,
    DLQ_MULTI_VALUE_FILTERS,
    DLQ_REFUSED_FILTERS,
    MULTI_VALUE_FILTERS,
    QueryError,
)

#: The ids key of the message routes and of the DLQ routes.
MESSAGE_IDS_KEY = "messageIds"
DLQ_IDS_KEY = "dlqIds"


#: The query parameters ``DELETE /v2/messages`` reads (``qstash_token`` is the token, read by the app).
MESSAGE_CANCEL_PARAMS: frozenset[str] = frozenset(
    {*MULTI_VALUE_FILTERS, *DEPRECATED_ALIASES, "messageIds", "fromDate", "toDate", "count", "async", "qstash_token"}
)
#: The query parameters of the DLQ routes (``host`` and ``path`` are known, to be refused with their own message).
DLQ_PARAMS: frozenset[str] = frozenset(
    {
        *DLQ_MULTI_VALUE_FILTERS,
        *DLQ_REFUSED_FILTERS,
        *DEPRECATED_ALIASES,
        "dlqIds",
        "responseStatus",
        "fromDate",
        "toDate",
        "count",
        "cursor",
        "order",
        "qstash_token",
    }
)


def refuse_unknown_params(items: Iterable[tuple[str, str]], known: frozenset[str]) -> None:
    """:raises QueryError: naming the parameters not in ``known``."""
    unknown = sorted({name for name, _ in items if name not in known})
    if unknown:
        raise QueryError(f"unknown query parameters {unknown}: remove or correct them (known: {sorted(known)})")


def parse_ids_body(raw: bytes, key: str) -> tuple[str, ...] | None:
    """The ids of a ``{key: [...]}`` body in order (repeats dropped), ``None`` for an empty body.

    :raises QueryError: for any other body.
    """
    if not raw.strip():
        return None
    shape = f'the body must be a JSON object {{"{key}": ["...", ...]}}'
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"{shape}; it is not JSON ({exc})") from exc
    if not isinstance(body, dict):
        raise QueryError(f"{shape}, got a JSON {type(body).__name__}")
    if set(body) != {key}:
        raise QueryError(f"{shape}; unknown or missing keys: {sorted(set(body) ^ {key})}")
    ids = body[key]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i.strip() for i in ids):
        raise QueryError(f"{key} must be a list of non-empty strings, got {ids!r}")
    return tuple(dict.fromkeys(ids))


async def read_ids_body(request: Request, key: str) -> tuple[str, ...] | None:
    """:func:`parse_ids_body` of the request's body."""
    return parse_ids_body(await request.body(), key)


async def refuse_body(request: Request) -> None:
    """A route that reads no body: a non-empty one is a 400.

    :raises QueryError: when the request has a body.
    """
    if (await request.body()).strip():
        raise QueryError("this route reads its filters from the query string only; send no body")


__all__ = [
    "DLQ_IDS_KEY",
    "DLQ_PARAMS",
    "MESSAGE_CANCEL_PARAMS",
    "MESSAGE_IDS_KEY",
    "parse_ids_body",
    "read_ids_body",
    "refuse_body",
    "refuse_unknown_params",
]
