"""Dates as people say them: "today", "yesterday", "3 days ago", "in 2 days".

Counted in calendar days in the node's time zone (the one every date on the
hub is shown in), so something posted at 23:50 is "yesterday" ten minutes
later. Further than :data:`RELATIVE_DAYS` away, the date itself reads better.
Templates show the exact date and time alongside, in ``<time title>``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask_babel import format_date, get_timezone, ngettext
from flask_babel import gettext as _

#: Up to this many days away a date is said relatively; beyond, it is written out.
RELATIVE_DAYS = 13


def days_between(timestamp: int, now: float, zone: object) -> int:
    """Calendar days from ``now`` to ``timestamp`` in ``zone`` (negative: in the past)."""
    def day(moment: float) -> datetime:
        return datetime.fromtimestamp(moment, tz=UTC).astimezone(zone)  # type: ignore[arg-type]
    return (day(timestamp).date() - day(now).date()).days


def ago(timestamp: int | None, now: float | None = None) -> str:
    """``timestamp`` relative to today, in the reader's language ("" for none)."""
    if timestamp is None:
        return ""
    days = days_between(timestamp, time.time() if now is None else now, get_timezone())
    if days == 0:
        return _("today")
    if days == -1:
        return _("yesterday")
    if days == 1:
        return _("tomorrow")
    if -RELATIVE_DAYS <= days < 0:
        return ngettext("%(num)d day ago", "%(num)d days ago", -days)
    if 0 < days <= RELATIVE_DAYS:
        return ngettext("in %(num)d day", "in %(num)d days", days)
    return format_date(datetime.fromtimestamp(timestamp, tz=UTC), "medium")
