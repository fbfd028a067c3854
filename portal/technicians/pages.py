"""The technicians' pages: every node's health, one node's history, the mesh map.

Signed in with the ``technician`` role or above (:func:`portal.auth.login_required`).
Nothing here changes anything: the pages only read the agents' health APIs
(see :mod:`portal.technicians.gather`), and ask only agents the gatherer
already knows, never an address taken from the URL.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, abort, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal, format_percent
from flask_babel import gettext as _

from portal.auth import login_required

if TYPE_CHECKING:
    from node.config import NodeConfig
    from portal.technicians import charts
    from portal.technicians.gather import Gatherer, NodeStatus

# The gatherer, charts, map and node.health are imported by the views that use them:
# a node whose organisers never open these pages does not carry them (2 MB of the
# portal's memory, bench/memory.py).

bp = Blueprint("technicians", __name__, url_prefix="/technicians")

#: app.extensions keys of this blueprint's state.
GATHERER_KEY = "meshhub.technicians.gatherer"
SERIES_CACHE_KEY = "meshhub.technicians.series"
#: Graph data is asked again after this long (the agent averages 10-minute buckets).
SERIES_CACHE_SECONDS = 60
SERIES_CACHE_SIZE = 32
_create_lock = threading.Lock()


def _config() -> NodeConfig:
    return cast("NodeConfig", current_app.config["NODE_CONFIG"])


def gatherer(app: Flask | None = None) -> Gatherer:
    """This app's :class:`Gatherer`, made on first use from ``node.toml``'s ``[agent]``.

    Tests may put their own under ``app.extensions[GATHERER_KEY]`` first.
    """
    from portal.technicians.gather import Gatherer, own_target

    app = app or cast(Flask, current_app._get_current_object())  # type: ignore[attr-defined]
    with _create_lock:
        found = app.extensions.get(GATHERER_KEY)
        if found is None:
            cfg: NodeConfig = app.config["NODE_CONFIG"]
            found = Gatherer(own_target(cfg.agent.listen, cfg.agent.port), cfg.agent.peers,
                             agent_port=cfg.agent.port)
            app.extensions[GATHERER_KEY] = found
    return cast("Gatherer", found)


@bp.app_template_filter("tech_number")
def tech_number(value: float, pattern: str = "#,##0.#") -> str:
    """A number in the reader's language (``{{ x|tech_number('#,##0.0') }}``)."""
    return str(format_decimal(value, pattern))


@bp.app_template_filter("tech_percent")
def tech_percent(value: float) -> str:
    """A 0–1 ratio as a percentage in the reader's language."""
    return str(format_percent(value, "#,##0%"))


def _poor_from() -> float:
    return float(_config().health.link_degraded_cost)


def _node_url(status: NodeStatus) -> str:
    return url_for("technicians.node", target=status.target)


@bp.get("/")
@login_required("technician")
def index() -> ResponseReturnValue:
    """The table of every known node."""
    from portal.technicians import summary
    from portal.technicians.labels import alert_text

    statuses = gatherer().statuses()
    now = time.time()
    rows = [summary.row(s, now) for s in statuses]
    return render_template("technicians/index.html", rows=rows, now=int(now),
                           up=sum(1 for s in statuses if s.up), alert_text=alert_text)


@bp.get("/map")
@login_required("technician")
def mesh() -> ResponseReturnValue:
    """The mesh as a map: nodes placed by ``node.coordinates``, links by quality."""
    from portal.technicians import summary
    from portal.technicians.labels import QUALITY_LABELS
    from portal.technicians.svg import mesh_map

    statuses = gatherer().statuses()
    nodes, links = summary.mesh_graph(statuses, _poor_from(), href=_node_url)
    up = sum(1 for n in nodes if n.up)
    desc = _("%(nodes)d nodes (%(up)d up) and %(links)d links. The table below lists every "
             "link with its cost.", nodes=len(nodes), up=up, links=len(links))
    svg, geographic = mesh_map(
        nodes, links, title=_("Map of the mesh"), desc=desc, up_label=_("up"),
        down_label=_("down"), unknown_label=_("heard of, not asked"),
        quality_labels={k: str(v) for k, v in QUALITY_LABELS.items()},
        legend_title=_("Links:"), no_nodes=_("No nodes known yet."))
    names = {n.key: n.label for n in nodes}
    return render_template("technicians/map.html", svg=svg, geographic=geographic,
                           links=links, names=names, poor_from=_poor_from(),
                           quality_labels=QUALITY_LABELS, has_mesh=any(
                               summary.neighbours_of(s.doc) is not None for s in statuses))


def _series(target: str, period: charts.Period, end: float) -> dict[str, Any]:
    """Graph data of ``target`` for ``period``, from a small per-app cache."""
    from portal.technicians.gather import fetch_series

    cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = \
        current_app.extensions.setdefault(SERIES_CACHE_KEY, {})
    key = (target, period.key)
    hit = cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < SERIES_CACHE_SECONDS:
        return hit[1]
    data = fetch_series(target, end - period.seconds, period.step)
    if len(cache) >= SERIES_CACHE_SIZE:
        cache.pop(min(cache, key=lambda k: cache[k][0]))
    cache[key] = (time.monotonic(), data)
    return data


@bp.get("/nodes/<target>")
@login_required("technician")
def node(target: str) -> ResponseReturnValue:
    """One node: its state, alerts with advice, neighbours and history graphs."""
    from node.health.document import DocumentError
    from portal.technicians import charts, summary
    from portal.technicians.labels import QUALITY_LABELS, alert_text

    known = gatherer().statuses()  # a fresh round if stale; it may discover ``target``
    status = gatherer().status(target)
    if status is None:
        abort(404)
    period = charts.PERIODS.get(request.args.get("period", "day"))
    if period is None:
        abort(404)
    now = time.time()
    graphs: list[dict[str, Any]] = []
    numbers: list[list[str]] = []
    history_error = None
    try:
        data = _series(target, period, now)
    except DocumentError as exc:
        history_error = str(exc)
    else:
        graphs = charts.charts(data["series"], period, now)
        numbers = charts.table(data["series"], period, now)
    return render_template(
        "technicians/node.html", status=status, row=summary.row(status, now), period=period,
        periods=charts.PERIODS, graphs=graphs, numbers=numbers, history_error=history_error,
        quantities=charts.QUANTITIES, alert_text=alert_text, quality_labels=QUALITY_LABELS,
        neighbours=summary.neighbours(status, known, _poor_from()), node_url=_node_url,
        doc=status.doc or {})
