"""The emulator's ASGI application (Starlette).

QStash routes (token required, logged, subject to fault injection):

* ``POST /v2/publish/{destination}``, ``POST /v2/enqueue/{queueName}/{destination}`` and ``POST /v2/batch``
* ``GET`` / ``DELETE /v2/messages/{messageId}``
* ``DELETE /v2/messages`` (bulk cancel, every filter of the API), answered by the server
  generation chosen with ``bulk_cancel`` (see :mod:`qstash_emulator.bulk_cancel`)
* ``GET /v2/bulkActions`` and ``GET /v2/bulkActions/{actionId}`` (``actions`` mode)
* ``GET /v2/queues``
* URL groups: ``GET /v2/topics``, ``GET``/``DELETE /v2/topics/{name}``, ``POST``/``DELETE
  /v2/topics/{name}/endpoints`` (see :mod:`qstash_emulator.url_groups`); publishing to a group
  creates one message per endpoint and answers a list, an unknown group is a 404
* ``Upstash-Delay`` / ``Upstash-Not-Before`` set ``notBefore`` (see :mod:`qstash_emulator.headers`)
* the DLQ: ``GET``/``DELETE /v2/dlq``, ``POST /v2/dlq/retry``, ``GET``/``DELETE /v2/dlq/{dlqId}``,
  ``POST /v2/dlq/retry/{dlqId}``; in ``actions`` mode also ``DELETE /v2/dlq/bulk``,
  ``POST /v2/dlq/retry/bulk``, ``DELETE /v2/dlq/multi``, ``POST /v2/dlq/retry/multi`` (see
  :mod:`qstash_emulator.dlq_routes`)

Emulator administration under ``/_emulator/`` (no token, not logged, no faults; described by
``GET openapi.json``, :mod:`qstash_emulator.admin_schema`):
``GET health``, ``POST seed``, ``POST``/``GET messages``, ``GET message-ids``, ``GET counts``, ``GET stats``,
``GET``/``DELETE requests``, ``GET``/``PUT faults``, ``POST reset``, ``GET bulk-actions``,
``POST``/``GET dlq``, ``POST dlq/seed``, ``GET dlq/count``, ``POST fail``.

Store work runs in Starlette's thread pool (``run_in_threadpool``) so the event
loop keeps serving concurrent requests; the store serialises it with its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from qstash_emulator.actions import DEFAULT_ACTION_RATE, DLQ_DELETE_KIND, DLQ_RETRY_KIND, ActionStore
from qstash_emulator.admin_schema import ADMIN_OPENAPI
from qstash_emulator.bulk_cancel import DEFAULT_SYNC_WAIT, make_bulk_cancel
from qstash_emulator.dlq import DeadLetterStore
from qstash_emulator.dlq_routes import (
    delete_dlq,
    delete_dlq_bulk,
    delete_dlq_message,
    delete_dlq_multi,
    get_dlq_message,
    list_dlq,
    retry_dlq,
    retry_dlq_bulk,
    retry_dlq_message,
    retry_dlq_multi,
)
from qstash_emulator.faults import FaultConfig, FaultDecision, FaultInjector
from qstash_emulator.headers import read_upstash_headers
from qstash_emulator.query import COUNT_BY, AdminFilter, QueryError, parse_admin_filter, parse_integer, split_values
from qstash_emulator.records import now_ms
from qstash_emulator.state import (
    DEFAULT_REQUEST_LOG_BYTES,
    DEFAULT_REQUEST_LOG_SIZE,
    DROPPED_HEADER,
    UNAUTHORIZED_PATH_CHARS,
    EmulatorState,
    RequestLog,
    check_token,
    redact_query,
    redact_text,
)
from qstash_emulator.store import MessageStore, check_timestamp, new_message_id
from qstash_emulator.url_groups import UrlGroupStore, parse_endpoints
from qstash_emulator.web import (
    FAULT_SCOPE_KEY,
    LOG_ENTRY_SCOPE_KEY,
    STORE_TIME_SCOPE_KEY,
    error_response,
    found_or_404,
    parsed,
)
from qstash_emulator.web import emulator_state as _state
from qstash_emulator.web import store_call as _store_call

#: The status logged for a request whose client closed the connection before it was read (nginx's 499).
CLIENT_CLOSED_REQUEST = 499

#: Names allowed for queues and URL groups (as QStash: alphanumerics, ``-``, ``_``, ``.``).
NAME_RE = re.compile(r"[A-Za-z0-9._-]+")

#: The 404 of the single-message routes; ``{}`` stands for the message id.
NOT_FOUND = "message {} not found"


# -- QStash routes ----------------------------------------------------------------------------


def _caller_ip(request: Request) -> str | None:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.client.host if request.client else None


class _Refused(Exception):
    """A message request the emulator refuses: ``status`` and the error text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _messages_for(
    request: Request,
    destination: str,
    queue_name: str | None,
    headers: list[tuple[str, str]],
    body: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The message dicts one publish creates (one per URL-group endpoint) and its group name, if any.

    :raises _Refused: for a bad destination or header, or an unknown URL group (404: nothing is created).
    """
    if queue_name is not None and not NAME_RE.fullmatch(queue_name):
        raise _Refused(400, f"invalid queue name: {queue_name!r}")
    if destination.startswith(("http://", "https://")):
        parts = urlsplit(destination)
        if not parts.netloc.rpartition("@")[2]:
            raise _Refused(400, f"invalid destination url: {destination!r}")
        topic_name = None
        endpoints: list[tuple[str, str | None]] = [(destination, None)]
    elif NAME_RE.fullmatch(destination):
        topic_name = destination
        group = await _store_call(request, _url_groups(request).endpoints, destination)
        if not group:
            # Hosted QStash answers an error for a name that is no URL group (or one without
            # endpoints): nothing is created.
            raise _Refused(404, f"url group {destination!r} not found")
        endpoints = group
    else:
        raise _Refused(400, "destination must be an http(s) URL or a URL group name, got " + repr(destination))
    try:
        upstash = read_upstash_headers(headers)
    except QueryError as exc:
        raise _Refused(400, str(exc)) from exc
    created_at = now_ms()
    labels = list(split_values(value for name, value in headers if name.lower() == "upstash-label"))
    flow_control_key = next((v for n, v in headers if n.lower() == "upstash-flow-control-key"), None)
    batch = [
        {
            "messageId": new_message_id(),
            "url": url,
            "topicName": topic_name,
            "queueName": queue_name,
            "labels": labels,
            "flowControlKey": flow_control_key,
            "callerIp": _caller_ip(request),
            "method": upstash.method or "POST",
            "body": body,
            "maxRetries": upstash.max_retries,
            "header": upstash.forward,
            "upstashHeaders": upstash.recorded,
            "createdAt": created_at,
            "notBefore": upstash.not_before(created_at),
        }
        for url, _name in endpoints
    ]
    return batch, topic_name


def _answer(batch: list[dict[str, Any]], topic_name: str | None) -> Any:
    """A publish's answer: ``{"messageId"}``, or for a URL group a list ``[{"messageId", "url"}]``
    (what both official SDKs parse)."""
    if topic_name is None:
        return {"messageId": batch[0]["messageId"]}
    return [{"messageId": data["messageId"], "url": data["url"]} for data in batch]


async def _create_message(request: Request, destination: str, queue_name: str | None) -> Response:
    raw_body = await request.body()
    try:
        body: str | None = raw_body.decode("utf-8") or None
    except UnicodeDecodeError:
        body = None
    try:
        batch, topic_name = await _messages_for(request, destination, queue_name, request.headers.items(), body)
        await _store_call(request, _state(request).store.add_messages, batch)
    except _Refused as exc:
        return error_response(exc.status, str(exc))
    except ValueError as exc:
        return error_response(400, str(exc))
    return JSONResponse(_answer(batch, topic_name))


#: Keys of one ``POST /v2/batch`` entry (what qstash-py 3.4 and qstash-js 2.12 send).
BATCH_KEYS = frozenset({"destination", "headers", "body", "queue"})


async def batch_publish(request: Request) -> Response:
    """``POST /v2/batch``: a JSON list of ``{"destination", "headers"?, "body"?, "queue"?}``; every entry
    is checked before any message is created (one bad entry: 400 or 404, nothing created); the answer
    lists one publish answer per entry, in order."""
    try:
        entries = json.loads((await request.body()).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return error_response(400, f"body must be a JSON list of messages: {exc}")
    if not isinstance(entries, list) or not entries:
        return error_response(400, "body must be a non-empty JSON list of messages")
    planned: list[tuple[list[dict[str, Any]], str | None]] = []
    try:
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) - BATCH_KEYS or not isinstance(entry.get("destination"), str):
                raise _Refused(400, f"a batch entry must be {{destination, headers?, body?, queue?}}, got {entry!r}")
            headers, body, queue = entry.get("headers") or {}, entry.get("body"), entry.get("queue")
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                raise _Refused(400, f"headers must be an object of strings, got {headers!r}")
            if (body is not None and not isinstance(body, str)) or (queue is not None and not isinstance(queue, str)):
                raise _Refused(400, f"body and queue must be strings, got {entry!r}")
            planned.append(await _messages_for(request, entry["destination"], queue, list(headers.items()), body))
        await _store_call(request, _state(request).store.add_messages, [m for batch, _ in planned for m in batch])
    except _Refused as exc:
        return error_response(exc.status, str(exc))
    except ValueError as exc:
        return error_response(400, str(exc))
    return JSONResponse([_answer(batch, topic_name) for batch, topic_name in planned])


async def publish(request: Request) -> Response:
    """``POST /v2/publish/{destination}``: hold one message (never delivered)."""
    return await _create_message(request, request.path_params["destination"], None)


async def enqueue(request: Request) -> Response:
    """``POST /v2/enqueue/{queueName}/{destination}``: hold one message in a queue."""
    return await _create_message(request, request.path_params["destination"], request.path_params["queueName"])


async def get_message(request: Request) -> Response:
    """``GET /v2/messages/{messageId}``: the ``Message``, 404 if unknown or cancelled."""
    return JSONResponse(await found_or_404(request, "messageId", _state(request).store.get, NOT_FOUND))


async def cancel_message(request: Request) -> Response:
    """``DELETE /v2/messages/{messageId}``: 202 ``{"cancelled": 1}`` (as hosted QStash answers, and what
    qstash-js 2.12's ``messages.cancel(id)`` parses) or 404 if unknown or already cancelled."""
    await found_or_404(request, "messageId", _state(request).store.cancel_one, NOT_FOUND)
    return JSONResponse({"cancelled": 1}, status_code=202)


async def bulk_cancel(request: Request) -> Response:
    """``DELETE /v2/messages``: answered by the server generation (``legacy`` or ``actions``)."""
    return await _state(request).bulk_cancel.cancel(request)


async def list_bulk_actions(request: Request) -> Response:
    """``GET /v2/bulkActions`` (``actions`` mode; 404 in ``legacy`` mode)."""
    return await _state(request).bulk_cancel.list_actions(request)


async def get_bulk_action(request: Request) -> Response:
    """``GET /v2/bulkActions/{actionId}`` (``actions`` mode; 404 in ``legacy`` mode)."""
    return await _state(request).bulk_cancel.get_action(request)


def _url_groups(request: Request) -> UrlGroupStore:
    groups = _state(request).url_groups
    assert groups is not None
    return groups


def _group_name(request: Request) -> str:
    name: str = request.path_params["urlGroupName"]
    if not NAME_RE.fullmatch(name):
        raise HTTPException(400, f"invalid url group name: {name!r}")
    return name


async def upsert_url_group_endpoints(request: Request) -> Response:
    """``POST /v2/topics/{urlGroupName}/endpoints``: create the group if needed, add the endpoints; 200."""
    name = _group_name(request)
    endpoints = parsed(parse_endpoints, await request.body(), need_url=True)
    await _store_call(request, _url_groups(request).upsert, name, endpoints)
    return Response(status_code=200)


async def remove_url_group_endpoints(request: Request) -> Response:
    """``DELETE /v2/topics/{urlGroupName}/endpoints``: 200, 404 for an unknown group."""
    name = _group_name(request)
    endpoints = parsed(parse_endpoints, await request.body(), need_url=False)
    if not await _store_call(request, _url_groups(request).remove, name, endpoints):
        return error_response(404, f"url group {name!r} not found")
    return Response(status_code=200)


async def list_url_groups(request: Request) -> Response:
    """``GET /v2/topics``."""
    return JSONResponse(await _store_call(request, _url_groups(request).list))


async def get_url_group(request: Request) -> Response:
    """``GET /v2/topics/{urlGroupName}``: the ``URLGroup`` or 404."""
    group = await _store_call(request, _url_groups(request).get, request.path_params["urlGroupName"])
    if group is None:
        return error_response(404, f"url group {request.path_params['urlGroupName']!r} not found")
    return JSONResponse(group)


async def delete_url_group(request: Request) -> Response:
    """``DELETE /v2/topics/{urlGroupName}``: 200 or 404."""
    if not await _store_call(request, _url_groups(request).delete, request.path_params["urlGroupName"]):
        return error_response(404, f"url group {request.path_params['urlGroupName']!r} not found")
    return Response(status_code=200)


async def list_queues(request: Request) -> Response:
    """``GET /v2/queues``: the queues seen so far, ``lag`` = held messages."""
    return JSONResponse(await _store_call(request, _state(request).store.queues))


# -- admin routes -----------------------------------------------------------------------------


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise HTTPException(400, f"invalid JSON body: {exc}") from exc


async def admin_health(request: Request) -> Response:
    """``GET /_emulator/health``."""
    return JSONResponse({"status": "ok"})


async def admin_openapi(request: Request) -> Response:
    """``GET /_emulator/openapi.json``: the admin API's OpenAPI 3.1 description."""
    return JSONResponse(ADMIN_OPENAPI)


#: Largest ``count`` ``POST /_emulator/seed`` accepts (a bigger seed would not finish usefully).
MAX_SEED = 10_000_000


async def _seed(request: Request, seed: Callable[..., int]) -> Response:
    """Run ``seed(count, seed, now=now)`` as the body says (400 for a bad body); ``{"seeded": N}``."""
    try:
        count, seed_value, now = _seed_body(await _json_body(request) or {})
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    return JSONResponse({"seeded": await run_in_threadpool(seed, count, seed_value, now=now)})


async def admin_seed(request: Request) -> Response:
    """``POST /_emulator/seed`` ``{"count": N, "seed": S, "now": ms?}`` -> ``{"seeded": N}`` (409: an id collides)."""
    try:
        return await _seed(request, _state(request).store.seed)
    except ValueError as exc:
        return error_response(409, str(exc))


async def _add(request: Request, add: Callable[[list[Any]], list[str]], what: str, key: str, example: str) -> Response:
    """Run ``add`` on the body (a non-empty list of ``what``, or ``{"messages": [...]}``); ``{key: [ids]}``, 400
    (naming ``example``, what to send) if refused."""
    body = await _json_body(request)
    if isinstance(body, dict) and set(body) == {"messages"}:
        body = body["messages"]
    if not isinstance(body, list) or not body:
        return error_response(400, f"body must be a non-empty JSON list of {what}: {example}")
    try:
        ids = await run_in_threadpool(add, body)
    except ValueError as exc:
        return error_response(400, str(exc))
    return JSONResponse({key: ids})


async def admin_add_messages(request: Request) -> Response:
    """``POST /_emulator/messages`` (a list of message dicts, or ``{"messages": [...]}``)."""
    example = '[{"url": "https://example.com/hook", "labels": ["billing"], "createdAt": 1764907200000}]'
    return await _add(request, _state(request).store.add_messages, "messages", "messageIds", example)


def _limit_param(request: Request) -> int | None:
    """The ``limit`` parameter (an integer >= 0; 400 otherwise), ``None`` when absent."""
    raw_limit = request.query_params.get("limit")
    return None if raw_limit is None else parsed(parse_integer, "limit", raw_limit, minimum=0)


def _admin_filter(request: Request, *extra: str) -> tuple[AdminFilter, dict[str, str]]:
    """The admin listing's filter of this request and its ``extra`` parameters (400: unknown or unreadable)."""
    return parsed(parse_admin_filter, request.query_params.multi_items(), extra=extra)


async def admin_list_messages(request: Request) -> Response:
    """``GET /_emulator/messages?state=&label=&queue=&from=&to=&limit=``: the messages the filter selects, in
    insertion order (see :func:`~qstash_emulator.query.parse_admin_filter`)."""
    selection, extra = _admin_filter(request, "limit")
    limit = None if "limit" not in extra else parsed(parse_integer, "limit", extra["limit"], minimum=0)
    return JSONResponse(await run_in_threadpool(_state(request).store.admin_select, selection, limit))


async def admin_message_ids(request: Request) -> Response:
    """``GET /_emulator/message-ids`` (the listing's filter): just the ids, sorted (cheaper)."""
    selection, _ = _admin_filter(request)
    return JSONResponse(await run_in_threadpool(_state(request).store.admin_ids, selection))


async def admin_counts(request: Request) -> Response:
    """``GET /_emulator/counts?by=label|queue|state`` (the listing's filter; ``by`` defaults to ``label``):
    ``{"by": ..., "counts": [{<by>: key, "held", "cancelled", "total"}, ...], "total": {...}}``."""
    selection, extra = _admin_filter(request, "by")
    by = extra.get("by", "label")
    if by not in COUNT_BY:
        raise HTTPException(400, f"by must be one of {', '.join(COUNT_BY)}, got {by[:100]!r}")
    rows = await run_in_threadpool(_state(request).store.admin_counts, by, selection)
    everything = await run_in_threadpool(_state(request).store.admin_counts, "state", selection)
    total = {"held": 0, "cancelled": 0, "total": 0}
    for row in everything:
        for key in total:
            total[key] += row[key]
    return JSONResponse({"by": by, "counts": rows, "total": total})


async def admin_stats(request: Request) -> Response:
    """``GET /_emulator/stats`` -> ``{"held": n, "cancelled": m}``."""
    return JSONResponse(await run_in_threadpool(_state(request).store.counts))


async def admin_requests(request: Request) -> Response:
    """``GET`` (list) / ``DELETE`` (clear) ``/_emulator/requests``."""
    log = _state(request).request_log
    if request.method == "DELETE":
        log.clear()
        return JSONResponse({"cleared": True})
    return JSONResponse(log.entries(), headers={DROPPED_HEADER: str(log.dropped)})


async def admin_faults(request: Request) -> Response:
    """``GET`` / ``PUT /_emulator/faults``: the active ``FaultConfig`` as JSON (``null`` = off)."""
    injector = _state(request).faults
    if request.method == "PUT":
        body = await _json_body(request)
        try:
            injector.configure(None if body is None else FaultConfig.from_dict(body))
        except ValueError as exc:
            return error_response(400, str(exc))
    config = injector.config
    return JSONResponse(None if config is None else config.to_dict())


async def admin_bulk_actions(request: Request) -> Response:
    """``GET /_emulator/bulk-actions``: every stored action, oldest first, with ``cancelled`` and ``cancelLimit``."""
    return JSONResponse(await run_in_threadpool(_state(request).actions.all))


def _seed_body(body: Any) -> tuple[int, int, int | None]:
    """``(count, seed, now)`` of a seed request body.

    :raises ValueError: with the message to answer 400 with.
    """
    shape = f'send {{"count": N}} with N from 1 to {MAX_SEED:,} (optional "seed": S, "now": Unix ms)'
    if not isinstance(body, dict) or set(body) - {"count", "seed", "now"}:
        raise ValueError(f"body must be a JSON object: {shape}")
    if "count" not in body:
        raise ValueError(f"a seed without count makes nothing: {shape}")
    count, seed, now = body["count"], body.get("seed", 0), body.get("now")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (count, seed)) or not 1 <= count <= MAX_SEED:
        raise ValueError(f"count must be an integer between 1 and {MAX_SEED:,} and seed an integer: {shape}")
    if now is not None:
        check_timestamp("now", now)
    return count, seed, now


async def admin_add_dlq(request: Request) -> Response:
    """``POST /_emulator/dlq`` (a list of entries, or ``{"messages": [...]}``) -> ``{"dlqIds": [...]}``.

    An entry is a message dict (as ``POST /_emulator/messages``) plus ``responseStatus``
    (required), ``responseBody``, ``responseHeader`` and ``dlqId``.
    """
    example = '[{"url": "https://example.com/hook", "labels": ["billing"], "responseStatus": 500}]'
    return await _add(request, _state(request).dlq.add, "DLQ entries", "dlqIds", example)


async def admin_seed_dlq(request: Request) -> Response:
    """``POST /_emulator/dlq/seed`` ``{"count": N, "seed": S, "now": ms?}`` -> ``{"seeded": N}``."""
    return await _seed(request, _state(request).dlq.seed)


async def admin_list_dlq(request: Request) -> Response:
    """``GET /_emulator/dlq?limit=N``: entries in insertion order."""
    return JSONResponse(await run_in_threadpool(_state(request).dlq.entries, _limit_param(request)))


async def admin_dlq_count(request: Request) -> Response:
    """``GET /_emulator/dlq/count`` -> ``{"dlq": n}``."""
    return JSONResponse({"dlq": await run_in_threadpool(_state(request).dlq.count)})


async def admin_fail(request: Request) -> Response:
    """``POST /_emulator/fail`` ``{"messageIds": [...], "responseStatus": 500, "responseBody"?: "..."}``.

    Moves those held messages to the DLQ as if their retries were exhausted; ``{"dlqIds": [...]}``.
    """
    body = await _json_body(request)
    if not isinstance(body, dict) or set(body) - {"messageIds", "responseStatus", "responseBody"}:
        return error_response(400, 'body must be {"messageIds": [...], "responseStatus": N, "responseBody"?: "..."}')
    ids, status, text = body.get("messageIds"), body.get("responseStatus", 500), body.get("responseBody")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        example = '{"messageIds": ["msg_..."], "responseStatus": 500}'
        return error_response(400, f"messageIds must be a non-empty list of held message ids: {example}")
    if text is not None and not isinstance(text, str):
        return error_response(400, "responseBody must be a string")
    try:
        dlq_ids = await run_in_threadpool(_state(request).dlq.fail_messages, ids, status, text)
    except ValueError as exc:
        return error_response(400, str(exc))
    return JSONResponse({"dlqIds": dlq_ids})


async def admin_reset(request: Request) -> Response:
    """``POST /_emulator/reset``: empty store and log, initial faults back."""
    await run_in_threadpool(_state(request).reset)
    return JSONResponse({"reset": True})


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), exc.headers)


