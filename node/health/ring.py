"""A bounded history of health samples on disk that survives a reboot.

Why SQLite in WAL mode and not a JSON file rewritten atomically: seven days
of samples are several megabytes, and an atomic rewrite would copy all of it
to the SD card at every flush.  SQLite appends only the pages that changed
(a few KiB per batch) to its write-ahead log and folds them back at
checkpoints, and old rows are deleted so freed pages are reused: the file
stops growing once the ring is full.  ``synchronous=NORMAL`` in WAL mode
keeps the database consistent after a power cut; at worst the last batch is
lost, which is acceptable for monitoring data.

Samples are kept in memory and written in batches, at most one write every
``write_interval_seconds`` (60 s by default): that, not the sampling rate,
decides how often the card is written.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.errors import StoreError

Json = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (t REAL PRIMARY KEY, doc TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    kind TEXT NOT NULL, subject TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    detail TEXT NOT NULL, PRIMARY KEY (kind, subject, started)) WITHOUT ROWID;
"""
#: Ended alerts kept for the history page.
MAX_ALERT_ROWS = 1000
#: SQLite's page cache for the history's connection, in KiB. SQLite's default (2 MB) was
#: filled by one graph's query over a day of samples and then held by the agent for good
#: (2.1 MiB of its own memory, docs/scale.md); the kernel's page cache keeps the file.
CACHE_KIB = 128
#: The quantities :meth:`HealthRing.series` averages, as SQLite expressions on a sample.
SERIES: dict[str, str] = {
    "cpu_ratio": "json_extract(doc, '$.cpu.usage_ratio')",
    "memory_ratio": "json_extract(doc, '$.memory.used_bytes') * 1.0 "
                    "/ nullif(json_extract(doc, '$.memory.total_bytes'), 0)",
    "temperature_celsius": "json_extract(doc, '$.soc.temperature_celsius')",
    "voltage_volts": "(SELECT json_extract(value, '$.values.bus_voltage_volts') FROM "
                     "json_each(doc, '$.sensors') WHERE json_extract(value, '$.category') = "
                     "'power' AND json_extract(value, '$.available') LIMIT 1)",
    "disk_ratio": "json_extract(doc, '$.disk.used_ratio')",
    "clients": "json_extract(doc, '$.clients.dhcp_leases')",
}

# Built once from the constant SERIES above; no caller-supplied text reaches it.
_SERIES_SQL = (
    "SELECT CAST(t / ? AS INTEGER) AS b, count(*), "  # noqa: S608
    + ", ".join(f"avg({expr})" for expr in SERIES.values())
    + " FROM samples WHERE t > ? GROUP BY b ORDER BY b")


def series_values(sample: Json) -> list[float | None]:
    """The :data:`SERIES` values of one sample, read in Python (for queued samples)."""
    def num(value: Any) -> float | None:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None

    memory = sample.get("memory") or {}
    used, total = num(memory.get("used_bytes")), num(memory.get("total_bytes"))
    volts = next((num((s.get("values") or {}).get("bus_voltage_volts"))
                  for s in sample.get("sensors") or []
                  if s.get("category") == "power" and s.get("available")), None)
    return [num((sample.get("cpu") or {}).get("usage_ratio")),
            used / total if used is not None and total else None,
            num((sample.get("soc") or {}).get("temperature_celsius")),
            volts,
            num((sample.get("disk") or {}).get("used_ratio")),
            num((sample.get("clients") or {}).get("dhcp_leases"))]


