"""
The wire, for both transports: the endpoints, how each request is encoded, how each answer is read, and
the few multi-request procedures (paging, finding a running bulk action) as sans-IO generators.

Nothing here sends a request. A procedure yields :class:`Call` (send this, give me the parsed answer or
throw the error in) and :class:`Sleep` (pause this long); :mod:`airflow_qstash.hooks.qstash` drives the
same generator with ``requests`` on a worker and with ``httpx`` in the triggerer, so every wire decision
exists once.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from airflow_qstash.config import RetryPolicy
from airflow_qstash.exceptions import (
    QStashActionConflict,
    QStashAPIError,
    QStashInputError,
    QStashRetryableError,
    redact,
)
from airflow_qstash.filters import BulkCancelFilter, FilterValue
from airflow_qstash.inputs import DLQ_MAX_COUNT, now_ms, parse_count

_T = TypeVar("_T")

#: The longest request URL sent; longer ``message_ids`` lists are split across requests.
MAX_URL_LENGTH = 4096


# --------------------------------------------------------------------------- endpoints, declared once


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint: its method and path; ``{id}`` stands for one percent-encoded path segment."""

    method: str
    path: str
    id_name: str = "id"

    def url_path(self, path_id: str | None = None) -> str:
        """The request path; an id is checked and encoded into exactly one segment."""
        if "{id}" not in self.path:
            return self.path
        return self.path.replace("{id}", path_segment(path_id, self.id_name))


BULK_CANCEL = Endpoint("DELETE", "/v2/messages")
CANCEL_MESSAGE = Endpoint("DELETE", "/v2/messages/{id}", "message_id")
LIST_BULK_ACTIONS = Endpoint("GET", "/v2/bulkActions")
GET_BULK_ACTION = Endpoint("GET", "/v2/bulkActions/{id}", "action_id")
#: A cheap, read-only, authenticated call for the connection's Test button.
LIST_QUEUES = Endpoint("GET", "/v2/queues")
#: The dead-letter queue: list, bulk delete, bulk retry, delete one entry.
LIST_DLQ = Endpoint("GET", "/v2/dlq")
DLQ_DELETE = Endpoint("DELETE", "/v2/dlq")
DLQ_RETRY = Endpoint("POST", "/v2/dlq/retry")
DLQ_MESSAGE = Endpoint("DELETE", "/v2/dlq/{id}", "dlq_id")

ENDPOINTS: dict[str, Endpoint] = {
    "bulk_cancel": BULK_CANCEL,
    "cancel_message": CANCEL_MESSAGE,
    "list_bulk_actions": LIST_BULK_ACTIONS,
    "get_bulk_action": GET_BULK_ACTION,
    "list_queues": LIST_QUEUES,
    "list_dlq": LIST_DLQ,
    "dlq_delete": DLQ_DELETE,
    "dlq_retry": DLQ_RETRY,
    "delete_dlq_message": DLQ_MESSAGE,
}

#: States of a bulk action (``GET /v2/bulkActions/{actionId}``).
IN_PROGRESS = "IN_PROGRESS"
FINISHED = "FINISHED"
ACTION_STATES = (IN_PROGRESS, FINISHED)


def path_segment(value: Any, name: str) -> str:
    """
    ``value`` as exactly one percent-encoded path segment, or a refusal.

    Empty and white-space-only ids are refused, and so is any id with a ``.`` or ``..`` segment (also
    percent-encoded, or behind ``/`` or ``\\``): clients and proxies remove dot segments, so
    ``DELETE /v2/messages/..`` would reach ``DELETE /v2/`` and an id like ``a/..`` the bulk endpoint.
    """
    if not isinstance(value, str) or not value.strip():
        raise QStashInputError(
            f"{name} is empty: a request with no id would reach the collection endpoint instead "
            "(for messages: the bulk cancel, which cancels every message). Give the id."
        )
    text = value.strip()
    decoded = unquote(text)
    for candidate in (text, decoded):
        segments = candidate.replace("\\", "/").split("/")
        if any(segment.strip() in (".", "..") for segment in segments):
            raise QStashInputError(
                f"{name}={value!r} is or contains a dot segment ('.' or '..'), which URL normalisation "
                "removes: the request would reach another path. Give the real id."
            )
    return quote(text, safe="")


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Call:
    """
    One request for the driver to send; the driver sends back the parsed JSON answer or throws the error.

    :param endpoint: what to call.
    :param params: query parameters, in order.
    :param path_id: the id for an endpoint with ``{id}`` in its path.
    :param conflict_aware: a filter cancel: a 412, or a 429 without rate-limit headers, means an identical
        bulk action is running (:class:`QStashActionConflict`), not "slow down".
    :param headers: extra request headers (never the token: the driver adds that).
    :param select_all: the DAG author's ``cancel_all``/``delete_all``/``retry_all`` was true, so this call
        may carry no filter. Without it a filterless bulk call is refused when sent
        (:func:`refuse_unfiltered_bulk_call`).
    """

    endpoint: Endpoint
    params: tuple[tuple[str, str], ...] = ()
    path_id: str | None = None
    conflict_aware: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    select_all: bool = False

    def __post_init__(self) -> None:
        self.endpoint.url_path(self.path_id)  # an id that cannot be one path segment is refused here

    @property
    def method(self) -> str:
        return self.endpoint.method

    @property
    def path(self) -> str:
        return self.endpoint.url_path(self.path_id)


