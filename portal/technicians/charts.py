"""The node page's graphs: periods, time ticks in local time, units, and the numbers' table.

Builds :class:`~portal.technicians.svg.Chart` values from an agent's
``/api/health/series`` answer with the reader's language and time zone
(Flask-Babel), so :mod:`portal.technicians.svg` stays free of Flask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_babel import format_datetime, format_decimal, format_percent, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from portal.technicians.svg import Chart, line_chart

Points = list[tuple[float, float | None]]


@dataclass(frozen=True)
class Period:
    """A span the graphs can show."""

    key: str
    label: LazyString
    seconds: int
    step: int  #: seconds per point (the agent averages within it)
    tick_hours: int  #: a time tick every this many hours (local time)
    table_seconds: int  #: one row of the numbers' table per this many seconds


PERIODS: dict[str, Period] = {
    "day": Period("day", _l("Last 24 hours"), 86400, 600, 4, 3600),
    "week": Period("week", _l("Last 7 days"), 7 * 86400, 3600, 24, 6 * 3600),
}


def _percent(value: float) -> str:
    return str(format_percent(value, "#,##0%"))


def _celsius(value: float) -> str:
    return _("%(value)s °C", value=format_decimal(value, "#,##0.#"))


def _volts(value: float) -> str:
    return _("%(value)s V", value=format_decimal(value, "#,##0.##"))


def _count(value: float) -> str:
    return str(format_decimal(value, "#,##0.#"))


@dataclass(frozen=True)
class Quantity:
    """One graphed quantity: its series key, name, unit formatter and fixed bounds."""

    key: str
    name: LazyString
    fmt: Callable[[float], str]
    y_min: float | None = None
    y_max: float | None = None


QUANTITIES = (
    Quantity("cpu_ratio", _l("CPU busy"), _percent, 0.0, 1.0),
    Quantity("memory_ratio", _l("Memory used"), _percent, 0.0, 1.0),
    Quantity("temperature_celsius", _l("Processor temperature"), _celsius),
    Quantity("voltage_volts", _l("Supply voltage (power monitor)"), _volts),
    Quantity("disk_ratio", _l("Disk used"), _percent, 0.0, 1.0),
    Quantity("clients", _l("Residents' devices (DHCP leases)"), _count, 0.0),
)


def time_ticks(start: float, end: float, hours: int) -> list[float]:
    """Every ``hours`` hours on the local clock (midnight-aligned) between start and end."""
    zone = get_timezone()
    local = datetime.fromtimestamp(start, tz=UTC).astimezone(zone)
    moment = local.replace(minute=0, second=0, microsecond=0)
    moment -= timedelta(hours=moment.hour % hours)
    ticks = []
    while moment.timestamp() <= end:
        if moment.timestamp() >= start:
            ticks.append(moment.timestamp())
        moment = (moment + timedelta(hours=hours)).astimezone(zone)
    return ticks


def _time_label(period: Period) -> Callable[[float], str]:
    pattern = "HH:mm" if period.key == "day" else "EEE d"

    def label(t: float) -> str:
        return str(format_datetime(datetime.fromtimestamp(t, tz=UTC), pattern))
    return label


def _summary(points: Points, fmt: Callable[[float], str]) -> str | None:
    values = [v for _t, v in points if v is not None]
    if not values:
        return None
    return _("lowest %(low)s, highest %(high)s, latest %(last)s",
             low=fmt(min(values)), high=fmt(max(values)), last=fmt(values[-1]))


def charts(series: dict[str, Points], period: Period, end: float) -> list[dict[str, Any]]:
    """One drawn graph per quantity: ``{"name", "svg", "summary"}`` (summary None: no data)."""
    start = end - period.seconds
    ticks = time_ticks(start, end, period.tick_hours)
    found = []
    for i, q in enumerate(QUANTITIES):
        points = [(t, v) for t, v in series.get(q.key, []) if start <= t <= end]
        summary = _summary(points, q.fmt)
        desc = (_("%(name)s over the %(period)s: %(summary)s.", name=q.name,
                  period=str(period.label).lower(), summary=summary) if summary
                else _("No values for %(name)s in this period.", name=q.name))
        chart = Chart(title=str(q.name), desc=desc, start=start, end=end, step=period.step,
                      format_value=q.fmt, format_time=_time_label(period), time_ticks=ticks,
                      y_min=q.y_min, y_max=q.y_max, no_data=_("No data in this period"))
        found.append({"name": q.name, "svg": line_chart(chart, points, f"g{i}"),
                      "summary": summary, "key": q.key})
    return found


def table(series: dict[str, Points], period: Period, end: float) -> list[list[str]]:
    """The numbers behind the graphs, averaged per ``table_seconds``: rows of text, newest first.

    Each row is [time, one cell per quantity]; "–" where nothing was measured.
    """
    start = end - period.seconds
    buckets: dict[int, list[list[float]]] = {}
    for column, q in enumerate(QUANTITIES):
        for t, v in series.get(q.key, []):
            if v is None or not start <= t <= end:
                continue
            cells = buckets.setdefault(int(t // period.table_seconds),
                                       [[] for _q in QUANTITIES])
            cells[column].append(v)
    label = _time_label(period) if period.key == "week" else None
    rows = []
    for key in sorted(buckets, reverse=True):
        moment = datetime.fromtimestamp(key * period.table_seconds, tz=UTC)
        when = (label(moment.timestamp()) + " " + str(format_datetime(moment, "HH:mm"))
                if label else str(format_datetime(moment, "HH:mm")))
        rows.append([when] + [q.fmt(sum(c) / len(c)) if c else "–"
                              for q, c in zip(QUANTITIES, buckets[key], strict=True)])
    return rows