ROUTES = [
    Route("/v2/publish/{destination:path}", publish, methods=["POST"]),
    Route("/v2/enqueue/{queueName}/{destination:path}", enqueue, methods=["POST"]),
    Route("/v2/batch", batch_publish, methods=["POST"]),
    Route("/v2/messages", bulk_cancel, methods=["DELETE"]),
    Route("/v2/messages/{messageId}", get_message, methods=["GET"]),
    Route("/v2/messages/{messageId}", cancel_message, methods=["DELETE"]),
    Route("/v2/bulkActions", list_bulk_actions, methods=["GET"]),
    Route("/v2/bulkActions/{actionId}", get_bulk_action, methods=["GET"]),
    Route("/v2/queues", list_queues, methods=["GET"]),
    Route("/v2/topics", list_url_groups, methods=["GET"]),
    Route("/v2/topics/{urlGroupName}", get_url_group, methods=["GET"]),
    Route("/v2/topics/{urlGroupName}", delete_url_group, methods=["DELETE"]),
    Route("/v2/topics/{urlGroupName}/endpoints", upsert_url_group_endpoints, methods=["POST"]),
    Route("/v2/topics/{urlGroupName}/endpoints", remove_url_group_endpoints, methods=["DELETE"]),
    Route("/v2/dlq", list_dlq, methods=["GET"]),
    Route("/v2/dlq", delete_dlq, methods=["DELETE"]),
    Route("/v2/dlq/retry", retry_dlq, methods=["POST"]),
    Route("/v2/dlq/bulk", delete_dlq_bulk, methods=["DELETE"]),
    Route("/v2/dlq/multi", delete_dlq_multi, methods=["DELETE"]),
    Route("/v2/dlq/retry/bulk", retry_dlq_bulk, methods=["POST"]),
    Route("/v2/dlq/retry/multi", retry_dlq_multi, methods=["POST"]),
    Route("/v2/dlq/retry/{dlqId}", retry_dlq_message, methods=["POST"]),
    Route("/v2/dlq/{dlqId}", get_dlq_message, methods=["GET"]),
    Route("/v2/dlq/{dlqId}", delete_dlq_message, methods=["DELETE"]),
    Route("/_emulator/health", admin_health, methods=["GET"]),
    Route("/_emulator/openapi.json", admin_openapi, methods=["GET"]),
    Route("/_emulator/seed", admin_seed, methods=["POST"]),
    Route("/_emulator/messages", admin_add_messages, methods=["POST"]),
    Route("/_emulator/messages", admin_list_messages, methods=["GET"]),
    Route("/_emulator/message-ids", admin_message_ids, methods=["GET"]),
    Route("/_emulator/stats", admin_stats, methods=["GET"]),
    Route("/_emulator/counts", admin_counts, methods=["GET"]),
    Route("/_emulator/requests", admin_requests, methods=["GET", "DELETE"]),
    Route("/_emulator/faults", admin_faults, methods=["GET", "PUT"]),
    Route("/_emulator/bulk-actions", admin_bulk_actions, methods=["GET"]),
    Route("/_emulator/dlq", admin_add_dlq, methods=["POST"]),
    Route("/_emulator/dlq", admin_list_dlq, methods=["GET"]),
    Route("/_emulator/dlq/seed", admin_seed_dlq, methods=["POST"]),
    Route("/_emulator/dlq/count", admin_dlq_count, methods=["GET"]),
    Route("/_emulator/fail", admin_fail, methods=["POST"]),
    Route("/_emulator/reset", admin_reset, methods=["POST"]),
]


