"""Server-side SVG for the technicians' pages: history graphs and the mesh map.

Pure functions: numbers and already translated words in, an SVG string out
(no Flask, no JavaScript), so the tests check their output as XML. Every
drawing carries a ``<title>`` and a ``<desc>`` (``role="img"``, labelled by
both); the pages add the numbers as a table for those who cannot see it.
Colours are set as attributes (not CSS), so a drawing looks the same inline,
opened alone, or in a headless browser's screenshot; link quality on the map
is told by colour *and* dash pattern *and* a number, never by colour alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import escape

__all__ = ["QUALITIES", "Chart", "MapLink", "MapNode", "line_chart", "mesh_map", "nice_ticks",
           "quality_of"]

INK, MUTED, GRID, LINE, PAPER = "#1b1b1b", "#4a4a4a", "#d5d8d0", "#0b5394", "#ffffff"
FONT = 'font-family="system-ui,sans-serif"'

#: Link qualities: (name, colour, dash pattern); the legend explains each.
QUALITIES: dict[str, tuple[str, str]] = {
    "good": ("#1d6b2f", ""),  # solid green
    "fair": ("#8a5300", "10 5"),  # dashed amber (dark enough for text contrast)
    "poor": ("#b00020", "3 4"),  # dotted red
    "unknown": ("#4a4a4a", "1 6"),  # sparse dots, grey
}


def _fmt(value: float) -> str:
    """A coordinate with at most one decimal: small output, enough precision for a screen."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _attr(text: object) -> str:
    return str(escape(str(text)))


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """About ``count`` round tick values covering ``low``..``high`` (1, 2, 2.5, 5 × 10^n)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


@dataclass(frozen=True)
class Chart:
    """What a history graph shows; the words are already translated."""

    title: str
    desc: str
    start: float  #: left edge (Unix seconds)
    end: float  #: right edge
    step: float  #: seconds between points; a longer silence breaks the line
    format_value: Callable[[float], str]
    format_time: Callable[[float], str]
    time_ticks: Sequence[float] = ()
    y_min: float | None = None  #: fixed bottom (0 for ratios and counts)
    y_max: float | None = None  #: fixed top (1 for ratios)
    no_data: str = "No data"
    width: int = 600
    height: int = 190


def _segments(points: Sequence[tuple[float, float | None]],
              max_gap: float) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known values; a ``None`` or a silence longer than ``max_gap`` splits."""
    runs: list[list[tuple[float, float]]] = []
    previous_t: float | None = None
    for t, v in points:
        if v is None or not math.isfinite(v):
            previous_t = None
            continue
        if previous_t is None or t - previous_t > max_gap or not runs:
            runs.append([])
        runs[-1].append((t, v))
        previous_t = t
    return runs


def line_chart(chart: Chart, points: Sequence[tuple[float, float | None]], ident: str) -> str:
    """An SVG line graph of ``points`` ((time, value or None), oldest first).

    ``ident`` makes the ``<title>``/``<desc>`` ids unique on the page. Gaps
    (missing values, or no sample for more than 2.5 steps) break the line; a
    lone value is drawn as a dot. The y axis has round ticks with labels from
    ``format_value``; the x axis has ``time_ticks`` labelled by ``format_time``.
    """
    w, h = chart.width, chart.height
    left, right, top, bottom = 64, 14, 12, 30
    pw, ph = w - left - right, h - top - bottom
    runs = _segments(points, 2.5 * chart.step)
    values = [v for run in runs for _, v in run]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
             f'height="{h}" role="img" aria-labelledby="{ident}-t {ident}-d" class="chart" '
             f'{FONT} font-size="12">',
             f'<title id="{ident}-t">{escape(chart.title)}</title>',
             f'<desc id="{ident}-d">{escape(chart.desc)}</desc>',
             f'<rect x="0" y="0" width="{w}" height="{h}" fill="{PAPER}"/>']
    low = chart.y_min if chart.y_min is not None else (min(values) if values else 0.0)
    high = chart.y_max if chart.y_max is not None else (max(values) if values else 1.0)
    if values and chart.y_min is None:
        low = min(low, min(values))
    if values and chart.y_max is None:
        high = max(high, max(values))
    if high - low < 1e-9:  # a flat line: give it room
        pad = abs(high) * 0.1 or 1.0
        low, high = (low - pad if chart.y_min is None else low), high + pad
    ticks = nice_ticks(low, high)
    low, high = min(ticks[0], low), max(ticks[-1], high)
    span_t = max(chart.end - chart.start, 1e-9)

    def x(t: float) -> float:
        return left + (t - chart.start) / span_t * pw

    def y(v: float) -> float:
        return top + ph - (v - low) / (high - low) * ph

    parts.append('<g class="grid">')
    for tick in ticks:
        ty = _fmt(y(tick))
        parts.append(f'<line x1="{left}" x2="{w - right}" y1="{ty}" y2="{ty}" stroke="{GRID}"/>'
                     f'<text x="{left - 6}" y="{ty}" text-anchor="end" dominant-baseline="middle"'
                     f' fill="{MUTED}">{escape(chart.format_value(tick))}</text>')
    for tick in chart.time_ticks:
        if chart.start <= tick <= chart.end:
            tx = _fmt(x(tick))
            parts.append(f'<line x1="{tx}" x2="{tx}" y1="{top}" y2="{top + ph}" '
                         f'stroke="{GRID}"/><text x="{tx}" y="{h - 10}" text-anchor="middle" '
                         f'fill="{MUTED}">{escape(chart.format_time(tick))}</text>')
    parts.append("</g>")
    parts.append(f'<path d="M{left} {top}V{top + ph}H{w - right}" fill="none" stroke="{MUTED}"/>')
    if not runs:
        parts.append(f'<text x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" text-anchor="middle" '
                     f'fill="{INK}" font-size="14" class="no-data">{escape(chart.no_data)}</text>')
    for run in runs:
        if len(run) == 1:
            (t, v), = run
            parts.append(f'<circle cx="{_fmt(x(t))}" cy="{_fmt(y(v))}" r="2.5" fill="{LINE}"/>')
            continue
        coords = " ".join(f"{_fmt(x(t))},{_fmt(y(v))}" for t, v in run)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{LINE}" '
                     'stroke-width="2" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "".join(parts)


