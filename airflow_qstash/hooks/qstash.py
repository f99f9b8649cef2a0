"""
``QStashHook`` (``requests``, for workers) and ``QStashAsyncHook`` (``httpx``, for the triggerer).

Both are thin: the connection is read by :mod:`airflow_qstash.config`, every request is encoded and every
answer read by :mod:`airflow_qstash.protocol`, and multi-request work (paging, joining a running bulk action,
the whole runs) is a sans-IO procedure that :meth:`QStashHook.drive` / :meth:`QStashAsyncHook.drive` run.

Each public API method is written once, on the shared base, as a *plan*: it reads and refuses its inputs,
then says which procedure to drive once the connection is known (:data:`_Plan`). :class:`_OnBothTransports`
turns a plan into the method of each hook: ``drive(plan(config))`` on the requests hook, ``await
drive(plan(await get_config()))`` on the httpx hook. A new endpoint method is one plan, and both hooks have
it. The transports own only sending: one attempt under one total deadline, no redirects, the shared retry
policy, the bounded answer read.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import socket
import sys
import time
import types
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeAlias, TypeVar, overload
from urllib.parse import urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook, mask_secret
from tenacity import AsyncRetrying, Retrying
from urllib3.exceptions import ReadTimeoutError

from airflow_qstash.config import (
    QStashConnectionConfig,
    RetryPolicy,
    localhost_typo_hint,
)
from airflow_qstash.exceptions import (
    QStashConnectionError,
    QStashError,
    QStashInputError,
    QStashTransportError,
    redact,
    remember_secret,
)
from airflow_qstash.filters import (
    BULK_CANCEL_FILTERS,
    DELETE,
    DLQ_ACTION_FILTERS,
    DLQ_FILTERS,
    RETRY,
    BulkCancelFilter,
    DLQFilter,
)
from airflow_qstash.hooks.transport import (
    AnswerTooLarge,
    aread_body,
    default_ssl_context,
    new_session,
    proxy_for,
    read_body,
)
from airflow_qstash.inputs import DEFAULT_ACTION_TIMEOUT
from airflow_qstash.inputs import now_ms as read_clock
from airflow_qstash.protocol import answers
from airflow_qstash.protocol.answers import answer_too_large, decode_body, read_answer
from airflow_qstash.protocol.calls import Call, Procedure, Sleep, one_call, refuse_unfiltered_bulk_call
from airflow_qstash.protocol.dlq import DLQPage, dlq_list_params, list_dlq_page
from airflow_qstash.protocol.dlq import delete_dlq_message as delete_dlq_message_procedure
from airflow_qstash.protocol.endpoints import CANCEL_MESSAGE, LIST_QUEUES
from airflow_qstash.protocol.messages import BulkAction, BulkCancelAnswer, get_bulk_action, list_bulk_actions
from airflow_qstash.runs.bulk_cancel import BulkCancelRun, bulk_cancel_total
from airflow_qstash.runs.dlq import DLQRun, make_run

if TYPE_CHECKING:
    import httpx

if sys.version_info >= (3, 11):
    from asyncio import timeout as _attempt_deadline  # novermin: guarded by the version check above
else:  # Python 3.10: the package asyncio.timeout was made from, same semantics (async-timeout; python<3.11)
    from async_timeout import timeout as _attempt_deadline

_T = TypeVar("_T")
_P = ParamSpec("_P")

__all__ = ["QStashAsyncHook", "QStashHook"]

#: What a public hook method is written as: the procedure to drive, given the connection. The method has
#: read and refused its inputs before it returns one, so bad input is refused before the connection is read.
_Plan: TypeAlias = Callable[[QStashConnectionConfig], Procedure[_T]]

#: The return annotation of a plan, ``_Plan[X]``: the method of each hook returns (or awaits to) ``X``.
_PLAN_RETURNS = re.compile(r"_Plan\[(?P<returns>.+)\]")


class _OnBothTransports(Generic[_P, _T]):
    """
    One public hook method, written once as a plan (``self, *args -> _Plan[T]``) and made the method of
    each transport by its ``_method_from_plan``: a plain method returning ``T`` on :class:`QStashHook`, a
    coroutine function awaiting to ``T`` on :class:`QStashAsyncHook`, both with the plan's name, docstring
    and parameters (``__wrapped__`` is the plan). Each transport class gets its own function in its
    ``__dict__`` when it is created (:meth:`_QStashHookBase.__init_subclass__`), so ``inspect``, autodoc
    and ``monkeypatch`` see ordinary methods.
    """

    def __init__(self, plan: Callable[Concatenate[Any, _P], _Plan[_T]]) -> None:
        annotation = plan.__annotations__.get("return")
        match = _PLAN_RETURNS.fullmatch(annotation) if isinstance(annotation, str) else None
        if match is None:
            raise TypeError(f"{plan.__qualname__} is a hook method's plan: annotate it '-> _Plan[...]'.")
        self.plan = plan
        self.returns = match["returns"]
        self.signature = inspect.signature(plan).replace(return_annotation=self.returns)
        self.__doc__ = plan.__doc__

    def method_for(self, transport: type[_QStashHookBase]) -> Callable[..., Any]:
        """The method of ``transport`` (a hook class) that drives this plan there."""
        method = transport._method_from_plan(self.plan)
        functools.update_wrapper(method, self.plan)
        method.__qualname__ = f"{transport.__qualname__}.{self.plan.__name__}"
        method.__annotations__ = {**self.plan.__annotations__, "return": self.returns}
        method.__signature__ = self.signature  # type: ignore[attr-defined]
        return method

    @overload
    def __get__(self, hook: None, owner: type[Any]) -> _OnBothTransports[_P, _T]: ...
    @overload
    def __get__(self, hook: QStashHook, owner: type[Any] | None = None) -> Callable[_P, _T]: ...
    @overload
    def __get__(
        self, hook: QStashAsyncHook, owner: type[Any] | None = None
    ) -> Callable[_P, Coroutine[Any, Any, _T]]: ...
    def __get__(self, hook: Any, owner: type[Any] | None = None) -> Any:
        # Reached only where no transport class put its own function first (the base class itself).
        if hook is None:
            return self
        return types.MethodType(self.method_for(type(hook)), hook)


class _QStashHookBase(BaseHook):
    """
    What both transports share: the connection type and its id, a repr without secrets, the error for a
    request that got no answer, and every public API method (written once, as a plan: see
    :class:`_OnBothTransports`). A transport supplies `_method_from_plan`, `send` and `drive`.
    """

    conn_name_attr = "qstash_conn_id"
    default_conn_name = "qstash_default"
    conn_type = "qstash"
    hook_name = "Upstash QStash"

    def __init__(self, qstash_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.qstash_conn_id = qstash_conn_id
        #: Whether any request of this hook got an HTTP answer: until one does, a refused connection or an
        #: unknown host is the connection's mistake, not a passing fault.
        self._answered = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(qstash_conn_id={self.qstash_conn_id!r})"

    @staticmethod
    def _secrets_of(config: QStashConnectionConfig) -> list[str]:
        """What the masker and :func:`~airflow_qstash.exceptions.redact` must hide: token, proxy URL, its password."""
        remember_secret(config.token)
        secrets = [config.token]
        if config.proxy:
            from urllib.parse import urlsplit

            secrets.append(config.proxy)
            password = urlsplit(config.proxy).password
            if password:
                remember_secret(password)
                secrets.append(password)
        return secrets

    def _no_answer(self, call: Call, config: QStashConnectionConfig, err: Exception) -> QStashError:
        """
        The error for a request that got no answer: retryable, except a refused connection or an unknown
        host before this hook ever had an answer, which names the connection and its host and is not
        retried (``http//127.0.0.1:8080`` and wrong ports were retried for ~20 s, then blamed on the run).
        """
        unreachable = None if self._answered else _unreachable(err)
        if unreachable is not None:
            return _unreachable_error(unreachable, config)
        # requests wraps a timeout while reading the body in a ConnectionError(ReadTimeoutError(...))
        timed_out = isinstance(err, TimeoutError | requests.Timeout) or any(
            isinstance(arg, ReadTimeoutError) for arg in err.args
        )
        reason = "the attempt's deadline passed" if timed_out else None
        detail = reason or type(err).__name__
        return QStashTransportError(
            redact(
                f"QStash {call.method} {call.endpoint.path}: no answer from {config.base_url} ({detail})", config.token
            )
        )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give a transport class its own function for each public API method it does not define itself."""
        super().__init_subclass__(**kwargs)
        for name, shared in vars(_QStashHookBase).items():
            if isinstance(shared, _OnBothTransports) and inspect.getattr_static(cls, name) is shared:
                setattr(cls, name, shared.method_for(cls))

    @staticmethod
    def _method_from_plan(plan: Callable[..., _Plan[Any]]) -> Callable[..., Any]:
        """The transport's method for ``plan``: read the connection, drive the plan's procedure."""
        raise NotImplementedError("a hook transport says how it drives a plan")

    # ----------------------------------------------------------------------- API (both transports)

    @_OnBothTransports
    def bulk_cancel_by_filter(self, bulk_filter: BulkCancelFilter, count: int | None = None) -> _Plan[BulkCancelAnswer]:
        """
        Send one bulk cancel: a synchronous batch of up to ``count`` (a server that honours ``count``, or
        explicit ids) or a background bulk action (today's hosted QStash), joined if one with the same
        filter already runs.

        :param bulk_filter: a validated filter.
        :param count: messages per request, 1..500, for servers that honour it; ``None`` sends none.
        """
        return lambda config: bulk_cancel_total(bulk_filter, count, config.base_url)

    @_OnBothTransports
    def bulk_cancel(
        self,
        *,
        message_ids: str | list[str] | None = None,
        url_groups: str | list[str] | None = None,
        queue_names: str | list[str] | None = None,
        urls: str | list[str] | None = None,
        hosts: str | list[str] | None = None,
        paths: str | list[str] | None = None,
        labels: str | list[str] | None = None,
        flow_control_keys: str | list[str] | None = None,
        schedule_ids: str | list[str] | None = None,
        caller_ips: str | list[str] | None = None,
        from_date: Any = None,
        to_date: Any = None,
        count: int | None = None,
        cancel_all: bool = False,
        now_ms: int | None = None,
    ) -> _Plan[BulkCancelAnswer]:
        """
        Send one bulk cancel (``DELETE /v2/messages``): :class:`BatchCancelled` with the number cancelled,
        or :class:`ActionStarted` with the id of the background bulk action to follow
        (:meth:`get_bulk_action`).

        Each list filter takes a string or a list of strings (values ORed; filters ANDed). Dates take a
        datetime (naive = UTC), an ISO-8601 string or Unix milliseconds and go out as Unix milliseconds,
        both bounds inclusive. Refused before anything is sent (``ValueError``): no filter at all unless
        ``cancel_all=True`` (QStash would cancel every message), ``message_ids`` with other filters,
        ``from_date`` after ``to_date``, a ``count`` outside 1..500, an unreadable date.
        """
        bulk_filter = _bulk_cancel_filter(None, cancel_all, now_ms, locals())
        # count is checked while encoding, before sending
        return lambda config: bulk_cancel_total(bulk_filter, count, config.base_url)

    @_OnBothTransports
    def cancel_messages(
        self,
        bulk_filter: BulkCancelFilter | None = None,
        *,
        message_ids: str | list[str] | None = None,
        url_groups: str | list[str] | None = None,
        queue_names: str | list[str] | None = None,
        urls: str | list[str] | None = None,
        hosts: str | list[str] | None = None,
        paths: str | list[str] | None = None,
        labels: str | list[str] | None = None,
        flow_control_keys: str | list[str] | None = None,
        schedule_ids: str | list[str] | None = None,
        caller_ips: str | list[str] | None = None,
        from_date: Any = None,
        to_date: Any = None,
        cancel_all: bool = False,
        batch_size: int = 500,
        max_batches: int | None = None,
        action_timeout: float = DEFAULT_ACTION_TIMEOUT,
        now_ms: int | None = None,
    ) -> _Plan[dict[str, Any]]:
        """
        Cancel every message the filter selects, in rounds until a round finds none left: the operator's
        whole job (:class:`~airflow_qstash.runs.bulk_cancel.BulkCancelRun`), returning the summary it puts in XCom
        (``cancelled``, ``batches``, ``rounds``, ``mode``, ``action_ids``...). The one-request form is
        :meth:`bulk_cancel`.

        Filters as for :meth:`bulk_cancel`, or a :class:`~airflow_qstash.filters.BulkCancelFilter` (not both).

        :param batch_size: messages per request, 1..500, where the server honours ``count``.
        :param max_batches: the most rounds (requests, or bulk actions followed); ``None``: 100,000.
        :param action_timeout: the longest one bulk action is followed, in seconds.
        :param now_ms: the instant the window is judged at (Unix ms); ``None`` reads the clock.
        :raises ~airflow_qstash.exceptions.QStashRunIncomplete: the bound was reached or a request failed for
            good; it carries the summary so far.
        """
        run = BulkCancelRun(
            _bulk_cancel_filter(bulk_filter, cancel_all, now_ms, locals()),
            batch_size=batch_size,
            max_batches=max_batches,
            action_timeout=action_timeout,
        )
        return lambda config: run.steps(config.base_url, poll_interval_max=config.poll_interval_max, log=self.log)

    @_OnBothTransports
    def get_bulk_action(self, action_id: str) -> _Plan[BulkAction]:
        """One bulk action's state (``GET /v2/bulkActions/{actionId}``)."""
        return lambda config: get_bulk_action(action_id)

    @_OnBothTransports
    def list_bulk_actions(self, state: str | None = None) -> _Plan[list[BulkAction]]:
        """Every bulk action QStash keeps (7 days), optionally of one state; pages until no cursor is left."""
        return lambda config: list_bulk_actions(state)

    @_OnBothTransports
    def cancel_message(self, message_id: str) -> _Plan[Any]:
        """Cancel one message (``DELETE /v2/messages/{id}``); an empty or dot-segment id is refused."""
        call = Call(CANCEL_MESSAGE, path_id=message_id)
        return lambda config: one_call(call)

    # ----------------------------------------------------------------------- dead-letter queue

    @_OnBothTransports
    def dlq_delete(
        self,
        dlq_filter: DLQFilter | None = None,
        *,
        delete_all: bool = False,
        batch_size: int = 100,
        max_requests: int | None = None,
        action_timeout: float | None = None,
        now_ms: int | None = None,
        **filters: Any,
    ) -> _Plan[dict[str, Any]]:
        """
        Delete the DLQ entries the filter selects when the call starts: a filter starts a bulk action
        (``DELETE /v2/dlq/bulk``) followed by id to ``FINISHED`` and confirmed by a round that finds none;
        ``dlq_ids`` go to ``DELETE /v2/dlq/multi`` (one id: ``DELETE /v2/dlq/{dlqId}``); an older server
        without these (404) gets the deprecated paging API: list the ids (``GET /v2/dlq``), then delete
        exactly those (``DELETE /v2/dlq?dlqIds=...``). At most ``max_requests`` requests (polls aside), each
        bulk action followed at most ``action_timeout`` seconds (see :class:`~airflow_qstash.runs.dlq.DLQDeleteRun`);
        return the run's summary (``deleted``, ``mode``, ``action_ids``, ``requests``, ``polls``,
        ``selected``, ``list_requests``, the window, ``filters``).

        The filters are :data:`~airflow_qstash.filters.DLQ_FILTERS`, as keywords (``dlq_ids``,
        ``message_ids`` (one), ``urls``, ``url_groups``, ``schedule_ids``, ``queue_names``, ``labels``,
        ``flow_control_keys``, ``caller_ips``, ``response_statuses``, ``from_date``, ``to_date``) or a
        :class:`~airflow_qstash.runs.dlq.DLQFilter`. Refused before any request (``ValueError``): no filter
        unless ``delete_all=True``, ``dlq_ids`` with other filters, ``hosts``/``paths`` (the DLQ endpoints
        reject them), an unknown filter, a ``batch_size`` outside 1..100.

        :raises ~airflow_qstash.runs.dlq.QStashRunIncomplete: the bound was reached or a request failed for good;
            it carries the summary so far.
        """
        options = dict(batch_size=batch_size, max_requests=max_requests, action_timeout=action_timeout)
        return self._dlq_job(DELETE, dlq_filter, delete_all, filters, now_ms, options)

    @_OnBothTransports
    def dlq_retry(
        self,
        dlq_filter: DLQFilter | None = None,
        *,
        retry_all: bool = False,
        headers: tuple[tuple[str, str], ...] = (),
        max_requests: int | None = None,
        action_timeout: float | None = None,
        now_ms: int | None = None,
        **filters: Any,
    ) -> _Plan[dict[str, Any]]:
        """
        Retry the DLQ entries the filter selects when the call starts, as :meth:`dlq_delete` does with
        ``POST /v2/dlq/retry/bulk`` (a bulk action: counts and action ids, no per-message ids),
        ``POST /v2/dlq/retry/multi`` / ``POST /v2/dlq/retry/{dlqId}`` (the new message ids), or on an older
        server the paging API (``POST /v2/dlq/retry?dlqIds=...``); a 404 for entries that vanished meanwhile
        is part of the run (see :class:`~airflow_qstash.runs.dlq.DLQRetryRun`). Returns the summary (``retried``,
        ``message_ids``, ``mode``, ``action_ids``...).

        :param headers: ``Upstash-*`` overrides from :func:`~airflow_qstash.runs.dlq.retry_overrides`, e.g.
            ``retry_overrides(retries=0)``.
        :param retry_all: allow a run with no filter (every entry in the DLQ).

        Filters and refusals as for :meth:`dlq_delete`.
        """
        options = dict(headers=headers, max_requests=max_requests, action_timeout=action_timeout)
        return self._dlq_job(RETRY, dlq_filter, retry_all, filters, now_ms, options)

    def _dlq_job(
        self,
        action: str,
        dlq_filter: DLQFilter | None,
        select_all: Any,
        filters: dict[str, Any],
        now_ms: int | None,
        options: dict[str, Any],
    ) -> _Plan[dict[str, Any]]:
        """The plan of :meth:`dlq_delete` and :meth:`dlq_retry`: the DLQ run (:func:`_dlq_run`), driven whole."""
        run = _dlq_run(action, dlq_filter, select_all, filters, now_ms, **options)
        return lambda config: run.steps(config.base_url, log=self.log, poll_interval_max=config.poll_interval_max)

    @_OnBothTransports
    def list_dlq(
        self, dlq_filter: DLQFilter | None = None, *, cursor: str | None = None, count: int = 100, **filters: Any
    ) -> _Plan[DLQPage]:
        """
        One page of DLQ entries (``GET /v2/dlq``, ``count`` 1..100); pass the page's ``cursor`` back for the
        next, until it is ``None``. Takes the DLQ filters but ``dlq_ids`` and ``flow_control_keys``.
        """
        query = _dlq_list_query(dlq_filter, filters)
        return lambda config: list_dlq_page(query, cursor, count)

    @_OnBothTransports
    def delete_dlq_message(self, dlq_id: str) -> _Plan[None]:
        """Remove one DLQ entry (``DELETE /v2/dlq/{dlqId}``); an empty or dot-segment id is refused."""
        return lambda config: delete_dlq_message_procedure(dlq_id)


class _Driving(Generic[_T]):
    """
    One procedure being driven, the part of ``drive`` both transports share. Iterating gives the
    procedure's effects (a :class:`~airflow_qstash.protocol.calls.Call` to send, a
    :class:`~airflow_qstash.protocol.calls.Sleep` to take); the transport sets ``answer`` inside
    ``with outcome():`` and it goes back into the procedure.
    A :class:`~airflow_qstash.exceptions.QStashError` raised there goes back too (thrown at the procedure's
    ``yield``: a failed request is the run's to judge), except an input refusal (refused before sending, a
    connection mistake too), which ends the drive: never a failed round. ``result`` is the procedure's.
    """

    def __init__(self, procedure: Procedure[_T]) -> None:
        self._procedure = procedure
        self._error: QStashError | None = None
        self.answer: Any = None
        self.result: _T

    def __iter__(self) -> Iterator[Call | Sleep]:
        while True:
            answer, error, self.answer, self._error = self.answer, self._error, None, None
            try:
                effect = self._procedure.throw(error) if error is not None else self._procedure.send(answer)
            except StopIteration as done:
                self.result = done.value
                return
            yield effect

    @contextmanager
    def outcome(self) -> Iterator[None]:
        """Where the transport sends one call or takes one pause."""
        try:
            yield
        except QStashInputError:
            raise
        except QStashError as err:
            self._error = err


_REFUSED = "refused"
_UNKNOWN_HOST = "unknown host"


def _unreachable(err: BaseException) -> str | None:
    """``"refused"`` or ``"unknown host"`` when ``err`` (of requests or httpx) comes from one, else ``None``."""
    seen: set[int] = set()
    stack: list[Any] = [err]
    while stack:
        error = stack.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ConnectionRefusedError):
            return _REFUSED
        if isinstance(error, socket.gaierror):
            return _UNKNOWN_HOST
        stack += [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
    return None


def _unreachable_error(kind: str, config: QStashConnectionConfig) -> QStashConnectionError:
    parts = urlsplit(config.base_url)
    hostname = parts.hostname or ""
    where = f"connection {config.conn_id!r}: {config.base_url}"
    if kind == _REFUSED:
        detail = (
            f"the connection to {hostname} port {parts.port or (443 if parts.scheme == 'https' else 80)} was "
            "refused: nothing listens there (is the QStash emulator running, and on that port?)"
        )
    else:
        detail = f"the host name {hostname!r} is unknown (the DNS lookup failed){localhost_typo_hint(hostname)}"
    # The proxy's own URL may carry a password: it is named, never shown.
    via = " (through a proxy: check the proxy too)" if proxy_for(config.base_url, config.proxy) else ""
    return QStashConnectionError(
        f"Could not reach QStash ({where}): {detail}{via}. Check the connection's host and port; nothing was "
        "sent, and this is not retried."
    )


def _dlq_run(
    action: str,
    dlq_filter: DLQFilter | None,
    select_all: Any,
    filters: dict[str, Any],
    now_ms: int | None,
    **options: Any,
) -> DLQRun:
    """
    The run a DLQ hook method drives: a filter object or filter keywords (not both), then its options. The
    window is judged at ``now_ms``, or at the hook's reading of the clock.
    """
    if dlq_filter is not None and (filters or select_all):
        raise QStashInputError("Give either a DLQFilter or filter keywords (and the all flag), not both.")
    if dlq_filter is None:
        now = read_clock() if now_ms is None else now_ms
        table = DLQ_ACTION_FILTERS.get(action, DLQ_FILTERS)  # another action is refused by make_run
        dlq_filter = DLQFilter.build(now_ms=now, table=table, **{table.all_flag: select_all}, **filters)
    return make_run(action, dlq_filter, **options)


def _dlq_list_query(dlq_filter: DLQFilter | None, filters: dict[str, Any]) -> list[tuple[str, str]]:
    """The filters of a DLQ listing: listing reads, so no filter at all is fine."""
    if dlq_filter is not None and filters:
        raise QStashInputError("Give either a DLQFilter or filter keywords, not both.")
    return dlq_list_params(dlq_filter or DLQFilter.build(select_all=True, **filters))


def _bulk_cancel_filter(
    bulk_filter: BulkCancelFilter | None, cancel_all: bool, now_ms: int | None, arguments: Mapping[str, Any]
) -> BulkCancelFilter:
    """
    The filter a bulk-cancel hook method uses: a filter object or filter keywords (not both); the window is
    judged at ``now_ms``, or at the hook's reading of the clock. ``arguments`` are the method's (its
    ``locals()``): the filter keywords are taken from them by the declared table, so the methods that spell
    the keywords out do not spell them out twice.
    """
    filters = {name: arguments[name] for name in BULK_CANCEL_FILTERS.names}
    if bulk_filter is not None:
        if any(value is not None for value in filters.values()) or cancel_all:
            raise QStashInputError("Give either a BulkCancelFilter or filter keywords (and cancel_all), not both.")
        return bulk_filter
    now = read_clock() if now_ms is None else now_ms
    return BulkCancelFilter.build(cancel_all=cancel_all, now_ms=now, **filters)


class QStashHook(_QStashHookBase):
    """
    Talks to Upstash QStash's REST API over ``requests``.

    The ``qstash`` connection holds the token in its password and a region id (``eu-central-1``) or a
    base URL (``http://127.0.0.1:8787`` for the local emulator) in its host; an empty host is
    ``https://qstash.upstash.io``. One ``requests.Session`` is kept per hook. No request follows a
    redirect, and each attempt ends within the connection's ``timeout`` (total seconds).

    :param qstash_conn_id: the Airflow connection to use.
    """

    #: How the hook sleeps between retries and polls; tests replace it to record the waits.
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """
        The connection form's extra fields on Airflow before 3.2 (3.2+ reads ``conn-fields``). Declared on
        this class, not inherited: Airflow 2 reads the connection type's own hook class.
        """
        from airflow_qstash.compat import connection_form_widgets

        return connection_form_widgets()

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields of the connection form on Airflow before 3.2."""
        from airflow_qstash.compat import ui_field_behaviour

        return ui_field_behaviour()

    @cached_property
    def config(self) -> QStashConnectionConfig:
        """The connection, read once (and the token masked in logs)."""
        config = QStashConnectionConfig.from_connection(self.get_connection(self.qstash_conn_id))
        for secret in self._secrets_of(config):
            mask_secret(secret)
        return config

    @cached_property
    def session(self) -> requests.Session:
        """
        One keep-alive session per hook, carrying the auth header; through the proxy of
        :func:`~airflow_qstash.hooks.transport.proxy_for` (none for ``http://`` and loopback hosts).
        """
        config = self.config
        return new_session(config.headers, proxy_for(config.base_url, config.proxy))

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if "session" in self.__dict__:
            self.session.close()
            del self.__dict__["session"]

    def send(self, call: Call, *, policy: RetryPolicy | None = None) -> Any:
        """
        Send one request with the retry policy; return the parsed JSON answer. A filterless bulk request
        not made with the all-flag is refused first
        (:func:`~airflow_qstash.protocol.calls.refuse_unfiltered_bulk_call`).
        """
        config = self.config
        refuse_unfiltered_bulk_call(call, config.base_url)
        policy = policy or config.retry
        headers = dict(call.headers) or None
        for attempt in Retrying(sleep=self.sleep, **policy.tenacity_kwargs(self.log)):
            with attempt:
                try:
                    response = self.session.request(
                        call.method,
                        config.base_url + call.path,
                        params=list(call.params) or None,
                        headers=headers,
                        timeout=config.timeout,
                        allow_redirects=False,
                        stream=True,  # the body is read by read_body, up to answers.MAX_ANSWER_BYTES
                    )
                except (requests.ConnectionError, requests.Timeout) as err:
                    raise self._no_answer(call, config, err) from err
                self._answered = True
                try:
                    raw = read_body(response, answers.MAX_ANSWER_BYTES)
                except AnswerTooLarge as err:
                    raise answer_too_large(call, response.status_code, err.declared) from None
                except requests.RequestException as err:
                    raise self._no_answer(call, config, err) from err
                finally:
                    response.close()
                body = decode_body(response.headers, raw)
                return read_answer(call, response.status_code, response.headers, body, policy, config.token)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def drive(self, procedure: Procedure[_T]) -> _T:
        """Run a sans-IO procedure of the wire: send its calls, take its pauses, return its result."""
        driving = _Driving(procedure)
        for effect in driving:
            with driving.outcome():
                if isinstance(effect, Sleep):
                    self.sleep(effect.seconds)
                else:
                    driving.answer = self.send(effect)
        return driving.result

    @staticmethod
    def _method_from_plan(plan: Callable[..., _Plan[Any]]) -> Callable[..., Any]:
        def method(self: QStashHook, *args: Any, **kwargs: Any) -> Any:
            procedure_for = plan(self, *args, **kwargs)  # the inputs are read (and refused) first
            return self.drive(procedure_for(self.config))

        return method

    def test_connection(self) -> tuple[bool, str]:
        """Check the token and base URL with one read-only call (``GET /v2/queues``), without retries."""
        try:
            self.send(Call(LIST_QUEUES), policy=RetryPolicy(max_retries=0))
        except (QStashError, ValueError) as err:
            return False, str(err)
        return True, f"Connected to QStash at {self.config.base_url}."


class QStashAsyncHook(_QStashHookBase):
    """
    The same wire over ``httpx`` for the triggerer: same encoding, answers, procedures and retry policy as
    :class:`QStashHook`, with nothing blocking on the event loop.

    :param qstash_conn_id: the Airflow connection to use.
    """

    def __init__(self, qstash_conn_id: str = _QStashHookBase.default_conn_name, **kwargs: Any) -> None:
        super().__init__(qstash_conn_id, **kwargs)
        self._config: QStashConnectionConfig | None = None
        self._client: httpx.AsyncClient | None = None

    async def get_config(self) -> QStashConnectionConfig:
        """Read the connection the async way, once; the blocking parts run off the event loop."""
        if self._config is None:
            from airflow_qstash.compat import amask_secret, get_async_connection

            conn = await get_async_connection(self.qstash_conn_id)
            config = QStashConnectionConfig.from_connection(conn)  # reads the raw extra: nothing blocks
            for secret in self._secrets_of(config):
                await amask_secret(secret)
            self._config = config
        return self._config

    async def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            config = await self.get_config()
            verify = await asyncio.to_thread(default_ssl_context)
            # trust_env=False: no .netrc, no proxy variables; proxy_for makes the one proxy decision.
            self._client = httpx.AsyncClient(
                base_url=config.base_url,
                headers=config.headers,
                timeout=config.timeout,
                verify=verify,
                follow_redirects=False,
                trust_env=False,
                proxy=proxy_for(config.base_url, config.proxy),
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, call: Call, *, policy: RetryPolicy | None = None) -> Any:
        """The async twin of :meth:`QStashHook.send`, with the same refusal before any request."""
        import httpx

        config = await self.get_config()
        refuse_unfiltered_bulk_call(call, config.base_url)
        client = await self._get_client()
        policy = policy or config.retry
        headers = dict(call.headers) or None
        async for attempt in AsyncRetrying(**policy.tenacity_kwargs(self.log)):
            with attempt:
                try:
                    # asyncio.timeout (async-timeout on 3.10), not wait_for: on 3.10 and 3.11 wait_for swallows
                    # a cancel that lands as the request completes, and the trigger would run on after the
                    # triggerer cancelled it.
                    async with _attempt_deadline(config.timeout):
                        request = client.build_request(
                            call.method,
                            call.path,
                            params=list(call.params) or None,  # type: ignore[arg-type]
                            headers=headers,
                        )
                        response = await client.send(request, stream=True, follow_redirects=False)
                        try:
                            raw = await aread_body(response, answers.MAX_ANSWER_BYTES)
                        finally:
                            await response.aclose()
                except AnswerTooLarge as err:
                    raise answer_too_large(call, response.status_code, err.declared) from None
                except (httpx.TransportError, asyncio.TimeoutError) as err:
                    raise self._no_answer(call, config, err) from err
                self._answered = True
                body = decode_body(response.headers, raw)
                return read_answer(call, response.status_code, response.headers, body, policy, config.token)
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def drive(self, procedure: Procedure[_T]) -> _T:
        """Run a sans-IO procedure of the wire: send its calls, take its pauses, return its result."""
        driving = _Driving(procedure)
        for effect in driving:
            with driving.outcome():
                if isinstance(effect, Sleep):
                    await asyncio.sleep(effect.seconds)
                else:
                    driving.answer = await self.send(effect)
        return driving.result

    @staticmethod
    def _method_from_plan(plan: Callable[..., _Plan[Any]]) -> Callable[..., Any]:
        async def method(self: QStashAsyncHook, *args: Any, **kwargs: Any) -> Any:
            procedure_for = plan(self, *args, **kwargs)  # the inputs are read (and refused) first
            return await self.drive(procedure_for(await self.get_config()))

        return method
