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

Today's generation (``actions``) adds the routes of the 2026-12 API reference; an older server
(``legacy``) does not have them, so they fall through to the single-entry routes and answer 404
there, as such a server does (``DELETE /v2/dlq/multi`` is "entry ``multi`` not found"):

* ``DELETE /v2/dlq/bulk`` and ``POST /v2/dlq/retry/bulk``: start an async bulk action (kinds
  :data:`~qstash_emulator.actions.DLQ_DELETE_KIND`, :data:`~qstash_emulator.actions.DLQ_RETRY_KIND`)
  over the entries the query's filters select at accept time (no filter: every entry); answer
  **202** with the ``BulkAction`` (``actionId``, ``kind``, ``state``, ``total``, ...). Identical
  filters while an action of the same kind is in progress answer 202 with that action. ``dlqIds``,
  ``cursor`` and a body are refused (400): ids go to ``/multi``; ``count`` is ignored. A retry
  action applies the request's ``Upstash-*`` headers to every retried message;
* ``DELETE /v2/dlq/multi`` (200 ``{"deleted": n}``, the entries found) and
  ``POST /v2/dlq/retry/multi`` (201 ``{"responses": [{"messageId"}]}``, 404 and nothing retried when
  some are missing): ids in the query (``dlqIds``, repeated or comma-separated) **or** in a JSON body
  ``{"dlqIds": [...]}``; both, neither, or a DLQ filter beside them is a 400;
* ``GET /v2/dlq`` honours ``dlqIds`` (then only those entries, no cursor) in both generations.

Ids in a JSON body ``{"dlqIds": [...]}`` are read on ``DELETE /v2/dlq`` and ``POST /v2/dlq/retry`` in
both generations (see :mod:`qstash_emulator.request_body`).
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from qstash_emulator.actions import DLQ_DELETE_KIND, DLQ_RETRY_KIND
from qstash_emulator.dlq import DlqIdsNotFound
from qstash_emulator.headers import UpstashHeaders, read_upstash_headers
from qstash_emulator.query import DlqQuery, QueryError, parse_dlq_query, split_values
from qstash_emulator.request_body import DLQ_IDS_KEY, DLQ_PARAMS, read_ids_body, refuse_body, refuse_unknown_params
from qstash_emulator.web import emulator_state, error_response, found_or_404, parsed, store_call

#: The 404 of a single-entry route; ``{}`` stands for the DLQ id.
NOT_IN_DLQ = "message {} not found in the DLQ"


def _query(request: Request, *, allow_ids: bool) -> DlqQuery:
    """The request's DLQ query (400 when invalid, or for a parameter the DLQ routes do not know)."""
    items = request.query_params.multi_items()
    parsed(refuse_unknown_params, items, DLQ_PARAMS)
    return parsed(parse_dlq_query, items, allow_ids=allow_ids)


def _has_filter(query: DlqQuery) -> bool:
    """Whether the query selects by something (ids, a filter value or a date)."""
    return bool(
        query.dlq_ids
        or query.values
        or query.response_statuses
        or query.from_date is not None
        or query.to_date is not None
    )


async def _query_with_body(request: Request) -> DlqQuery | None:
    """The query of ``DELETE /v2/dlq`` / ``POST /v2/dlq/retry``, with the ids of a JSON body if any
    (``None``: the body names no id, nothing to do). 400 as :mod:`qstash_emulator.request_body` says."""
    query = _query(request, allow_ids=True)
    body_ids = _parsed_body(await _body_ids(request))
    if body_ids is None:
        return query
    if _has_filter(query):
        raise HTTPException(400, "send the DLQ ids in the body or filters in the query string, not both")
    return DlqQuery(dlq_ids=body_ids) if body_ids else None


async def _body_ids(request: Request) -> tuple[str, ...] | QueryError | None:
    try:
        return await read_ids_body(request, DLQ_IDS_KEY)
    except QueryError as exc:
        return exc


def _parsed_body(value: tuple[str, ...] | QueryError | None) -> tuple[str, ...] | None:
    """The ids, or a 400 for the body's error."""
    if isinstance(value, QueryError):
        raise HTTPException(400, str(value))
    return value


async def _multi_ids(request: Request) -> tuple[str, ...]:
    """The ids of a ``/multi`` request: the query's ``dlqIds`` or the body's, exactly one of them."""
    items = request.query_params.multi_items()
    query = _query(request, allow_ids=True)
    if query.values or query.response_statuses or query.from_date is not None or query.to_date is not None:
        raise HTTPException(400, "a /multi request takes dlqIds only; filters go to the /bulk endpoints")
    in_query = [value for name, value in items if name == DLQ_IDS_KEY]
    body_ids = _parsed_body(await _body_ids(request))
    if in_query and body_ids is not None:
        raise HTTPException(400, "send dlqIds in the query string or in the body, not both")
    if body_ids is not None:
        return body_ids
    if not in_query:
        raise HTTPException(400, 'dlqIds is required (in the query string or as a JSON body {"dlqIds": [...]})')
    ids = split_values(in_query)
    if not ids:
        raise HTTPException(400, "dlqIds has no id")
    return ids


def _is_legacy(request: Request) -> bool:
    return emulator_state(request).bulk_cancel.name == "legacy"


def _headers(request: Request) -> UpstashHeaders:
    """The request's ``Upstash-*`` headers, which override the retried messages' settings (400 when invalid)."""
    return parsed(read_upstash_headers, request.headers.items())


def _with_cursor(body: dict[str, Any], cursor: str | None, status_code: int = 200) -> JSONResponse:
    if cursor is not None:
        body["cursor"] = cursor
    return JSONResponse(body, status_code=status_code)


