"""Babel locales that hold only the CLDR data the portal formats with.

Babel loads a language's *whole* CLDR record the first time anything is
formatted in it: every territory, currency, time zone and unit name. For
English that is 4.6 MB of resident memory, and the language menu alone (each
language's name in itself) would load every offered language: about 8 MB of
the portal's 40 MB budget (bench/memory.py), to print a date, a file size and
three names.

So the portal formats with :class:`SlimLocale`: a :class:`babel.Locale` whose
data is the handful of CLDR keys in :data:`SLIM_KEYS`, still formatted by
Babel itself. The subset is extracted by a short-lived child process
(``python -m portal.locale_data CODE...``), so the full records never enter
the portal's own memory; it comes back as a pickle of Babel's own objects
over a pipe from that child, which runs this very module. Should something
ask for a key outside the subset, the locale loads its full record then (and
logs it once): output is always right, only the saving is lost.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from babel import Locale, localedata

log = logging.getLogger(__name__)

#: The top-level CLDR keys dates, numbers, file sizes and plural forms need.
SLIM_KEYS = (
    "date_formats", "time_formats", "datetime_formats",
    "months", "days", "quarters", "eras", "day_periods", "periods",
    "number_symbols", "default_numbering_system", "decimal_formats", "percent_formats",
    "unit_patterns", "unit_display_names", "plural_form", "character_order",
)
#: Keys holding every CLDR unit (over 200): only these units are kept of them.
#: Formatting another unit needs it added here (tests/portal/test_locale_data.py).
UNIT_KEYS = ("unit_patterns", "unit_display_names")
UNITS = ("digital-byte", "digital-kilobyte", "digital-megabyte", "digital-gigabyte")
#: Seconds the extracting child may take (it loads Babel and a few pickles).
EXTRACT_TIMEOUT_SECONDS = 120


class SlimData(dict):
    """One locale's CLDR subset; a missing key loads the full record (once) and logs it."""

    def __init__(self, code: str, subset: Mapping[str, Any]) -> None:
        super().__init__(subset)
        self.code = code
        self.fallbacks = 0
        self._lock = threading.Lock()
        self._full: dict[str, Any] | None = None

    def __missing__(self, key: str) -> Any:
        with self._lock:
            if self._full is None:
                log.warning("CLDR key %r is not in the portal's subset: loading the whole "
                            "%s locale data (add the key to portal.locale_data.SLIM_KEYS)",
                            key, self.code)
                self._full = localedata.load(self.code)
            self.fallbacks += 1
        return self._full[key]


class SlimLocale(Locale):
    """A :class:`babel.Locale` formatting from a :class:`SlimData` subset."""

    def __init__(self, code: str, subset: Mapping[str, Any]) -> None:
        parsed = Locale.parse(code)
        super().__init__(parsed.language, parsed.territory, parsed.script, parsed.variant,
                         parsed.modifier)
        self.slim = SlimData(code, subset)
        self._slim_data = localedata.LocaleDataDict(self.slim)

    @property
    def _data(self) -> localedata.LocaleDataDict:
        return self._slim_data


def extract(codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each locale's :data:`SLIM_KEYS` (aliases resolved) plus the names of ``codes`` in it.

    Runs in the child process: it loads the full records.
    """
    wanted = list(dict.fromkeys(codes))
    subsets: dict[str, dict[str, Any]] = {}
    for code in wanted:
        data = Locale.parse(code)._data
        subset = {key: _plain(data[key]) for key in SLIM_KEYS if key in data}
        for key in UNIT_KEYS:
            subset[key] = {unit: subset[key][unit] for unit in UNITS if unit in subset[key]}
        names = data["languages"]
        subset["languages"] = {other: names[other] for other in wanted if other in names}
        subsets[code] = subset
    return subsets


def _plain(value: Any) -> Any:
    """``value`` with Babel's alias-resolving dictionaries turned into plain ones."""
    if isinstance(value, localedata.LocaleDataDict):
        return {key: _plain(value[key]) for key in value}
    return value


def _extract_in_child(codes: tuple[str, ...]) -> bytes:
    """Run this module in a child Python on ``codes``; its pickled subsets.

    The child is this very interpreter: ``sys.executable``, or, where this
    process's user may not open that path (the lab's portal runs as ``nobody``
    from a virtual environment under ``/root``), ``/proc/self/exe``, which
    needs no path. Either way it is told where this process imports from.
    """
    environment = dict(os.environ)
    search = [str(Path(__file__).resolve().parents[1]), *(p for p in sys.path if p)]
    if environment.get("PYTHONPATH"):
        search.append(environment["PYTHONPATH"])
    environment["PYTHONPATH"] = os.pathsep.join(search)

    def run(interpreter: str) -> bytes:
        return subprocess.run([interpreter, "-m", "portal.locale_data", *codes],
                              capture_output=True, timeout=EXTRACT_TIMEOUT_SECONDS, check=True,
                              stdin=subprocess.DEVNULL, env=environment).stdout

    try:
        return run(sys.executable)
    except (PermissionError, FileNotFoundError):
        return run("/proc/self/exe")


@functools.lru_cache(maxsize=8)
def slim_locales(codes: tuple[str, ...]) -> dict[str, Locale]:
    """A :class:`SlimLocale` for each code (plain Babel locales if extraction fails).

    Cached per process: every app built for the same languages shares them.
    """
    try:
        subsets = pickle.loads(_extract_in_child(codes))  # noqa: S301 - our own child
        return {code: SlimLocale(code, subsets[code]) for code in codes}
    except (OSError, subprocess.SubprocessError, pickle.UnpicklingError, KeyError,
            EOFError) as error:
        detail = getattr(error, "stderr", b"") or b""
        log.warning("could not extract the CLDR subset (%s%s): formatting with Babel's "
                    "full locale data", error, f": {detail.decode(errors='replace')[-300:]}"
                    if detail else "")
        return {code: Locale.parse(code) for code in codes}


def _main(argv: list[str]) -> int:
    """The child: write the pickled subsets of the locales named in ``argv`` to stdout."""
    sys.stdout.buffer.write(pickle.dumps(extract(argv), protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
