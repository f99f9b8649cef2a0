"""
The dead-letter queue's requests and answers: the deprecated paging API (list, delete, retry a page) and
the 2026-12 API (``/bulk`` actions, ``/multi`` id lists, single ids). Id lists are split by the one
splitter (:func:`~airflow_qstash.protocol.calls.split_ids`); the loops over pages and rounds are
:mod:`airflow_qstash.runs.dlq`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_qstash.exceptions import DLQEndpointsMissing, QStashAPIError, QStashInputError, redact
from airflow_qstash.filters import FilterValue
from airflow_qstash.inputs import DLQ_MAX_COUNT, parse_count
from airflow_qstash.protocol.answers import QUOTED_CHARS, read_count
from airflow_qstash.protocol.calls import Call, FilterQuery, Procedure, filter_requests, selects_all, split_ids
from airflow_qstash.protocol.endpoints import (
    DLQ_DELETE,
    DLQ_DELETE_BULK,
    DLQ_DELETE_MULTI,
    DLQ_MESSAGE,
    DLQ_RETRY,
    DLQ_RETRY_BULK,
    DLQ_RETRY_MESSAGE,
    DLQ_RETRY_MULTI,
    LIST_BULK_ACTIONS,
    LIST_DLQ,
    Endpoint,
)

# --------------------------------------------------------------------------- dead-letter queue
#
# ``DELETE /v2/dlq`` and ``POST /v2/dlq/retry`` take the DLQ filters (``DLQ_FILTERS`` in
# :mod:`airflow_qstash.filters`) and answer a ``cursor`` while more is left; ``GET /v2/dlq`` lists
# (no ``dlqIds``, no ``flowControlKey``); ``DELETE /v2/dlq/{dlqId}`` removes one entry. ``count`` is at
# most 100 on the list and the delete; the retry takes none. The loop over pages lives in
# :mod:`airflow_qstash.runs.dlq`; here are the requests and the answers.

#: Filters ``GET /v2/dlq`` does not take (its spec lists neither).
DLQ_LIST_UNSUPPORTED = ("dlqIds", "flowControlKey")
#: The characters a DLQ request's URL keeps free for what the paging loop appends (``count`` and a
#: ``cursor`` of up to 200 characters) when its query is split to fit.
DLQ_URL_RESERVE = len("&count=100&cursor=") + 200


@dataclass(frozen=True)
class DLQDeleted:
    """One ``DELETE /v2/dlq`` answer: how many entries it deleted, and the cursor if more are left."""

    deleted: int
    cursor: str | None = None


@dataclass(frozen=True)
class DLQRetried:
    """
    One ``POST /v2/dlq/retry`` answer: the new messages' ids (one per retried entry), how many of them
    QStash reported as deduplicated, and the cursor if more are left.
    """

    message_ids: tuple[str, ...]
    deduplicated: int = 0
    cursor: str | None = None


@dataclass(frozen=True)
class DLQPage:
    """One ``GET /v2/dlq`` page: the ``DLQMessage`` objects as QStash sent them, and the next cursor."""

    messages: tuple[dict[str, Any], ...]
    cursor: str | None = None


def _dlq_cursor(answer: Any, what: str) -> str | None:
    cursor = answer.get("cursor") if isinstance(answer, dict) else None
    if cursor is None or cursor == "":
        return None
    if not isinstance(cursor, str):
        raise QStashAPIError(f"QStash's {what} answer has a cursor that is not text: {redact(cursor, limit=100)}")
    return cursor


def read_dlq_deleted(answer: Any) -> DLQDeleted:
    """A ``DELETE /v2/dlq`` answer ``{"cursor", "deleted"}``; anything else is a clear error."""
    return DLQDeleted(read_count(answer, "deleted", "DLQ delete"), _dlq_cursor(answer, "DLQ delete"))


def read_dlq_retried(answer: Any) -> DLQRetried:
    """A ``POST /v2/dlq/retry`` answer ``{"cursor", "responses": [{"messageId", "deduplicated"}]}``."""
    responses = answer.get("responses") if isinstance(answer, dict) else None
    if not isinstance(responses, list):
        raise QStashAPIError(
            f"QStash's DLQ retry answer has no 'responses' array: {redact(answer, limit=QUOTED_CHARS)}"
        )
    ids: list[str] = []
    deduplicated = 0
    for item in responses:
        message_id = item.get("messageId") if isinstance(item, dict) else None
        if not isinstance(message_id, str) or not message_id:
            raise QStashAPIError(
                f"QStash's DLQ retry answer has a response without a messageId: {redact(item, limit=QUOTED_CHARS)}"
            )
        ids.append(message_id)
        deduplicated += item.get("deduplicated") is True
    return DLQRetried(tuple(ids), deduplicated, _dlq_cursor(answer, "DLQ retry"))


def read_dlq_page(answer: Any) -> DLQPage:
    """A ``GET /v2/dlq`` answer ``{"cursor", "messages": [...]}``."""
    messages = answer.get("messages") if isinstance(answer, dict) else None
    if not isinstance(messages, list) or not all(isinstance(item, dict) for item in messages):
        raise QStashAPIError(
            f"QStash's DLQ list answer has no 'messages' array of objects: {redact(answer, limit=QUOTED_CHARS)}"
        )
    return DLQPage(tuple(messages), _dlq_cursor(answer, "DLQ list"))


def dlq_requests(dlq_filter: FilterValue, endpoint: Endpoint, base_url: str) -> list[FilterQuery]:
    """
    The query of each request one DLQ delete or retry needs, in the spec's names (no ``count`` or
    ``cursor``: the loop adds those, and :data:`DLQ_URL_RESERVE` keeps room for them).

    A filter goes out as one query; one that does not fit one URL is refused. An id list (``dlqIds``) is
    split into parts of at most :data:`~airflow_qstash.inputs.DLQ_MAX_COUNT` ids, each short enough that
    no URL exceeds :data:`~airflow_qstash.protocol.endpoints.MAX_URL_LENGTH`; each part selects a
    disjoint set, so their counts add up.
    """
    return filter_requests(dlq_filter, base_url, endpoint.path, (), DLQ_MAX_COUNT, reserve=DLQ_URL_RESERVE)


def dlq_id_requests(
    dlq_ids: Iterable[str], endpoint: Endpoint, base_url: str, per_request: int = DLQ_MAX_COUNT
) -> list[list[tuple[str, str]]]:
    """
    The query of each request that acts on exactly these DLQ ids (``dlqIds``, which makes QStash ignore
    every other filter; also the ``/multi`` requests): at most ``per_request`` (1..100) ids a part, short
    enough that no URL exceeds :data:`~airflow_qstash.protocol.endpoints.MAX_URL_LENGTH`. No ids, no requests.
    """
    per_request = parse_count(per_request, "per_request", maximum=DLQ_MAX_COUNT)
    return split_ids(
        "dlqIds", dlq_ids, (), base_url, endpoint.path, per_request, reserve=DLQ_URL_RESERVE, what="dlq_ids"
    )


def dlq_list_params(dlq_filter: FilterValue) -> list[tuple[str, str]]:
    """The query of ``GET /v2/dlq`` for a filter; ``dlqIds`` and ``flowControlKey`` are refused (it takes neither)."""
    params = dlq_filter.to_query_params()
    unsupported = sorted({name for name, _ in params if name in DLQ_LIST_UNSUPPORTED})
    if unsupported:
        raise QStashInputError(
            f"GET /v2/dlq does not filter by {', '.join(unsupported)}; QStash would ignore it and list more "
            "than asked. Drop that filter to list."
        )
    return params


def _paged(params: Iterable[tuple[str, str]], cursor: str | None, count: int | None) -> tuple[tuple[str, str], ...]:
    out = list(params)
    if count is not None:
        out.append(("count", str(parse_count(count, "count", maximum=DLQ_MAX_COUNT))))
    if cursor:
        out.append(("cursor", cursor))
    return tuple(out)


def dlq_delete_page(
    params: Iterable[tuple[str, str]], cursor: str | None = None, count: int | None = DLQ_MAX_COUNT
) -> Procedure[DLQDeleted]:
    """One ``DELETE /v2/dlq`` with these filter parameters, the page size and the cursor of the last answer."""
    return read_dlq_deleted((yield Call(DLQ_DELETE, _paged(params, cursor, count), select_all=selects_all(params))))


def dlq_retry_page(
    params: Iterable[tuple[str, str]], cursor: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> Procedure[DLQRetried]:
    """
    One ``POST /v2/dlq/retry`` with these filter parameters and the cursor of the last answer;
    ``headers`` are the ``Upstash-*`` overrides of the retried messages' settings. A 404 (some selected
    entries vanished meanwhile) is raised as a :class:`QStashAPIError` for the caller to handle.
    """
    call = Call(DLQ_RETRY, _paged(params, cursor, None), headers=tuple(headers), select_all=selects_all(params))
    return read_dlq_retried((yield call))


def list_dlq_page(
    params: Iterable[tuple[str, str]] = (), cursor: str | None = None, count: int = DLQ_MAX_COUNT
) -> Procedure[DLQPage]:
    """One ``GET /v2/dlq`` page of at most ``count`` (1..100) entries."""
    return read_dlq_page((yield Call(LIST_DLQ, _paged(params, cursor, count))))


def delete_dlq_message(dlq_id: str) -> Procedure[None]:
    """
    ``DELETE /v2/dlq/{dlqId}``: remove one entry. An empty or dot-segment id is refused before sending, by
    the :class:`Call` itself, naming ``dlq_id`` (the endpoint's ``id_name``).
    """
    yield Call(DLQ_MESSAGE, path_id=dlq_id)
    return None


# --------------------------------------------------------------------------- DLQ, the 2026-12 API
#
# The API reference read on 2026-12-05 (``docs/`` and ``/work/shared/reference/qstash-bulk-actions.md``,
# section DLQ) splits each DLQ bulk operation into Async Bulk (``/bulk``: starts a bulk action), Multiple
# IDs (``/multi``), Single ID (``/{dlqId}``) and the deprecated Sync Bulk (the paging API above). What the
# reference does not publish is assumed here, ONCE, and every reading below accepts each plausible answer:
#
# * ASSUMED (``/bulk`` answer): any 2xx (the transports hand every 2xx over alike, so 200 and 202 read the
#   same) whose JSON object carries a non-empty ``actionId``; every other field (``kind``, ``state``,
#   ``total``, ``createdAt``...) is optional and ignored unless usable. The action is then read with
#   ``GET /v2/bulkActions/{actionId}`` like a message cancel's; its ``kind`` (``dlqDelete``/``dlqRetry``
#   on the emulator; unpublished) is never checked: an unknown kind is fine.
# * ASSUMED (``/bulk`` request): the Sync Bulk page's filters in the same query names; ``dlqIds``,
#   ``count`` and ``cursor`` are not sent (ids go to ``/multi``).
# * ASSUMED (``/multi`` request): ids as repeated ``dlqIds`` query parameters (the Sync Bulk page's name;
#   the emulator also reads a JSON body ``{"dlqIds": [...]}``, the Workflow twin's example) and at most
#   :data:`~airflow_qstash.inputs.DLQ_MAX_COUNT` ids a request, each request's URL within
#   :data:`~airflow_qstash.protocol.endpoints.MAX_URL_LENGTH`; a server that reads only a body answers 400
#   ("dlqIds required") and the run fails naming it: ``/multi`` takes no filter, so it can never act wider
#   than its ids.
# * ASSUMED (``/multi`` answers): delete ``{"deleted": n}``; retry ``{"responses": [{"messageId"}]}``
#   (as the Sync Bulk answers, without a cursor; one is followed if sent) and a 404 when some ids are gone.
# * ASSUMED (single id): ``DELETE /v2/dlq/{dlqId}`` (any 2xx, body ignored) and ``POST /v2/dlq/retry/{dlqId}``
#   ``{"messageId"}`` (or the ``/multi`` shape); 404 when the entry is gone.
# * ASSUMED (an older server): a server without these endpoints answers 404 on ``/bulk`` and on the
#   delete's ``/multi`` (they fall through to ``/v2/dlq/{dlqId}``: "entry bulk not found"); a retry's
#   ``/multi`` 404 is ambiguous (ids gone, or no such endpoint), so it is told apart once per run by
#   ``GET /v2/bulkActions``: a server that lists bulk actions is taken to have the 2026-12 DLQ API.


@dataclass(frozen=True)
class DLQActionStarted:
    """
    A ``/bulk`` answer: the bulk action's id, and its ``createdAt`` (Unix ms) when the answer carries one
    (an action created before the run started is one an identical earlier request started: joined).
    """

    action_id: str
    created_at: int | None = None


def read_dlq_action_started(answer: Any) -> DLQActionStarted:
    """A ``/bulk`` answer (see the assumptions above): an object with a non-empty ``actionId``."""
    action_id = answer.get("actionId") if isinstance(answer, dict) else None
    if not isinstance(action_id, str) or not action_id.strip():
        raise QStashAPIError(f"QStash's DLQ bulk action answer has no 'actionId': {redact(answer, limit=QUOTED_CHARS)}")
    created = answer.get("createdAt")
    created_at = created if isinstance(created, int) and not isinstance(created, bool) and created >= 0 else None
    return DLQActionStarted(action_id, created_at)


def _endpoints_missing(err: QStashAPIError, call_name: str) -> DLQEndpointsMissing:
    return DLQEndpointsMissing(
        f"{call_name} answered 404: this server has no 2026-12 DLQ API ({err.api_error or err})",
        http_status=404,
        api_error=err.api_error,
    )


def start_dlq_action(
    endpoint: Endpoint, params: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]] = ()
) -> Procedure[DLQActionStarted]:
    """
    Start a DLQ bulk action (:data:`DLQ_DELETE_BULK` / :data:`DLQ_RETRY_BULK`) over the filter ``params``
    (from :func:`dlq_requests`; a filterless query goes out only if it was built with the all-flag);
    ``headers`` are a retry's ``Upstash-*`` overrides. A 404 raises :class:`DLQEndpointsMissing`.
    """
    if endpoint not in (DLQ_DELETE_BULK, DLQ_RETRY_BULK):
        raise QStashInputError(f"{endpoint.method} {endpoint.path} does not start a DLQ bulk action.")
    call = Call(endpoint, tuple(params), headers=tuple(headers), select_all=selects_all(params))
    try:
        answer = yield call
    except QStashAPIError as err:
        if err.http_status == 404:
            raise _endpoints_missing(err, f"{endpoint.method} {endpoint.path}") from err
        raise
    return read_dlq_action_started(answer)


def dlq_delete_multi(params: Iterable[tuple[str, str]]) -> Procedure[int]:
    """
    ``DELETE /v2/dlq/multi`` with these ``dlqIds``: how many it deleted (ids already gone count 0). A 404
    raises :class:`DLQEndpointsMissing` (an older server: the path reached ``/v2/dlq/{dlqId}``).
    """
    query = tuple(params)
    if not query or any(name != "dlqIds" for name, _ in query):
        raise QStashInputError("DELETE /v2/dlq/multi takes dlqIds only, and at least one.")
    try:
        answer = yield Call(DLQ_DELETE_MULTI, query)
    except QStashAPIError as err:
        if err.http_status == 404:
            raise _endpoints_missing(err, "DELETE /v2/dlq/multi") from err
        raise
    return read_count(answer, "deleted", "DLQ multi delete")


def dlq_retry_multi(
    params: Iterable[tuple[str, str]], headers: Iterable[tuple[str, str]] = ()
) -> Procedure[DLQRetried]:
    """
    ``POST /v2/dlq/retry/multi`` with these ``dlqIds`` and the overrides: the new messages. A 404 is raised
    as it came (:class:`QStashAPIError`): some ids are gone, or the server is older (the caller tells which).
    """
    query = tuple(params)
    if not query or any(name != "dlqIds" for name, _ in query):
        raise QStashInputError("POST /v2/dlq/retry/multi takes dlqIds only, and at least one.")
    return read_dlq_retried((yield Call(DLQ_RETRY_MULTI, query, headers=tuple(headers))))


def dlq_retry_one(dlq_id: str, headers: Iterable[tuple[str, str]] = ()) -> Procedure[DLQRetried]:
    """``POST /v2/dlq/retry/{dlqId}``: the new message (``{"messageId"}``, or the ``/multi`` shape). 404: gone."""
    answer = yield Call(DLQ_RETRY_MESSAGE, path_id=dlq_id, headers=tuple(headers))
    if isinstance(answer, dict) and "responses" not in answer:
        answer = {"responses": [answer]}
    return read_dlq_retried(answer)


def dlq_delete_one(dlq_id: str) -> Procedure[int]:
    """``DELETE /v2/dlq/{dlqId}`` (:func:`delete_dlq_message`): 1 when deleted, 0 when already gone (404)."""
    try:
        yield from delete_dlq_message(dlq_id)
    except QStashAPIError as err:
        if err.http_status == 404:
            return 0
        raise
    return 1


def has_bulk_actions() -> Procedure[bool]:
    """
    Whether the server lists bulk actions (``GET /v2/bulkActions?count=1``): ``False`` on a 404. Tells an
    older server from vanished ids after an ambiguous 404 (see the assumptions above).
    """
    try:
        yield Call(LIST_BULK_ACTIONS, (("count", "1"),))
    except QStashAPIError as err:
        if err.http_status == 404:
            return False
        raise
    return True
