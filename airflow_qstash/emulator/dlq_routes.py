"""The DLQ routes of the spec (``tests/spec/qstash-openapi.yaml``), over :mod:`airflow_qstash.emulator.dlq`.

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

from airflow_qstash.emulator.dlq import DlqIdsNotFound
from airflow_qstash.emulator.headers import read_upstash_headers
from airflow_qstash.emulator.query import QueryError, parse_dlq_query
from airflow_qstash.emulator.web import emulator_state, error_response, store_call


def _with_cursor(body: dict[str, Any], cursor: str | None) -> JSONResponse:
    if cursor is not None:
        body["cursor"] = cursor
    return JSONResponse(body)


async def list_dlq(request: Request) -> Response:
    """``GET /v2/dlq``."""
    try:
        query = parse_dlq_query(request.query_params.multi_items(), allow_ids=False)
    except QueryError as exc:
        return error_response(400, str(exc))
    messages, cursor = await store_call(request, emulator_state(request).dlq.list_page, query)
    return _with_cursor({"messages": messages}, cursor)


async def delete_dlq(request: Request) -> Response:
    """``DELETE /v2/dlq``."""
    try:
        query = parse_dlq_query(request.query_params.multi_items(), allow_ids=True)
    except QueryError as exc:
        return error_response(400, str(exc))
    deleted, cursor = await store_call(request, emulator_state(request).dlq.delete, query)
    return _with_cursor({"deleted": deleted}, cursor)


async def retry_dlq(request: Request) -> Response:
    """``POST /v2/dlq/retry``."""
    try:
        query = parse_dlq_query(request.query_params.multi_items(), allow_ids=True)
        headers = read_upstash_headers(request.headers.items())
    except QueryError as exc:
        return error_response(400, str(exc))
    try:
        ids, cursor = await store_call(request, emulator_state(request).dlq.retry, query, headers)
    except DlqIdsNotFound as exc:
        return error_response(404, str(exc))
    response = _with_cursor({"responses": [{"messageId": message_id} for message_id in ids]}, cursor)
    response.status_code = 201
    return response


async def get_dlq_message(request: Request) -> Response:
    """``GET /v2/dlq/{dlqId}``."""
    dlq_id = request.path_params["dlqId"]
    entry = await store_call(request, emulator_state(request).dlq.get, dlq_id)
    if entry is None:
        return error_response(404, f"message {dlq_id} not found in the DLQ")
    return JSONResponse(entry)


async def delete_dlq_message(request: Request) -> Response:
    """``DELETE /v2/dlq/{dlqId}``: 200 (empty body) or 404."""
    dlq_id = request.path_params["dlqId"]
    if await store_call(request, emulator_state(request).dlq.delete_one, dlq_id):
        return Response(status_code=200)
    return error_response(404, f"message {dlq_id} not found in the DLQ")


async def retry_dlq_message(request: Request) -> Response:
    """``POST /v2/dlq/retry/{dlqId}``: 201 ``{"messageId"}`` or 404."""
    dlq_id = request.path_params["dlqId"]
    try:
        headers = read_upstash_headers(request.headers.items())
    except QueryError as exc:
        return error_response(400, str(exc))
    message_id = await store_call(request, emulator_state(request).dlq.retry_one, dlq_id, headers)
    if message_id is None:
        return error_response(404, f"message {dlq_id} not found in the DLQ")
    return JSONResponse({"messageId": message_id}, status_code=201)


__all__ = [
    "delete_dlq",
    "delete_dlq_message",
    "get_dlq_message",
    "list_dlq",
    "retry_dlq",
    "retry_dlq_message",
]
