"""The keys of a bulk-cancel run's summary (the operator's XCom and the trigger's success event), stated once."""

from __future__ import annotations

BULK_CANCEL_SUMMARY_KEYS = frozenset(
    {
        "cancelled",
        "batches",
        "rounds",
        "mode",
        "action_ids",
        "left",
        "unconfirmed",
        "from_date",
        "to_date",
        "filters",
        "duration_seconds",
    }
)
