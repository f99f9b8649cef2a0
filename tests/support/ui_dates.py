"""
How the Airflow 3 UI writes a date-time in the Trigger form's date-time fields, for the browser tests.

The UI formats with dayjs ``"MMM DD, YYYY HH:mm"``: the day of the month always has two digits
(``Dec 05, 2026 04:00``), never ``Dec 5``. Kept outside ``tests/integration/live`` so its test
(``tests/project/test_ui_dates.py``) runs in ``make unit``.
"""

from __future__ import annotations

from datetime import datetime

#: The same pattern in strftime terms (English month abbreviations, as the UI's default locale writes them).
UI_DATETIME_FORMAT = "%b %d, %Y %H:%M"


def shown(moment: datetime) -> str:
    """How the form shows a picked date-time: ``Nov 20, 2026 10:00``, ``Dec 05, 2026 04:00``."""
    return moment.strftime(UI_DATETIME_FORMAT)