class HealthRing:
    """Samples (and alert history) in ``path``, at most ``capacity`` samples.

    ``clock`` is monotonic seconds, injected so that tests control batching.
    Thread-safe: the sampler adds while the HTTP API reads.
    """

    def __init__(self, path: Path, capacity: int, *, write_interval_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = Path(path)
        self.capacity = capacity
        self.write_interval_seconds = write_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Json] = []
        self._pending_alerts: list[Json] = []
        self._last_write = clock()
        #: Number of write transactions made; the benchmark and tests check it.
        self.writes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._db.execute("PRAGMA journal_size_limit=1048576")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the health history ({exc}); "
                             "delete the file to start a new history") from exc
        self._closed = False

    def add(self, sample: Json) -> bool:
        """Queue ``sample``; write the queue if the write interval has passed.  True if written."""
        with self._lock:
            self._check_open()
            self._pending.append(sample)
            if self._clock() - self._last_write < self.write_interval_seconds:
                return False
            self._flush_locked()
            return True

    def record_alert(self, alert: Json) -> None:
        """Queue an alert's start or end (``kind``, ``subject``, ``started``, ``ended``)."""
        with self._lock:
            self._check_open()
            self._pending_alerts.append(dict(alert))

    def flush(self) -> None:
        """Write whatever is queued now (at shutdown)."""
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_write = self._clock()
        if not self._pending and not self._pending_alerts:
            return
        rows = [(float(s["time"]), json.dumps(s, separators=(",", ":"))) for s in self._pending]
        alerts = [(a["kind"], a["subject"], a["started"], a.get("ended"),
                   json.dumps(a, separators=(",", ":"))) for a in self._pending_alerts]
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?)", rows)
                self._db.execute(
                    "DELETE FROM samples WHERE t <= (SELECT t FROM samples ORDER BY t DESC "
                    "LIMIT 1 OFFSET ?)", (self.capacity,))
                self._db.executemany("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?)",
                                     alerts)
                self._db.execute(
                    "DELETE FROM alerts WHERE ended IS NOT NULL AND started <= (SELECT started "
                    "FROM alerts WHERE ended IS NOT NULL ORDER BY started DESC LIMIT 1 OFFSET ?)",
                    (MAX_ALERT_ROWS,))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the health history: {exc}") from exc
        self.writes += 1
        self._pending.clear()
        self._pending_alerts.clear()

    def history(self, since: float = float("-inf"), limit: int = 1000) -> list[Json]:
        """Samples newer than ``since`` (Unix seconds), oldest first, at most the last ``limit``."""
        with self._lock:
            self._check_open()
            rows = self._db.execute(
                "SELECT doc FROM samples WHERE t > ? ORDER BY t DESC LIMIT ?",
                (since, limit)).fetchall()
            stored = [json.loads(doc) for (doc,) in reversed(rows)]
            pending = [s for s in self._pending if s["time"] > since]
        merged = {s["time"]: s for s in stored + pending}
        return [merged[t] for t in sorted(merged)][-limit:] if limit > 0 else []

    def series(self, since: float, step: float) -> list[list[float | None]]:
        """Averages of :data:`SERIES` per ``step`` seconds since ``since``, oldest first.

        Each row is ``[bucket start, samples in it, *one average per series]``; an
        average is ``None`` where no sample of the bucket had that value (a gap).
        SQLite's JSON functions do the reading, so a week of samples is never
        turned into Python objects (the technicians' graphs ask for this).
        """
        if step <= 0:
            raise ValueError("step must be positive")
        with self._lock:
            self._check_open()
            rows = self._db.execute(_SERIES_SQL, (step, since)).fetchall()
            pending = [s for s in self._pending if s["time"] > since]
        buckets: dict[int, list[Any]] = {int(r[0]): list(r[1:]) for r in rows}
        for sample in pending:  # the minute not yet written: merged by weighted average
            key = int(sample["time"] // step)
            values = series_values(sample)
            if key not in buckets:
                buckets[key] = [1, *values]
                continue
            row = buckets[key]
            count = row[0]
            for i, value in enumerate(values, start=1):
                if value is not None:
                    row[i] = value if row[i] is None else (row[i] * count + value) / (count + 1)
            row[0] = count + 1
        return [[key * step, *buckets[key]] for key in sorted(buckets)]

    def latest(self) -> Json | None:
        """The newest sample, queued or stored."""
        found = self.history(limit=1)
        return found[-1] if found else None

    def alerts(self, limit: int = 100) -> list[Json]:
        """Alert records (started and ended), newest first, queued ones included."""
        with self._lock:
            self._check_open()
            rows = self._db.execute("SELECT detail FROM alerts ORDER BY started DESC LIMIT ?",
                                    (limit,)).fetchall()
            pending = list(self._pending_alerts)
        merged = {(a["kind"], a["subject"], a["started"]): a
                  for a in [json.loads(d) for (d,) in rows] + pending}
        return sorted(merged.values(), key=lambda a: a["started"], reverse=True)[:limit]

    def __len__(self) -> int:
        with self._lock:
            self._check_open()
            (count,) = self._db.execute("SELECT count(*) FROM samples").fetchone()
            return int(count) + len(self._pending)

    def close(self) -> None:
        """Write the queue and close the database; calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            try:
                self._flush_locked()
            finally:
                self._closed = True
                self._db.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: the health history is closed")

    def __enter__(self) -> HealthRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ring_capacity(history_days: float, interval_seconds: float) -> int:
    """Samples needed to hold ``history_days`` at one sample every ``interval_seconds``."""
    return max(1, int(history_days * 86400 // interval_seconds))