async def list_dlq(request: Request) -> Response:
    """``GET /v2/dlq``."""
    query = _query(request, allow_ids=True)
    messages, cursor = await store_call(request, emulator_state(request).dlq.list_page, query)
    return _with_cursor({"messages": messages}, cursor)


async def delete_dlq(request: Request) -> Response:
    """``DELETE /v2/dlq``."""
    query = await _query_with_body(request)
    if query is None:
        return JSONResponse({"deleted": 0})
    deleted, cursor = await store_call(request, emulator_state(request).dlq.delete, query)
    return _with_cursor({"deleted": deleted}, cursor)


async def retry_dlq(request: Request) -> Response:
    """``POST /v2/dlq/retry``."""
    query = await _query_with_body(request)
    if query is None:
        return JSONResponse({"responses": []}, status_code=201)
    headers = _headers(request)
    try:
        ids, cursor = await store_call(request, emulator_state(request).dlq.retry, query, headers)
    except DlqIdsNotFound as exc:
        return error_response(404, str(exc))
    return _with_cursor({"responses": [{"messageId": message_id} for message_id in ids]}, cursor, 201)


async def _start_bulk(request: Request, kind: str) -> Response:
    query = _query(request, allow_ids=True)
    if query.dlq_ids:
        raise HTTPException(400, "dlqIds is not a filter of the async bulk endpoints; send ids to /multi")
    if query.cursor is not None:
        raise HTTPException(400, "cursor is not read by the async bulk endpoints (they process every match)")
    try:
        await refuse_body(request)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from exc
    options = {"headers": _headers(request).recorded} if kind == DLQ_RETRY_KIND else {}
    state = emulator_state(request)
    started = await store_call(
        request,
        state.actions.start_snapshot,
        kind,
        dlq_action_filter(query),
        lambda: state.dlq.snapshot(query),
        options,
    )
    action = started.action if started.action is not None else started.conflict
    wake = getattr(state.bulk_cancel, "runner", None)
    if wake is not None:
        wake.wake()
    return JSONResponse(action, status_code=202)


def dlq_action_filter(query: DlqQuery) -> dict[str, list[str]]:
    """The ``filter`` of a DLQ bulk action: parameter name -> values as strings (empty: every entry)."""
    result = {name: list(values) for name, values in query.values.items()}
    if query.response_statuses:
        result["responseStatus"] = [str(s) for s in query.response_statuses]
    if query.from_date is not None:
        result["fromDate"] = [str(query.from_date)]
    if query.to_date is not None:
        result["toDate"] = [str(query.to_date)]
    return result


async def delete_dlq_bulk(request: Request) -> Response:
    """``DELETE /v2/dlq/bulk`` (``actions``; an older server: 404 as for an unknown entry)."""
    if _is_legacy(request):
        return await delete_dlq_message(request, "bulk")
    return await _start_bulk(request, DLQ_DELETE_KIND)


async def retry_dlq_bulk(request: Request) -> Response:
    """``POST /v2/dlq/retry/bulk``."""
    if _is_legacy(request):
        return await retry_dlq_message(request, "bulk")
    return await _start_bulk(request, DLQ_RETRY_KIND)


async def delete_dlq_multi(request: Request) -> Response:
    """``DELETE /v2/dlq/multi``: ``{"deleted": n}``."""
    if _is_legacy(request):
        return await delete_dlq_message(request, "multi")
    ids = await _multi_ids(request)
    return JSONResponse({"deleted": await store_call(request, emulator_state(request).dlq.delete_ids, ids)})


async def retry_dlq_multi(request: Request) -> Response:
    """``POST /v2/dlq/retry/multi``: 201 ``{"responses": [{"messageId"}]}``, 404 if some are missing."""
    if _is_legacy(request):
        return await retry_dlq_message(request, "multi")
    ids = await _multi_ids(request)
    headers = _headers(request)
    try:
        new_ids, _ = await store_call(request, emulator_state(request).dlq.retry, DlqQuery(dlq_ids=ids), headers)
    except DlqIdsNotFound as exc:
        return error_response(404, str(exc))
    return JSONResponse({"responses": [{"messageId": message_id} for message_id in new_ids]}, status_code=201)


async def get_dlq_message(request: Request) -> Response:
    """``GET /v2/dlq/{dlqId}``."""
    return JSONResponse(await found_or_404(request, "dlqId", emulator_state(request).dlq.get, NOT_IN_DLQ))


async def delete_dlq_message(request: Request, dlq_id: str | None = None) -> Response:
    """``DELETE /v2/dlq/{dlqId}``: 200 (empty body) or 404."""
    if dlq_id is not None:
        request.path_params["dlqId"] = dlq_id
    await found_or_404(request, "dlqId", emulator_state(request).dlq.delete_one, NOT_IN_DLQ)
    return Response(status_code=200)


async def retry_dlq_message(request: Request, dlq_id: str | None = None) -> Response:
    """``POST /v2/dlq/retry/{dlqId}``: 201 ``{"messageId"}`` or 404."""
    if dlq_id is not None:
        request.path_params["dlqId"] = dlq_id
    headers = _headers(request)
    message_id = await found_or_404(request, "dlqId", emulator_state(request).dlq.retry_one, NOT_IN_DLQ, headers)
    return JSONResponse({"messageId": message_id}, status_code=201)


__all__ = [
    "delete_dlq",
    "delete_dlq_bulk",
    "delete_dlq_message",
    "delete_dlq_multi",
    "dlq_action_filter",
    "get_dlq_message",
    "list_dlq",
    "retry_dlq",
    "retry_dlq_bulk",
    "retry_dlq_message",
    "retry_dlq_multi",
]
