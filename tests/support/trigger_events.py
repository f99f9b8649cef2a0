"""What the triggerer does with a trigger, for the tests that run one outside Airflow."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    """Take the trigger's first event (its payload), then close the generator, as the triggerer does."""
    agen: Any = trigger.run()  # an async generator: the triggerer closes it after the first event
    try:
        event = await agen.__anext__()
    finally:
        await agen.aclose()
    return dict(event.payload)