# --- the mesh map -------------------------------------------------------------------

@dataclass(frozen=True)
class MapNode:
    """A node on the map; ``coordinates`` is (latitude, longitude) when known."""

    key: str
    label: str
    up: bool | None  #: None: heard of (a neighbour's neighbour) but not asked
    coordinates: tuple[float, float] | None = None
    href: str | None = None


@dataclass(frozen=True)
class MapLink:
    """A radio (or wired) link between two nodes, with babeld's cost when known."""

    a: str
    b: str
    cost: float | None
    quality: str  #: a key of :data:`QUALITIES`


def quality_of(cost: float | None, poor_from: float, good_below: float = 384) -> str:
    """``good``/``fair``/``poor``/``unknown`` for a babeld link cost (lower is better)."""
    if cost is None:
        return "unknown"
    if cost < good_below:
        return "good"
    return "fair" if cost < poor_from else "poor"


def _layout(nodes: Sequence[MapNode], w: float, h: float,
            margin: float) -> tuple[dict[str, tuple[float, float]], bool]:
    """Positions per node key, and whether they are geographic.

    With coordinates for at least two places: an equirectangular projection
    scaled to fit (fine over a neighbourhood), north up; nodes without
    coordinates stand in a row along the bottom. Otherwise a circle in name
    order, so that the picture never jumps between visits.
    """
    placed = [n for n in nodes if n.coordinates is not None]
    if len({n.coordinates for n in placed}) > 1:
        unplaced = sorted((n for n in nodes if n.coordinates is None),
                          key=lambda n: (n.label, n.key))
        strip = 60 if unplaced else 0
        lats = [n.coordinates[0] for n in placed if n.coordinates]
        lons = [n.coordinates[1] for n in placed if n.coordinates]
        k = math.cos(math.radians(sum(lats) / len(lats)))
        xs = [lon * k for lon in lons]
        span_x, span_y = max(xs) - min(xs), max(lats) - min(lats)
        scale = min((w - 2 * margin) / max(span_x, 1e-9),
                    (h - strip - 2 * margin) / max(span_y, 1e-9))
        cx = (w - span_x * scale) / 2
        cy = (h - strip - span_y * scale) / 2
        places = {n.key: (cx + (x - min(xs)) * scale, h - strip - cy - (lat - min(lats)) * scale)
                  for n, x, lat in zip(placed, xs, lats, strict=True)}
        for i, n in enumerate(unplaced):
            places[n.key] = (w * (i + 1) / (len(unplaced) + 1), h - strip / 2 - 8)
        return places, True
    ordered = sorted(nodes, key=lambda n: (n.label, n.key))
    if len(ordered) == 1:
        return {ordered[0].key: (w / 2, h / 2)}, False
    radius = min(w, h) / 2 - margin
    return ({n.key: (w / 2 + radius * math.cos(2 * math.pi * i / len(ordered) - math.pi / 2),
                     h / 2 + radius * math.sin(2 * math.pi * i / len(ordered) - math.pi / 2))
             for i, n in enumerate(ordered)}, False)