#: The requests that act on everything when they carry no filter: the bulk cancel, and the DLQ's bulk
#: delete and retry (with the ``/bulk`` forms of the 2026 DLQ API, should a caller build them).
UNFILTERED_ACTS_ON_EVERYTHING = frozenset(
    {
        ("DELETE", "/v2/messages"),
        ("DELETE", "/v2/dlq"),
        ("POST", "/v2/dlq/retry"),
        ("DELETE", "/v2/dlq/bulk"),
        ("POST", "/v2/dlq/retry/bulk"),
    }
)
#: Query parameters that page or shape a request but select nothing.
NOT_FILTERS = frozenset({"count", "async", "cursor"})


def _effective_path(path: str) -> str:
    """A URL path as a client or server normalises it: percent-decoded, empty and dot segments resolved."""
    segments: list[str] = []
    for segment in unquote(path).replace("\\", "/").split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "/" + "/".join(segments)


def refuse_unfiltered_bulk_call(call: Call, base_url: str = "") -> None:
    """
    The last line before the network, run by both hooks' ``send`` before any request: a request that would
    act on every message (``DELETE /v2/messages``) or every DLQ entry (``DELETE /v2/dlq``,
    ``POST /v2/dlq/retry`` and their ``/bulk`` forms) with no filter is refused unless the :class:`Call`
    was built with ``select_all`` (the author's ``cancel_all``/``delete_all``/``retry_all``).

    It judges the URL that would go out (``base_url`` + the call's path, normalised, with any query the
    base URL smuggled in), so it also catches a base URL that swallows the path (``.../v2/messages#``
    turned ``cancel_message(id)`` into ``DELETE /v2/messages``). The filter values are checked long before
    (:mod:`airflow_qstash.filters`); this guard catches any other road to such a request.

    :raises QStashInputError: (a ``ValueError``) the call selects everything and was not meant to.
    """
    url = urlsplit(base_url + call.path)
    method, path = call.method.upper(), _effective_path(url.path)
    if (method, path) not in UNFILTERED_ACTS_ON_EVERYTHING or (call.select_all and path == call.endpoint.path):
        return
    params = [*call.params, *parse_qsl(url.query, keep_blank_values=True)]
    if any(name not in NOT_FILTERS and str(value).strip() for name, value in params):
        return
    raise QStashInputError(
        f"Refused to send {method} {path} with no filter: it would act on "
        f"{'every message' if path == '/v2/messages' else 'every DLQ entry'}, and this request was not made "
        "with cancel_all/delete_all/retry_all. Nothing was sent. Give a filter (or the all-flag, if everything "
        "is really meant); check that the connection's host is only scheme://host[:port]."
    )


class FilterQuery(list[tuple[str, str]]):
    """
    The query parameters of one bulk request, carrying whether the author allowed selecting everything
    (``select_all``), so the :class:`Call` built from them is marked the same way.
    """

    select_all: bool = False

    @classmethod
    def of(cls, params: Iterable[tuple[str, str]], select_all: bool) -> FilterQuery:
        query = cls(params)
        query.select_all = select_all is True
        return query


def _select_all(params: Iterable[tuple[str, str]]) -> bool:
    return getattr(params, "select_all", False) is True


