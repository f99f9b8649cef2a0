"""
The effects a sans-IO procedure yields (:class:`Call`: send this; :class:`Sleep`: pause this long) and the
last refusal before the network (:func:`refuse_unfiltered_bulk_call`).

Nothing here sends a request: :mod:`airflow_qstash.hooks.qstash` drives the same generator with
``requests`` on a worker and with ``httpx`` in the triggerer, so every wire decision exists once.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_qstash.exceptions import QStashInputError
from airflow_qstash.protocol.endpoints import Endpoint

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