def mesh_map(nodes: Sequence[MapNode], links: Sequence[MapLink], *, title: str, desc: str,
             up_label: str, down_label: str, unknown_label: str,
             quality_labels: dict[str, str],
             legend_title: str, no_nodes: str, width: int = 720,
             height: int = 480) -> tuple[str, bool]:
    """The mesh as SVG, and whether node positions are geographic.

    Links are coloured by quality and dashed differently per quality, and
    carry their cost as a number; nodes that are down are hollow with a
    cross. ``quality_labels`` names each quality in the legend (translated).
    The drawing is a labelled group, not an image, because its nodes are links.
    """
    legend_h = 28
    map_h = height - legend_h
    places, geographic = _layout(nodes, width, map_h, 70)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="group" aria-labelledby="map-t" '
             'aria-describedby="map-d" '
             f'class="mesh-map" {FONT} font-size="13">',
             f'<title id="map-t">{escape(title)}</title><desc id="map-d">{escape(desc)}</desc>',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="{PAPER}"/>']
    if not nodes:
        parts.append(f'<text x="{width / 2:.0f}" y="{map_h / 2:.0f}" text-anchor="middle" '
                     f'fill="{INK}" font-size="15">{escape(no_nodes)}</text>')
    parts.append('<g class="links">')
    for link in links:
        if link.a not in places or link.b not in places:
            continue
        (x1, y1), (x2, y2) = places[link.a], places[link.b]
        colour, dash = QUALITIES.get(link.quality, QUALITIES["unknown"])
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{_fmt(x1)}" y1="{_fmt(y1)}" x2="{_fmt(x2)}" y2="{_fmt(y2)}" '
                     f'stroke="{colour}" stroke-width="4"{dashing} data-quality="{link.quality}"/>')
        if link.cost is not None:
            parts.append(f'<text x="{_fmt((x1 + x2) / 2)}" y="{_fmt((y1 + y2) / 2 - 6)}" '
                         f'text-anchor="middle" fill="{colour}" stroke="{PAPER}" '
                         f'stroke-width="4" paint-order="stroke" font-weight="700">'
                         f'{_fmt(link.cost)}</text>')
    parts.append('</g><g class="nodes">')
    for node in nodes:
        nx, ny = places[node.key]
        state = {True: up_label, False: down_label, None: unknown_label}[node.up]
        shape = (f'<circle cx="{_fmt(nx)}" cy="{_fmt(ny)}" r="11" fill="{LINE}" '
                 f'stroke="{INK}" stroke-width="2"/>' if node.up else
                 f'<circle cx="{_fmt(nx)}" cy="{_fmt(ny)}" r="11" fill="{PAPER}" '
                 f'stroke="{MUTED}" stroke-width="2" stroke-dasharray="3 3"/>'
                 if node.up is None else
                 f'<circle cx="{_fmt(nx)}" cy="{_fmt(ny)}" r="11" fill="{PAPER}" '
                 f'stroke="{QUALITIES["poor"][0]}" stroke-width="3"/>'
                 f'<path d="M{_fmt(nx - 6)} {_fmt(ny - 6)}l12 12m0 -12l-12 12" '
                 f'stroke="{QUALITIES["poor"][0]}" stroke-width="3"/>')
        text = (f'<text x="{_fmt(nx)}" y="{_fmt(ny + 28)}" text-anchor="middle" fill="{INK}" '
                f'stroke="{PAPER}" stroke-width="4" paint-order="stroke">'
                f'{escape(node.label)} ({escape(state)})</text>')
        up = {True: "true", False: "false", None: "unknown"}[node.up]
        body = f'<g class="node" data-up="{up}">{shape}{text}</g>'
        if node.href:
            body = f'<a href="{_attr(node.href)}">{body}</a>'
        parts.append(body)
    parts.append("</g>")
    parts.append(_legend(width, height - legend_h, legend_title, quality_labels))
    parts.append("</svg>")
    return "".join(parts), geographic


def _legend(width: int, top: float, title: str, labels: dict[str, str]) -> str:
    y = top + 16
    parts = [f'<g class="legend"><line x1="0" x2="{width}" y1="{_fmt(top)}" y2="{_fmt(top)}" '
             f'stroke="{GRID}"/><text x="8" y="{_fmt(y + 4)}" fill="{INK}" '
             f'font-weight="700">{escape(title)}</text>']
    x = 8 + 9 * len(title) + 16
    for quality, (colour, dash) in QUALITIES.items():
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        label = labels.get(quality, quality)
        parts.append(f'<line x1="{x}" x2="{x + 36}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
                     f'stroke="{colour}" stroke-width="4"{dashing}/>'
                     f'<text x="{x + 42}" y="{_fmt(y + 4)}" fill="{INK}">{escape(label)}</text>')
        x += 42 + 7 * len(label) + 20
    parts.append("</g>")
    return "".join(parts)