@dataclass(frozen=True)
class Sleep:
    """A pause the driver takes (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


Effect = Call | Sleep
Procedure = Generator[Effect, Any, _T]


def one_call(call: Call) -> Procedure[Any]:
    """The procedure of a single request: its parsed answer."""
    return (yield call)


# --------------------------------------------------------------------------- answers


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number == number and abs(number) != float("inf") else None


_RATE_LIMIT_HEADERS = (
    "Burst-RateLimit-Reset",
    "Burst-RateLimit-Remaining",
    "Burst-RateLimit-Limit",
    "RateLimit-Reset",
    "RateLimit-Remaining",
    "RateLimit-Limit",
    "Retry-After",
)


def has_rate_limit_headers(headers: Mapping[str, str]) -> bool:
    """Whether a 429 says it is a rate limit (``Burst-RateLimit-*``, ``RateLimit-*`` or ``Retry-After``)."""
    return any(headers.get(name) is not None for name in _RATE_LIMIT_HEADERS)


def rate_limit_wait(headers: Mapping[str, str], now: float) -> float | None:
    """
    Seconds until QStash lets the caller try again, from a 429's headers; ``None`` if it did not say.

    The burst window (``Burst-RateLimit-*``) is preferred when it is the one spent, then the daily one
    (``RateLimit-*``), then ``Retry-After``. Reset headers are Unix seconds.
    """
    candidates = [
        (_header_number(headers, f"{prefix}RateLimit-Remaining"), _header_number(headers, f"{prefix}RateLimit-Reset"))
        for prefix in ("Burst-", "")
    ]
    resets = [reset for remaining, reset in candidates if reset is not None and remaining == 0]
    resets = resets or [reset for _, reset in candidates if reset is not None]
    if resets:
        return max(0.0, resets[0] - now)
    retry_after = _header_number(headers, "Retry-After")
    return max(0.0, retry_after) if retry_after is not None else None


#: The most bytes of one answer either transport reads. A larger answer (by its ``Content-Length``, or once
#: this many bytes have arrived) is refused without reading the rest. The largest real answer is a DLQ page
#: of 100 entries, each with a message body and the last response body (QStash keeps message bodies up to
#: 10 MB on its paid plans); ask such a listing for fewer entries per page.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: How many characters of a server's text an error quotes (its JSON ``error`` text gets more).
QUOTED_CHARS = 200
QUOTED_ERROR_CHARS = 500


def declared_length(headers: Mapping[str, str]) -> int | None:
    """An answer's ``Content-Length`` as a number, or ``None`` when it has none or an unreadable one."""
    value = headers.get("Content-Length")
    if value is None or not str(value).strip().isdecimal():
        return None
    return int(str(value).strip())


def answer_too_large(call: Call, status: int, size: int | None) -> QStashAPIError:
    """
    The error for an answer larger than :data:`MAX_ANSWER_BYTES`: ``size`` is its ``Content-Length``, or
    ``None`` when it had none and more than the cap arrived. Nothing past the cap was read.
    """
    told = f"of {size:,} bytes by its Content-Length" if size is not None else "without a Content-Length"
    return QStashAPIError(
        f"QStash {call.method} {call.endpoint.path} answered {status} with a body {told}, more than the "
        f"{MAX_ANSWER_BYTES:,} bytes this provider reads; nothing past that was read. Check the connection's "
        "host (is it QStash?); a DLQ listing takes a smaller count.",
        http_status=status,
    )


def decode_body(headers: Mapping[str, str], raw: bytes) -> str:
    """An answer's bytes as text: the ``charset`` of its ``Content-Type``, else UTF-8 (JSON's encoding)."""
    content_type = str(headers.get("Content-Type") or "")
    charset = "utf-8"
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _api_error_text(body: str, secret: str | None = None) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return redact(data["error"], secret, limit=QUOTED_ERROR_CHARS)
    return redact(body.strip(), secret, limit=QUOTED_CHARS) or "(empty body)"


