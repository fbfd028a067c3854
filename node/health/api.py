"""The agent's small HTTP API, a plain WSGI application (served by waitress).

``GET /metrics``              the Prometheus text format (``node.health.metrics``)
``GET /api/health``           the latest health document (JSON, ``docs/health.md``)
``GET /api/health/history``   past samples: ``?since=UNIX&limit=N`` (N <= 1000)
``GET /api/health/alerts``    alert records, newest first: ``?limit=N``
``GET /api/health/series``    averages per ``step`` seconds for graphs: ``?since=UNIX&step=S``
                              (at most :data:`MAX_SERIES_POINTS` points)

Responses are capped at :data:`MAX_RESPONSE_BYTES`: a history that would be
larger is thinned out (every other sample) until it fits, and says so.
No framework: the agent stays small on a 512 MB board. ``prometheus_client`` (about
8 MB of modules) is imported at the first ``/metrics`` request, not at start: an agent
nobody scrapes does not carry it. It imports TLS classes, which the agent keeps out
until then (:func:`node.runtime.import_with_tls`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from node.health.monitor import HealthMonitor
from node.runtime import import_with_tls

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_HISTORY_SAMPLES = 1000
MAX_SERIES_POINTS = 2000

StartResponse = Callable[..., Any]


def _respond(start_response: StartResponse, status: str, body: bytes,
             content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"),
                            ("X-Content-Type-Options", "nosniff")])
    return [body]


def _json(start_response: StartResponse, data: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _respond(start_response, status, body, "application/json; charset=utf-8")


def _error(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    return _json(start_response, {"error": message}, status)


def _number_arg(query: dict[str, list[str]], name: str, default: float, low: float,
                high: float) -> float:
    raw = query.get(name, [None])[0]
    if raw is None:
        return default
    value = float(raw)  # ValueError -> 400 below
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return value


def create_app(monitor: HealthMonitor,
               collectors: Iterable[Collector | Callable[[], Collector]] = ()
               ) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application serving ``monitor``'s data; ``collectors`` add other parts'
    metrics to ``/metrics`` (roaming's counts): each a collector, or a function making
    one at the first scrape (so that prometheus_client is not imported before)."""

    made: list[Any] = []  # the registry, made at the first scrape
    lock = threading.Lock()

    def metrics() -> tuple[bytes, str]:
        import_with_tls("prometheus_client")
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from node.health.metrics import make_registry

        with lock:
            if not made:
                made.append(make_registry(monitor.snapshot, [
                    c if hasattr(c, "collect") else c() for c in collectors]))
        return generate_latest(made[0]), CONTENT_TYPE_LATEST

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _error(start_response, "405 Method Not Allowed", "only GET is served")
        query = parse_qs(environ.get("QUERY_STRING", "")[:1024])
        if path == "/metrics":
            return _respond(start_response, "200 OK", *metrics())
        if path == "/api/health":
            latest = monitor.latest()
            if latest is None:
                return _error(start_response, "503 Service Unavailable",
                              "no sample yet; the agent has just started")
            return _json(start_response, latest)
        try:
            if path == "/api/health/history":
                since = _number_arg(query, "since", 0.0, 0.0, 1e11)
                limit = int(_number_arg(query, "limit", 360, 1, MAX_HISTORY_SAMPLES))
                return _history(start_response, monitor.ring.history(since, limit))
            if path == "/api/health/series":
                return _series(start_response, monitor, query)
            if path == "/api/health/alerts":
                limit = int(_number_arg(query, "limit", 100, 1, 1000))
                return _json(start_response, {"alerts": monitor.ring.alerts(limit)})
        except ValueError as exc:
            return _error(start_response, "400 Bad Request", str(exc))
        if path == "/":
            text = ("meshhub agent\n/metrics  Prometheus metrics\n/api/health  health JSON\n"
                    "/api/health/history?since=UNIX&limit=N\n/api/health/alerts\n"
                    "/api/health/series?since=UNIX&step=SECONDS\n")
            return _respond(start_response, "200 OK", text.encode(), "text/plain; charset=utf-8")
        return _error(start_response, "404 Not Found", f"no such path: {path[:100]}")

    return app


def _series(start_response: StartResponse, monitor: HealthMonitor,
            query: dict[str, list[str]]) -> list[bytes]:
    """Averages per ``step`` seconds (``HealthRing.series``) since ``since``: for graphs."""
    from node.health.ring import SERIES

    latest = monitor.latest()
    now = max(time.time(), float(latest["time"]) if latest else 0.0)
    since = _number_arg(query, "since", now - 86400, 0.0, 1e11)
    step = _number_arg(query, "step", 300, 10, 86400)
    if (now - since) / step > MAX_SERIES_POINTS:
        raise ValueError(f"too many points: (now - since) / step must be at most "
                         f"{MAX_SERIES_POINTS}; use a larger step")
    return _json(start_response, {"since": since, "step": step,
                                  "columns": ["time", "samples", *SERIES],
                                  "points": monitor.ring.series(since, step)})


def _history(start_response: StartResponse, samples: list[dict[str, Any]]) -> list[bytes]:
    step = 1
    while True:
        chosen = samples[::step]
        body = json.dumps({"samples": chosen, "step": step},
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(body) <= MAX_RESPONSE_BYTES or len(chosen) <= 1:
            break
        step *= 2
    return _respond(start_response, "200 OK", body, "application/json; charset=utf-8")
