"""The browser tests' idea of how the UI writes a date-time holds on every day of a year, at every edge."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.ui_dates import UI_DATETIME_FORMAT, shown

# dayjs "MMM DD, YYYY HH:mm": three-letter month, two-digit day, four-digit year, 24-hour two-digit time.
DAYJS_SHAPE = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{2}), (\d{4}) (\d{2}):(\d{2})$")


@pytest.mark.parametrize("year", [2026, 2028])  # 2028 is a leap year: Feb 29 is a day too
def test_every_day_of_a_year_is_written_as_the_ui_writes_it(year: int):
    day = datetime(year, 1, 1, tzinfo=timezone.utc)
    seen = 0
    while day.year == year:
        for hour, minute in ((0, 0), (4, 5), (23, 59)):
            moment = day.replace(hour=hour, minute=minute)
            text = shown(moment)
            match = DAYJS_SHAPE.match(text)
            assert match, text
            assert int(match.group(2)) == moment.day and int(match.group(3)) == moment.year
            assert (int(match.group(4)), int(match.group(5))) == (hour, minute)
            # It reads back to the same moment: nothing is lost or shifted.
            assert datetime.strptime(text, UI_DATETIME_FORMAT).replace(tzinfo=timezone.utc) == moment
        seen += 1
        day += timedelta(days=1)
    assert seen == (366 if year % 4 == 0 else 365)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 12, 5, 4, 0), "Dec 05, 2026 04:00"),  # the day that broke CI: days 1-9 have a zero
        (datetime(2026, 1, 1, 0, 0), "Jan 01, 2026 00:00"),
        (datetime(2026, 12, 31, 23, 59), "Dec 31, 2026 23:59"),
        (datetime(2026, 11, 20, 10, 0), "Nov 20, 2026 10:00"),
    ],
)
def test_the_days_that_matter(moment: datetime, text: str):
    assert shown(moment) == text
