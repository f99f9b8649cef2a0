"""
What one request carries and the effects a sans-IO procedure yields (:class:`Call`: send this;
:class:`Sleep`: pause this long); the query of a filter as one request or as id lists split to fit the
URL (:func:`filter_requests`, :func:`split_ids`: the one splitter); and the last refusal before the
network (:func:`refuse_unfiltered_bulk_call`).

Nothing here sends a request: :mod:`airflow_qstash.hooks.qstash` drives the same generator with
``requests`` on a worker and with ``httpx`` in the triggerer, so every wire decision exists once.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.filters import FilterValue
from airflow_qstash.protocol.endpoints import MAX_URL_LENGTH, Endpoint

_T = TypeVar("_T")

# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Call:
    """
    One request for the driver to send; the driver sends back the parsed JSON answer or throws the error.

    :param endpoint: what to call.
    :param params: query parameters, in order.
    :param path_id: the id for an endpoint with ``{id}`` in its path.
    :param conflict_aware: a filter cancel: a 412, or a 429 without rate-limit headers, means an identical
        bulk action is running (:class:`~airflow_qstash.exceptions.QStashActionConflict`), not "slow down".
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


def selects_all(params: Iterable[tuple[str, str]]) -> bool:
    """Whether a query was built with the author's all-flag (a :class:`FilterQuery` that says so)."""
    return getattr(params, "select_all", False) is True


# --------------------------------------------------------------------------- fitting the URL


def url_length(base_url: str, path: str, params: Sequence[tuple[str, str]]) -> int:
    """The length of the URL a request sends: ``base_url`` + ``path`` + ``?`` + the encoded query."""
    return len(base_url) + len(path) + (1 + len(urlencode(params)) if params else 0)


def split_ids(
    name: str,
    ids: Iterable[str],
    params: Sequence[tuple[str, str]],
    base_url: str,
    path: str,
    max_ids: int | None = None,
    *,
    reserve: int = 0,
    what: str | None = None,
) -> list[list[tuple[str, str]]]:
    """
    The one id splitter: the query of each request that carries ``ids`` as repeated ``name`` parameters, in
    order, followed by ``params``; each part has at most ``max_ids`` ids (``None``: no count limit) and a
    URL (measured as sent, see :func:`url_length`) of at most :data:`MAX_URL_LENGTH` - ``reserve``
    characters (``reserve``: what the caller appends later, a cursor). Each part selects a disjoint set of
    ids, so their counts add up. No ids, no parts.

    :param what: the name a refusal gives the ids (``message_ids``); ``name`` when not given.
    :raises QStashInputError: one id is too long for a URL on its own.
    """
    limit = MAX_URL_LENGTH - reserve
    tail = urlencode(params)
    fixed = len(base_url) + len(path) + 1 + (len(tail) + 1 if tail else 0)  # "?" and "&" before the params
    parts: list[list[tuple[str, str]]] = []
    chunk: list[tuple[str, str]] = []
    length = fixed - 1  # n ids take their encoded lengths plus n - 1 "&"
    for value in ids:
        item = len(urlencode([(name, value)])) + 1
        if fixed + item - 1 > limit:
            raise QStashInputError(
                f"{what or name} value {value[:40]!r}... is too long to send: a request URL carries at most "
                f"{limit} characters, and no QStash id is that long. Check the value."
            )
        if chunk and (length + item > limit or (max_ids is not None and len(chunk) >= max_ids)):
            parts.append([*chunk, *params])
            chunk, length = [], fixed - 1
        chunk.append((name, value))
        length += item
    if chunk:
        parts.append([*chunk, *params])
    return parts


def filter_requests(
    value: FilterValue,
    base_url: str,
    path: str,
    params: Sequence[tuple[str, str]] = (),
    max_ids: int | None = None,
    *,
    reserve: int = 0,
) -> list[FilterQuery]:
    """
    The query of each request one filter needs, in the spec's names, followed by ``params``, each marked
    with the author's all-flag (:class:`FilterQuery`).

    A filter goes out as one query; one whose URL would pass :data:`MAX_URL_LENGTH` - ``reserve`` is
    refused (its filters are ANDed and cannot be split). An id list (the table's ``ids`` filter, which
    QStash takes alone) is split by :func:`split_ids`.
    """
    query = value.to_query_params()
    ids_name = value.TABLE.ids_name
    ids_param = value.TABLE[ids_name].param if ids_name else None
    ids = [item for name, item in query if name == ids_param]
    if ids_param and ids:
        others = [pair for pair in query if pair[0] != ids_param]
        parts = split_ids(ids_param, ids, [*others, *params], base_url, path, max_ids, reserve=reserve, what=ids_name)
        return [FilterQuery.of(part, value.select_all) for part in parts]
    whole = [*query, *params]
    length = url_length(base_url, path, whole)
    if length > MAX_URL_LENGTH - reserve:
        raise QStashInputError(
            f"The filters make a request URL of {length} characters, more than the {MAX_URL_LENGTH - reserve} "
            "one may carry; use fewer or shorter values."
        )
    return [FilterQuery.of(whole, value.select_all)]


@dataclass(frozen=True)
class Sleep:
    """A pause the driver takes (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


Effect = Call | Sleep
Procedure = Generator[Effect, Any, _T]


def one_call(call: Call) -> Procedure[Any]:
    """The procedure of a single request: its parsed answer."""
    return (yield call)