def read_answer(
    call: Call, status: int, headers: Mapping[str, str], body: str, policy: RetryPolicy, secret: str | None = None
) -> Any:
    """
    Read one answer: the parsed JSON of a 2xx, or the right error, its text redacted of ``secret``.

    A 3xx is never followed: it fails with the status and the ``Location`` (a redirect that dropped the
    query string would turn a filtered cancel into a cancel of everything). 429 and 5xx raise
    :class:`QStashRetryableError` (with QStash's reset wait for a 429); on a filter cancel a 412, or a 429
    without rate-limit headers, raises :class:`QStashActionConflict`; a reset further away than
    ``policy.max_rate_limit_wait`` and every other status raise :class:`QStashAPIError` with the status and
    QStash's ``error`` text.
    """
    where = f"QStash {call.method} {call.endpoint.path}"
    if 200 <= status < 300:
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            shown = redact(body, secret, limit=QUOTED_CHARS)  # redacted before the cut, and then cut
            raise QStashAPIError(
                redact(f"{where} answered {status} with a body that is not JSON: {shown!r}", secret),
                http_status=status,
            ) from None
    if 300 <= status < 400:
        location = redact(str(headers.get("Location") or "(no Location header)"), secret, limit=300)
        raise QStashAPIError(
            f"{where} answered {status} redirecting to {location}; this provider never follows redirects "
            "(the target would get the token, and a redirect that drops the query would cancel more). Put the "
            "final base URL in the connection's host.",
            http_status=status,
        )
    api_error = _api_error_text(body, secret)
    message = f"{where} failed with {status}: {api_error}"
    if call.conflict_aware and (status == 412 or (status == 429 and not has_rate_limit_headers(headers))):
        raise QStashActionConflict(message, http_status=status, api_error=api_error)
    if status == 429:
        wait = rate_limit_wait(headers, now_ms() / 1000)
        if wait is not None and wait > policy.max_rate_limit_wait:
            raise QStashAPIError(
                f"{message}. The rate limit resets in {wait:.0f} s, later than max_rate_limit_wait="
                f"{policy.max_rate_limit_wait:g} s (a spent daily quota?); run again after the reset.",
                http_status=status,
                api_error=api_error,
            )
        raise QStashRetryableError(message, wait=wait, http_status=status, api_error=api_error)
    if status >= 500:
        raise QStashRetryableError(message, http_status=status, api_error=api_error)
    hint = {401: " Check the token in the connection's password.", 404: " Check the connection's host."}
    if status in hint and not message.endswith("."):
        message += "."
    raise QStashAPIError(message + hint.get(status, ""), http_status=status, api_error=api_error)