# -- the application --------------------------------------------------------------------------


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _is_authorized(scope: Scope, token: str) -> bool:
    headers = Headers(scope=scope)
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), token.encode()):
        return True
    return any(
        name == "qstash_token" and hmac.compare_digest(value.encode(), token.encode())
        for name, value in _query_pairs(scope)
    )


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the client's TCP connection without answering.

    uvicorn's ``send`` is a bound method of the per-request cycle object, which holds the
    connection's asyncio transport (both the httptools and the h11 implementations).
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or not hasattr(transport, "close"):
        raise RuntimeError("fault injection: cannot reach the transport to drop the connection")
    transport.close()
    # Wait until the server noticed the disconnect, so it does not try to answer 500 itself.

    async def until_disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(until_disconnected(), timeout=2.0)


async def _sleep_at_least(seconds: float) -> None:
    """``asyncio.sleep`` topped up to the full delay: uvloop's millisecond timers may wake slightly early."""
    deadline = time.perf_counter() + seconds
    while (remaining := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(remaining)


class EmulatorApp(Starlette):
    """Starlette app that authenticates, logs and fault-injects ``/v2`` requests around its routes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v2" or path.startswith("/v2/")):
            await super().__call__(scope, receive, send)
            return
        state: EmulatorState = self.state.emulator
        started = time.perf_counter()
        authorized = _is_authorized(scope, state.token)
        entry: dict[str, Any] = {
            "method": scope["method"],
            # Without the token, nothing the caller chose is kept beyond a short path: a stranger could
            # otherwise fill the log with whatever it sends.
            "path": redact_text(path if authorized else path[:UNAUTHORIZED_PATH_CHARS], state.token),
            "query": redact_query(_query_pairs(scope), state.token) if authorized else [],
            "authorized": authorized,
            "queryOmitted": False,
            "status": None,
            "time": time.time(),
            "durationMs": None,
            "storeMs": None,
            "storeCpuMs": None,
            "fault": None,
        }

        logged = False

        def record() -> None:
            # Called before the last byte goes out (or before the connection is dropped), so the
            # entry is in the log by the time the client sees the answer.
            nonlocal logged
            if not logged:
                logged = True
                entry["durationMs"] = round((time.perf_counter() - started) * 1000.0, 3)
                store_time = scope.get(STORE_TIME_SCOPE_KEY)
                if store_time is not None:
                    entry["storeMs"] = round(store_time[0] * 1000.0, 3)
                    entry["storeCpuMs"] = round(store_time[1] * 1000.0, 3)
                state.request_log.append(entry)

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()
            await send(message)

        decision = state.faults.decide(scope["method"], path)
        entry["fault"] = decision.label
        scope[LOG_ENTRY_SCOPE_KEY] = entry
        try:
            await self._serve_v2(scope, receive, send, logging_send, record, state, decision, authorized)
        except ClientDisconnect:
            # The client went away before its request was read (e.g. a killed triggerer): nothing was done
            # and nobody is there to answer. Logged as nginx's 499, never a 500 with a traceback.
            entry["status"] = CLIENT_CLOSED_REQUEST
        finally:
            record()

    async def _serve_v2(
        self,
        scope: Scope,
        receive: Receive,
        raw_send: Send,
        send: Send,
        record: Callable[[], None],
        state: EmulatorState,
        decision: FaultDecision,
        authorized: bool,
    ) -> None:
        if decision.latency_s > 0:
            await _sleep_at_least(decision.latency_s)
        if decision.kind == "status":
            response: Response = error_response(decision.status, f"emulated failure (status {decision.status})")
            await response(scope, receive, send)
            return
        if decision.kind == "drop":
            record()
            await _drop_connection(receive, raw_send)
            return
        if not authorized:
            await error_response(401, "Unauthorized: missing or invalid token")(scope, receive, send)
            return
        if decision.kind in ("429", "429_daily"):
            which = "daily" if decision.kind == "429_daily" else "burst"
            response = error_response(429, f"{which} rate limit exceeded (emulated)", decision.headers)
            await response(scope, receive, send)
            return
        if decision.kind == "5xx":
            await error_response(decision.status, "internal server error (emulated)")(scope, receive, send)
            return
        scope[FAULT_SCOPE_KEY] = decision
        await super().__call__(scope, receive, send)


def create_app(
    store: MessageStore,
    token: str,
    faults: FaultConfig | FaultInjector | None = None,
    *,
    request_log_size: int = DEFAULT_REQUEST_LOG_SIZE,
    request_log_bytes: int = DEFAULT_REQUEST_LOG_BYTES,
    bulk_cancel: str = "actions",
    action_rate: float = DEFAULT_ACTION_RATE,
    sync_wait: float = DEFAULT_SYNC_WAIT,
) -> Starlette:
    """Build the emulator's ASGI application.

    In ``actions`` mode this starts the bulk-action worker thread (it resumes the actions a
    database file left in progress); stop it with ``app.state.emulator.close()``, which also
    closes the store.

    :param store: where messages live.
    :param token: the token ``/v2`` routes require (``Authorization: Bearer`` or ``?qstash_token=``).
    :param faults: initial fault configuration (or a ready injector), ``None`` for none.
    :param request_log_size: how many ``/v2`` requests the log keeps.
    :param request_log_bytes: how many bytes of entries the log keeps (see :class:`RequestLog`).
    :param bulk_cancel: server generation: ``"actions"`` (hosted QStash since September 2026:
        filter cancels are background bulk actions) or ``"legacy"`` (the 2026-08 spec: ``count``
        honoured, synchronous).
    :param action_rate: messages per second a bulk action cancels (``actions`` mode).
    :param sync_wait: seconds a filter cancel without ``async=true`` waits for its action
        before answering 429 (``actions`` mode).
    :return: the app; its shared state is ``app.state.emulator`` (:class:`EmulatorState`).
    :raises ValueError: if ``token`` is empty or blank (every ``Bearer`` header would match it),
        or for an unknown mode, a rate that is not finite and > 0, or a wait that is not finite and >= 0.
    """
    check_token(token)
    if isinstance(faults, FaultInjector):
        injector, initial = faults, faults.config
    else:
        injector, initial = FaultInjector(faults), faults
    handlers: dict[Any, Callable[..., Any]] = {HTTPException: _http_exception}
    app = EmulatorApp(routes=ROUTES, exception_handlers=handlers)
    # No 307 from "/v2/messages/" to "/v2/messages": an empty message id must not turn a
    # single cancel into an unfiltered bulk cancel. Unknown paths answer 404 as they are.
    app.router.redirect_slashes = False
    actions = ActionStore(store)
    dlq = DeadLetterStore(store)
    actions.register(DLQ_DELETE_KIND, dlq.process_delete)
    actions.register(DLQ_RETRY_KIND, dlq.process_retry)
    mode = make_bulk_cancel(bulk_cancel, actions, action_rate=action_rate, sync_wait=sync_wait)
    app.state.emulator = EmulatorState(
        store=store,
        token=token,
        faults=injector,
        actions=actions,
        bulk_cancel=mode,
        dlq=dlq,
        url_groups=UrlGroupStore(store),
        initial_faults=initial,
        request_log=RequestLog(request_log_size, request_log_bytes),
    )
    mode.start()
    return app


#: The keyword options of :func:`create_app`; the CLI's arguments and the runners' attributes
#: (:class:`~qstash_emulator.server.QStashEmulator`) carry the same names.
APP_OPTIONS: tuple[str, ...] = ("request_log_size", "request_log_bytes", "bulk_cancel", "action_rate", "sync_wait")


def open_app(
    db: str,
    token: str,
    faults: FaultConfig | None,
    *,
    seed_messages: int = 0,
    seed_random: int = 0,
    **options: Any,
) -> Starlette:
    """:func:`create_app` over a new :class:`MessageStore` of ``db``, first seeded with ``seed_messages``
    generated messages (of seed ``seed_random``).

    :param options: the :data:`APP_OPTIONS` of :func:`create_app`.
    :raises ValueError: as :func:`create_app`, or when a generated id collides; the store is closed then.
    """
    store = MessageStore(db)
    try:
        if seed_messages:
            store.seed(seed_messages, seed_random)
        return create_app(store, token, faults, **options)
    except BaseException:
        store.close()
        raise


__all__ = [
    "APP_OPTIONS",
    "DEFAULT_REQUEST_LOG_SIZE",
    "EmulatorApp",
    "EmulatorState",
    "RequestLog",
    "check_token",
    "create_app",
    "error_response",
    "open_app",
]
