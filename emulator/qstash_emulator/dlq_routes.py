"""The DLQ routes of the spec (``tests/spec/qstash-openapi.yaml``), over :mod:`qstash_emulator.dlq`.

* ``GET /v2/dlq``: ``{"messages": [DLQMessage + dlqId], "cursor"?}``; filters, ``count`` (1..100,
  default 100), ``cursor``, ``order`` (``latestFirst`` default, ``earliestFirst``; from the SDKs);
* ``DELETE /v2/dlq``: ``{"deleted": n, "cursor"?}``, by ``dlqIds`` or one page of the filters;
* ``POST /v2/dlq/retry``: 201 ``{"responses": [{"messageId"}], "cursor"?}``; ``Upstash-*`` request
  headers override the retried messages' settings; 404 when some ``dlqIds`` are gone. The spec
  lists neither ``count`` nor ``cursor`` for this route but answers a cursor, so it pages like
  the bulk delete (same ``count`` and ``cursor``, the reading of the SDKs, which loop on it);
* ``GET`` / ``DELETE /v2/dlq/{dlqId}`` and ``POST /v2/dlq/retry/{dlqId}`` (201 ``{"messageId"}``), 404
  when not in the DLQ.

``host`` and ``path`` are not DLQ filters: they are refused with 400, as the real server does.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qstash_emulator.dlq import DlqIdsNotFound
from qstash_emulator.headers import UpstashHeaders, read_upstash_headers
from qstash_emulator.query import DlqQuery, parse_dlq_query
from qstash_emulator.web import emulator_state, error_response, found_or_404, parsed, store_call

#: The 404 of a single-entry route; ``{}`` stands for the DLQ id.
NOT_IN_DLQ = "message {} not found in the DLQ"


def _query(request: Request, *, allow_ids: bool) -> DlqQuery:
    """The request's DLQ query (400 when invalid)."""
    return parsed(parse_dlq_query, request.query_params.multi_items(), allow_ids=allow_ids)


def _headers(request: Request) -> UpstashHeaders:
    """The request's ``Upstash-*`` headers, which override the retried messages' settings (400 when invalid)."""
    return parsed(read_upstash_headers, request.headers.items())


def _with_cursor(body: dict[str, Any], cursor: str | None, status_code: int = 200) -> JSONResponse:
    if cursor is not None:
        body["cursor"] = cursor
    return JSONResponse(body, status_code=status_code)


async def list_dlq(request: Request) -> Response:
    """``GET /v2/dlq``."""
    query = _query(request, allow_ids=False)
    messages, cursor = await store_call(request, emulator_state(request).dlq.list_page, query)
    return _with_cursor({"messages": messages}, cursor)


async def delete_dlq(request: Request) -> Response:
    """``DELETE /v2/dlq``."""
    query = _query(request, allow_ids=True)
    deleted, cursor = await store_call(request, emulator_state(request).dlq.delete, query)
    return _with_cursor({"deleted": deleted}, cursor)


async def retry_dlq(request: Request) -> Response:
    """``POST /v2/dlq/retry``."""
    query = _query(request, allow_ids=True)
    headers = _headers(request)
    try:
        ids, cursor = await store_call(request, emulator_state(request).dlq.retry, query, headers)
    except DlqIdsNotFound as exc:
        return error_response(404, str(exc))
    return _with_cursor({"responses": [{"messageId": message_id} for message_id in ids]}, cursor, 201)


async def get_dlq_message(request: Request) -> Response:
    """``GET /v2/dlq/{dlqId}``."""
    return JSONResponse(await found_or_404(request, "dlqId", emulator_state(request).dlq.get, NOT_IN_DLQ))


async def delete_dlq_message(request: Request) -> Response:
    """``DELETE /v2/dlq/{dlqId}``: 200 (empty body) or 404."""
    await found_or_404(request, "dlqId", emulator_state(request).dlq.delete_one, NOT_IN_DLQ)
    return Response(status_code=200)


async def retry_dlq_message(request: Request) -> Response:
    """``POST /v2/dlq/retry/{dlqId}``: 201 ``{"messageId"}`` or 404."""
    headers = _headers(request)
    message_id = await found_or_404(request, "dlqId", emulator_state(request).dlq.retry_one, NOT_IN_DLQ, headers)
    return JSONResponse({"messageId": message_id}, status_code=201)


__all__ = [
    "delete_dlq",
    "delete_dlq_message",
    "get_dlq_message",
    "list_dlq",
    "retry_dlq",
    "retry_dlq_message",
]
