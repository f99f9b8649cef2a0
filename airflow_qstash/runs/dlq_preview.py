"""
The DLQ operators' dry run, without I/O: list what the filters select and act on nothing.

:meth:`DLQPreview.steps` reads ``GET /v2/dlq`` pages (100 a page, following the cursor) with the run's
filters and reports the count, the count per ``responseStatus`` and a sample of at most
:data:`PREVIEW_SAMPLE_SIZE` entries (``dlqId``, ``messageId``, ``url``, ``responseStatus``,
``createdAt``), every text from the answer passed through :func:`~airflow_qstash.exceptions.redact`. No
``DELETE`` or ``POST`` is sent. Every page counts against ``max_requests``, a cursor seen twice stops it,
and so it ends. A ``dlq_ids`` run lists the DLQ and keeps the entries with those ids (``GET /v2/dlq``
takes no ``dlqIds``), stopping as soon as all are found; ``flow_control_keys`` is matched on each
listed entry, as the real run does: the listing is the run's own (:class:`~.dlq.DLQListing`).

Nothing here imports an HTTP client: the operator module imports this one at DAG parse time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_qstash.exceptions import QStashRunIncomplete, redact
from airflow_qstash.filters import DLQ_ACTION_FILTERS, DLQFilter
from airflow_qstash.inputs import parse_bound
from airflow_qstash.runs.dlq import DELETE, DLQListing

if TYPE_CHECKING:
    from airflow_qstash.protocol.dlq import DLQPage

#: The most entries a dry run shows (ids, URLs); the counts cover every selected entry.
PREVIEW_SAMPLE_SIZE = 20
#: The longest text kept from one answer field of a sample entry (a URL, an id).
PREVIEW_TEXT_LIMIT = 300
#: The most distinct response statuses counted one by one; the others are counted under ``"other"``.
MAX_STATUS_KEYS = 100


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return redact(value if isinstance(value, str) else str(value), limit=PREVIEW_TEXT_LIMIT)


def _status(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "none" if value is None else "other"


@dataclass
class DLQPreview(DLQListing):
    """
    A dry run of a DLQ delete or retry: what the filters select now, nothing acted on.

    :param action: the run it previews (``delete`` or ``retry``), named in the summary and the log.
    :param dlq_filter: what the run would select.
    :param max_requests: the most listing requests.
    """

    action: str
    dlq_filter: DLQFilter
    max_requests: Any = None
    requests: int = 0
    list_requests: int = 0
    selected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.max_requests = parse_bound(self.max_requests, "max_requests")

    def steps(
        self, base_url: str = "", *, log: Any = None, poll_interval_max: float = 0.0
    ) -> Generator[Any, Any, dict[str, Any]]:
        """The listing as a sans-IO procedure; returns :meth:`summary` (``poll_interval_max``: unused, no polls)."""
        wanted = set(self.dlq_filter.dlq_ids)
        seen_ids: set[str] = set()

        def on_page(page: DLQPage) -> bool:
            for entry in self.listed(page):
                dlq_id = entry.get("dlqId")
                if wanted and dlq_id not in wanted:
                    continue
                if isinstance(dlq_id, str):
                    if dlq_id in seen_ids:
                        continue
                    seen_ids.add(dlq_id)
                self._count(entry)
            return bool(wanted) and wanted <= seen_ids

        yield from self.list_pages(on_page, lambda: "while listing")
        summary = self.summary()
        if wanted:
            summary["not_found"] = len(wanted - seen_ids)
        return summary

    def _count(self, entry: dict[str, Any]) -> None:
        self.selected += 1
        status = _status(entry.get("responseStatus"))
        if status not in self.statuses and len(self.statuses) >= MAX_STATUS_KEYS:
            status = "other"
        self.statuses[status] += 1
        if len(self.sample) < PREVIEW_SAMPLE_SIZE:
            created = entry.get("createdAt")
            self.sample.append(
                {
                    "dlq_id": _text(entry.get("dlqId")),
                    "message_id": _text(entry.get("messageId")),
                    "url": _text(entry.get("url")),
                    "response_status": entry.get("responseStatus")
                    if isinstance(entry.get("responseStatus"), int)
                    else None,
                    "created_at": created if isinstance(created, int) and not isinstance(created, bool) else None,
                }
            )

    def summary(self) -> dict[str, Any]:
        """
        The XCom value: ``dry_run`` (``True``), the ``action`` it previews, ``selected``, ``by_response_status``
        (status → count; ``none`` for entries without one), ``sample`` (at most ``sample_limit`` entries),
        ``requests``/``list_requests``, the window (Unix ms), ``filters``, ``duration_seconds``; and the
        action's own count (``deleted``/``retried``) as 0: nothing was acted on.
        """
        done_key = "deleted" if self.action == DELETE else "retried"
        return {
            "dry_run": True,
            "action": self.action,
            done_key: 0,
            "selected": self.selected,
            "by_response_status": dict(sorted(self.statuses.items())),
            "sample": [dict(item) for item in self.sample],
            "sample_limit": PREVIEW_SAMPLE_SIZE,
            "requests": self.requests,
            "list_requests": self.list_requests,
            **self.window_summary(self.dlq_filter, DLQ_ACTION_FILTERS.get(self.action)),
        }

    def incomplete(self, reason: str) -> QStashRunIncomplete:
        """The error when the listing stops early; nothing was acted on either way."""
        return QStashRunIncomplete(
            f"QStash DLQ {self.action} dry run incomplete: {reason}. {self.selected} entr"
            f"{'y' if self.selected == 1 else 'ies'} listed in {self.list_requests} request(s) so far; nothing "
            "was deleted or retried (raise max_requests, or narrow the filters).",
            self.summary(),
        )

    def options(self) -> dict[str, Any]:
        """No options: a dry run only lists."""
        return {}


def log_preview(log: Any, summary: dict[str, Any]) -> None:
    """The dry run's log lines: the count, the count per response status, the sample."""
    log.info(
        "QStash DLQ %s DRY RUN: %d entr%s selected (%s) in %d listing request(s); nothing was %s.",
        summary["action"],
        summary["selected"],
        "y" if summary["selected"] == 1 else "ies",
        summary.get("filters", ""),
        summary["list_requests"],
        "deleted" if summary["action"] == "delete" else "retried",
    )
    log.info("Selected entries per response status: %s.", summary["by_response_status"] or "none")
    for item in summary["sample"]:
        log.info(
            "  dlqId=%s messageId=%s url=%s responseStatus=%s",
            item["dlq_id"],
            item["message_id"],
            item["url"],
            item["response_status"],
        )
    if summary["selected"] > len(summary["sample"]):
        log.info("(a sample of %d of the %d selected entries)", len(summary["sample"]), summary["selected"])