def _count(answer: Any, key: str, what: str) -> int:
    value = answer.get(key) if isinstance(answer, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QStashAPIError(f"QStash's {what} answer has no valid {key!r} count: {redact(answer, limit=QUOTED_CHARS)}")
    return value


def read_cancelled(answer: Any) -> int:
    """The ``cancelled`` count of a synchronous bulk cancel's JSON answer."""
    return _count(answer, "cancelled", "bulk cancel")


# --------------------------------------------------------------------------- bulk cancel


@dataclass(frozen=True)
class BatchCancelled:
    """A synchronous answer: QStash cancelled ``cancelled`` messages (a legacy server, or explicit ids)."""

    cancelled: int


@dataclass(frozen=True)
class ActionStarted:
    """A background bulk action now runs (or already ran) the cancel; follow it with its id."""

    action_id: str
    joined: bool = False


BulkCancelAnswer = BatchCancelled | ActionStarted


def read_bulk_cancel_answer(answer: Any) -> BulkCancelAnswer:
    """A 2xx bulk-cancel answer: ``{"actionId"}`` is a bulk action, ``{"cancelled"}`` a synchronous batch."""
    if isinstance(answer, dict):
        action_id = answer.get("actionId")
        if isinstance(action_id, str) and action_id.strip():
            return ActionStarted(action_id)
        if "cancelled" in answer:
            return BatchCancelled(read_cancelled(answer))
    raise QStashAPIError(
        "QStash's bulk cancel answer has neither an 'actionId' nor a 'cancelled' count: "
        f"{redact(answer, limit=QUOTED_CHARS)}"
    )


def bulk_cancel_requests(
    bulk_filter: BulkCancelFilter, count: int | None, base_url: str
) -> list[list[tuple[str, str]]]:
    """
    The query of each ``DELETE /v2/messages`` request one bulk cancel needs, in the spec's names.

    Usually one; a long ``message_ids`` list is split so no URL exceeds :data:`MAX_URL_LENGTH`. A filter
    cancel asks for a background bulk action (``async=true``) and still sends ``count``, which a server of
    the 2026-08 generation honours and today's hosted QStash ignores.
    """
    count_param = [] if count is None else [("count", str(parse_count(count)))]
    async_param = [] if bulk_filter.message_ids else [("async", "true")]
    room = MAX_URL_LENGTH - len(base_url) - len(BULK_CANCEL.path) - len("?&count=500&async=true")
    return [
        FilterQuery.of(part.to_query_params() + count_param + async_param, bulk_filter.select_all)
        for part in bulk_filter.split_message_ids(room)
    ]


def filter_key(params: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """
    A comparable form of a filter: parameter name → sorted values, from query parameters or from a bulk
    action's ``filter`` object (values split on commas, as QStash reads them). ``count`` and ``async``
    are not part of a filter.
    """
    items: Iterable[tuple[str, Any]] = params.items() if isinstance(params, Mapping) else params
    out: dict[str, list[str]] = {}
    for name, value in items:
        if name in ("count", "async", "cursor"):
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            out.setdefault(name, []).extend(part.strip() for part in str(item).split(",") if part.strip())
    return {name: tuple(sorted(values)) for name, values in out.items() if values}


# --------------------------------------------------------------------------- bulk actions


@dataclass(frozen=True)
class BulkAction:
    """One bulk action as ``GET /v2/bulkActions/{actionId}`` reports it."""

    action_id: str
    state: str
    total: int
    processed: int
    created_at: int | None = None
    completed_at: int | None = None
    filter: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


def read_bulk_action(answer: Any) -> BulkAction:
    """Read a ``BulkAction`` object; anything malformed is a clear error."""
    if not isinstance(answer, dict) or not isinstance(answer.get("actionId"), str):
        raise QStashAPIError(f"QStash's bulk action answer has no 'actionId': {redact(answer, limit=QUOTED_CHARS)}")
    action = redact(answer["actionId"], limit=100)
    state = answer.get("state")
    if state not in ACTION_STATES:
        raise QStashAPIError(f"QStash's bulk action {action!r} has an unknown state {redact(repr(state), limit=100)}.")
    raw_filter = answer.get("filter") or {}
    if not isinstance(raw_filter, dict):
        raise QStashAPIError(f"QStash's bulk action {action!r} has a malformed filter.")
    return BulkAction(
        action_id=answer["actionId"],
        state=state,
        total=_count(answer, "total", "bulk action"),
        processed=_count(answer, "processed", "bulk action"),
        created_at=answer.get("createdAt") if isinstance(answer.get("createdAt"), int) else None,
        completed_at=answer.get("completedAt") if isinstance(answer.get("completedAt"), int) else None,
        filter=filter_key(raw_filter),
    )


#: The most pages one listing reads (1000 actions a page: far more than 7 days of actions).
MAX_LIST_PAGES = 10_000


def list_bulk_actions(state: str | None = None, *, page_size: int = 1000) -> Procedure[list[BulkAction]]:
    """
    Every bulk action (of ``state``): pages until no ``cursor`` comes back; a page may be short or empty
    before the end (QStash filters by state per page). Bounded by :data:`MAX_LIST_PAGES`.
    """
    if state is not None and state not in ACTION_STATES:
        raise QStashInputError(f"state must be one of {', '.join(ACTION_STATES)} or None, not {state!r}.")
    if not 1 <= page_size <= 1000:
        raise QStashInputError(f"page_size must be from 1 to 1000, not {page_size!r}.")
    actions: list[BulkAction] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_LIST_PAGES):
        params = [("count", str(page_size))] + ([("state", state)] if state else [])
        params += [("cursor", cursor)] if cursor else []
        answer = yield Call(LIST_BULK_ACTIONS, tuple(params))
        page = answer.get("bulkActions") if isinstance(answer, dict) else None
        if not isinstance(page, list):
            raise QStashAPIError(
                f"QStash's bulk action list has no 'bulkActions' array: {redact(answer, limit=QUOTED_CHARS)}"
            )
        actions.extend(read_bulk_action(item) for item in page)
        next_cursor = answer.get("cursor")
        if not next_cursor:
            return actions
        cursor = str(next_cursor)
        if cursor in seen:
            raise QStashAPIError(
                f"QStash's bulk action list returned the same cursor twice ({redact(cursor, limit=100)!r})."
            )
        seen.add(cursor)
    raise QStashAPIError(f"QStash's bulk action list did not end within {MAX_LIST_PAGES} pages.")


def get_bulk_action(action_id: str) -> Procedure[BulkAction]:
    """The current state of one bulk action."""
    return read_bulk_action((yield Call(GET_BULK_ACTION, path_id=action_id)))


#: How often a conflicting start (412 / 429 without rate-limit headers) is retried when no matching
#: action can be found, and the pauses between tries (seconds, doubling up to the poll ceiling).
CONFLICT_ATTEMPTS = 8
CONFLICT_BACKOFF = 1.0


def start_bulk_cancel(
    params: list[tuple[str, str]],
    *,
    max_pause: float = 10.0,
    exclude: Iterable[str] = (),
    not_before_ms: int | None = None,
) -> Procedure[BulkCancelAnswer]:
    """
    Send one bulk cancel with these query parameters and read its answer.

    When the server says an identical cancel is already running (412, or a 429 without rate-limit
    headers, e.g. after the one-minute wait of a cancel sent without ``async``), the bulk actions are
    listed and the one with our filter is joined (``joined``): the ``IN_PROGRESS`` one, or else, since a
    small action may finish before the listing, the newest ``FINISHED`` one created at or after
    ``not_before_ms`` that is not in ``exclude`` (the actions this run already followed). If none is found
    the start is tried again after a pause, at most :data:`CONFLICT_ATTEMPTS` times. A task never fails
    only because the server's wait ran out.

    :param params: the query, from :func:`bulk_cancel_requests`.
    :param max_pause: the ceiling of the pause between tries, in seconds.
    :param exclude: action ids never to join.
    :param not_before_ms: the earliest ``createdAt`` (Unix ms) of a finished action that may be joined;
        ``None`` joins only running actions.
    """
    is_filter_cancel = not any(name == "messageIds" for name, _ in params)
    ours = filter_key(params)
    excluded = set(exclude)
    pause = min(CONFLICT_BACKOFF, max_pause)
    last: QStashActionConflict | None = None
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            yield Sleep(pause)
            pause = min(pause * 2, max_pause)
        try:
            call = Call(BULK_CANCEL, tuple(params), conflict_aware=is_filter_cancel, select_all=_select_all(params))
            return read_bulk_cancel_answer((yield call))
        except QStashActionConflict as err:
            last = err
        # A 429 without rate-limit headers: our start was accepted and its action runs or already ran, so the
        # newest action with our filter is ours. A 412 started nothing: only a running action with our filter
        # may be followed; a finished one may be an earlier run's, whose zero would end this run with
        # messages left, so the start is tried again instead.
        finished_since = not_before_ms if last.http_status == 429 else None
        actions = yield from list_bulk_actions(None if finished_since is not None else IN_PROGRESS)
        joinable = joinable_action(actions, ours, excluded, finished_since)
        if joinable is not None:
            return ActionStarted(joinable.action_id, joined=True)
    raise QStashAPIError(
        f"{last} — tried {CONFLICT_ATTEMPTS} times and found no bulk action with this filter to follow; "
        "run the task again later.",
        http_status=last.http_status if last else None,
        api_error=last.api_error if last else None,
    )


def joinable_action(
    actions: Iterable[BulkAction], ours: Mapping[str, tuple[str, ...]], exclude: set[str], not_before_ms: int | None
) -> BulkAction | None:
    """The running action with our filter, else the newest finished one that may be ours (see above)."""
    mine = [action for action in actions if action.filter == ours and action.action_id not in exclude]
    running = [action for action in mine if not action.finished]
    if running:
        return running[0]
    if not_before_ms is None:
        return None
    recent = [a for a in mine if a.created_at is not None and a.created_at >= not_before_ms]
    return max(recent, key=lambda action: action.created_at or 0, default=None)


def bulk_cancel_total(bulk_filter: BulkCancelFilter, count: int | None, base_url: str) -> Procedure[BulkCancelAnswer]:
    """
    One bulk cancel as the hook's ``bulk_cancel`` makes it: the ids split into as many synchronous requests
    as the URL length needs (their counts added), or one filter cancel.
    """
    requests = bulk_cancel_requests(bulk_filter, count, base_url)
    total = 0
    for params in requests:
        answer = yield from start_bulk_cancel(params)
        if isinstance(answer, ActionStarted):
            if len(requests) != 1:
                raise QStashAPIError("QStash answered a split message_ids cancel with a bulk action.")
            return answer
        total += answer.cancelled
    return BatchCancelled(total)


__all__ = [
    "ACTION_STATES",
    "BULK_CANCEL",
    "CANCEL_MESSAGE",
    "ENDPOINTS",
    "FINISHED",
    "GET_BULK_ACTION",
    "IN_PROGRESS",
    "LIST_BULK_ACTIONS",
    "LIST_QUEUES",
    "MAX_ANSWER_BYTES",
    "MAX_URL_LENGTH",
    "ActionStarted",
    "BatchCancelled",
    "BulkAction",
    "Call",
    "Endpoint",
    "FilterQuery",
    "Sleep",
    "answer_too_large",
    "bulk_cancel_requests",
    "declared_length",
    "decode_body",
    "filter_key",
    "get_bulk_action",
    "list_bulk_actions",
    "path_segment",
    "rate_limit_wait",
    "read_answer",
    "read_bulk_action",
    "read_bulk_cancel_answer",
    "read_cancelled",
    "refuse_unfiltered_bulk_call",
    "start_bulk_cancel",
]


# --------------------------------------------------------------------------- dead-letter queue
#
# ``DELETE /v2/dlq`` and ``POST /v2/dlq/retry`` take the DLQ filters (``DLQ_FILTERS`` in
# :mod:`airflow_qstash.filters`) and answer a ``cursor`` while more is left; ``GET /v2/dlq`` lists
# (no ``dlqIds``, no ``flowControlKey``); ``DELETE /v2/dlq/{dlqId}`` removes one entry. ``count`` is at
# most 100 on the list and the delete; the retry takes none. The loop over pages lives in
# :mod:`airflow_qstash.dlq`; here are the requests and the answers.

#: Filters ``GET /v2/dlq`` does not take (its spec lists neither).
DLQ_LIST_UNSUPPORTED = ("dlqIds", "flowControlKey")


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
    return DLQDeleted(_count(answer, "deleted", "DLQ delete"), _dlq_cursor(answer, "DLQ delete"))


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


def dlq_requests(dlq_filter: FilterValue, endpoint: Endpoint, base_url: str) -> list[list[tuple[str, str]]]:
    """
    The query of each request one DLQ delete or retry needs, in the spec's names (no ``count`` or
    ``cursor``: the loop adds those).

    A filter goes out as one query. An id list (``dlqIds``) is split into parts of at most
    :data:`DLQ_MAX_COUNT` ids, each short enough that no URL exceeds :data:`MAX_URL_LENGTH`; each part
    selects a disjoint set, so their counts add up. A filter that does not fit one URL is refused.
    """
    params = dlq_filter.to_query_params()
    ids_name = dlq_filter.TABLE.ids_name
    ids_param = dlq_filter.TABLE[ids_name].param if ids_name else None
    room = MAX_URL_LENGTH - len(base_url) - len(endpoint.path) - len("?&count=100&cursor=") - 200
    if not ids_param or not any(name == ids_param for name, _ in params):
        if len(urlencode(params)) > room:
            raise QStashInputError(
                f"The DLQ filters encode to {len(urlencode(params))} characters, more than the {room} a request "
                "URL may carry; use fewer or shorter values."
            )
        return [FilterQuery.of(params, dlq_filter.select_all)]
    parts = _split_ids(params, room, DLQ_MAX_COUNT, ids_name or "dlq_ids")
    return [FilterQuery.of(part, dlq_filter.select_all) for part in parts]


def _split_ids(
    params: Iterable[tuple[str, str]], room: int, per_request: int, what: str
) -> Iterator[list[tuple[str, str]]]:
    """Id parameters in parts of at most ``per_request`` ids, each at most ``room`` characters encoded."""
    chunk: list[tuple[str, str]] = []
    length = 0
    for name, value in params:
        item = len(urlencode([(name, value)])) + 1
        if item > room:
            raise QStashInputError(f"{what} value {value[:40]!r}... is too long to send.")
        if chunk and (length + item > room or len(chunk) >= per_request):
            yield chunk
            chunk, length = [], 0
        chunk.append((name, value))
        length += item
    if chunk:
        yield chunk


def dlq_id_requests(
    dlq_ids: Iterable[str], endpoint: Endpoint, base_url: str, per_request: int = DLQ_MAX_COUNT
) -> Iterator[list[tuple[str, str]]]:
    """
    The query of each request that acts on exactly these DLQ ids (``dlqIds``, which makes QStash ignore
    every other filter), one part at a time: at most ``per_request`` (1..100) ids, short enough that no URL
    exceeds :data:`MAX_URL_LENGTH`. No ids, no requests.
    """
    per_request = parse_count(per_request, "per_request", maximum=DLQ_MAX_COUNT)
    room = MAX_URL_LENGTH - len(base_url) - len(endpoint.path) - len("?&count=100&cursor=") - 200
    return _split_ids((("dlqIds", dlq_id) for dlq_id in dlq_ids), room, per_request, "dlq_ids")


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
    return read_dlq_deleted((yield Call(DLQ_DELETE, _paged(params, cursor, count), select_all=_select_all(params))))


def dlq_retry_page(
    params: Iterable[tuple[str, str]], cursor: str | None = None, headers: Iterable[tuple[str, str]] = ()
) -> Procedure[DLQRetried]:
    """
    One ``POST /v2/dlq/retry`` with these filter parameters and the cursor of the last answer;
    ``headers`` are the ``Upstash-*`` overrides of the retried messages' settings. A 404 (some selected
    entries vanished meanwhile) is raised as a :class:`QStashAPIError` for the caller to handle.
    """
    call = Call(DLQ_RETRY, _paged(params, cursor, None), headers=tuple(headers), select_all=_select_all(params))
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


__all__ += [
    "DLQ_DELETE",
    "DLQ_MAX_COUNT",
    "DLQ_MESSAGE",
    "DLQ_RETRY",
    "LIST_DLQ",
    "DLQDeleted",
    "DLQPage",
    "DLQRetried",
    "delete_dlq_message",
    "dlq_delete_page",
    "dlq_id_requests",
    "dlq_list_params",
    "dlq_requests",
    "dlq_retry_page",
    "list_dlq_page",
    "read_dlq_deleted",
    "read_dlq_page",
    "read_dlq_retried",
]


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
#   :data:`DLQ_MULTI_MAX_IDS` ids a request, each request's URL within :data:`MAX_URL_LENGTH`; a server
#   that reads only a body answers 400 ("dlqIds required") and the run fails naming it: ``/multi`` takes
#   no filter, so it can never act wider than its ids.
# * ASSUMED (``/multi`` answers): delete ``{"deleted": n}``; retry ``{"responses": [{"messageId"}]}``
#   (as the Sync Bulk answers, without a cursor; one is followed if sent) and a 404 when some ids are gone.
# * ASSUMED (single id): ``DELETE /v2/dlq/{dlqId}`` (any 2xx, body ignored) and ``POST /v2/dlq/retry/{dlqId}``
#   ``{"messageId"}`` (or the ``/multi`` shape); 404 when the entry is gone.
# * ASSUMED (an older server): a server without these endpoints answers 404 on ``/bulk`` and on the
#   delete's ``/multi`` (they fall through to ``/v2/dlq/{dlqId}``: "entry bulk not found"); a retry's
#   ``/multi`` 404 is ambiguous (ids gone, or no such endpoint), so it is told apart once per run by
#   ``GET /v2/bulkActions``: a server that lists bulk actions is taken to have the 2026-12 DLQ API.

#: Async Bulk: start a bulk action over every entry the filters select at accept time.
DLQ_DELETE_BULK = Endpoint("DELETE", "/v2/dlq/bulk")
DLQ_RETRY_BULK = Endpoint("POST", "/v2/dlq/retry/bulk")
#: Multiple IDs.
DLQ_DELETE_MULTI = Endpoint("DELETE", "/v2/dlq/multi")
DLQ_RETRY_MULTI = Endpoint("POST", "/v2/dlq/retry/multi")
#: Single ID (the delete is :data:`DLQ_MESSAGE`).
DLQ_RETRY_MESSAGE = Endpoint("POST", "/v2/dlq/retry/{id}", "dlq_id")
#: ASSUMED: the most ids one ``/multi`` request carries (the Sync Bulk ``count`` maximum; unpublished).
DLQ_MULTI_MAX_IDS = DLQ_MAX_COUNT

ENDPOINTS.update(
    {
        "dlq_delete_bulk": DLQ_DELETE_BULK,
        "dlq_retry_bulk": DLQ_RETRY_BULK,
        "dlq_delete_multi": DLQ_DELETE_MULTI,
        "dlq_retry_multi": DLQ_RETRY_MULTI,
        "dlq_retry_message": DLQ_RETRY_MESSAGE,
    }
)


class DLQEndpointsMissing(QStashAPIError):
    """The server answered 404 where the 2026-12 DLQ API has an endpoint: an older server; use the paging API."""


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
    call = Call(endpoint, tuple(params), headers=tuple(headers), select_all=_select_all(params))
    try:
        answer = yield call
    except QStashAPIError as err:
        if err.http_status == 404:
            raise _endpoints_missing(err, f"{endpoint.method} {endpoint.path}") from err
        raise
    return read_dlq_action_started(answer)


def dlq_multi_requests(dlq_ids: Iterable[str], endpoint: Endpoint, base_url: str) -> Iterator[list[tuple[str, str]]]:
    """The query of each ``/multi`` request for these ids: :data:`DLQ_MULTI_MAX_IDS` a part, URLs within bounds."""
    return dlq_id_requests(dlq_ids, endpoint, base_url, DLQ_MULTI_MAX_IDS)


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
    return _count(answer, "deleted", "DLQ multi delete")


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
    """``DELETE /v2/dlq/{dlqId}``: 1 when deleted, 0 when the entry was already gone (404)."""
    try:
        yield Call(DLQ_MESSAGE, path_id=dlq_id)
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


__all__ += [
    "DLQ_DELETE_BULK",
    "DLQ_DELETE_MULTI",
    "DLQ_MULTI_MAX_IDS",
    "DLQ_RETRY_BULK",
    "DLQ_RETRY_MESSAGE",
    "DLQ_RETRY_MULTI",
    "DLQActionStarted",
    "DLQEndpointsMissing",
    "dlq_delete_multi",
    "dlq_delete_one",
    "dlq_multi_requests",
    "dlq_retry_multi",
    "dlq_retry_one",
    "has_bulk_actions",
    "read_dlq_action_started",
    "start_dlq_action",
]
