"""Messages people read, kept translatable without ``node`` knowing about languages.

``node`` never imports Flask-Babel or the portal (docs/architecture), yet the
hub's validation messages reach organisers and residents through the portal
in Arabic or Spanish. So a message is built from an English *template* and
named parameters::

    problems["title"] = msg(N_("at most %(max)d characters (this has %(count)d)"),
                            max=120, count=len(value))

- :func:`N_` only marks the template for ``pybabel extract`` (``babel.cfg``
  declares it as a keyword for ``node/``); it returns the text unchanged.
- :class:`Message` *is* the English text (a ``str``), so the CLI, the logs
  and every test that compares strings see exactly what they saw before; it
  also keeps ``.template`` and ``.params``, so that the portal can look the
  template up in its catalog and fill in the same parameters
  (``portal.i18n.translate_message``).

Templates use Python's %-format with named parameters, as Flask-Babel's
``gettext(..., name=value)`` does. A parameter may itself be a
:class:`Message` (translated too). Messages that only reach the CLI or the
logs stay plain strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["N_", "Message", "msg"]


def N_(text: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Mark ``text`` as a translatable template for pybabel; returns it unchanged."""
    return text


class Message(str):
    """English text (this ``str``'s value) that remembers its template and parameters.

    ``Message("at most %(max)d characters", {"max": 60}) == "at most 60 characters"``;
    ``.template`` is the msgid a catalog translates, ``.params`` fill it in.
    """

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, params: Mapping[str, Any] | None = None) -> Message:
        """Format ``template`` with ``params`` (no formatting when there are none)."""
        values = dict(params or {})
        self = super().__new__(cls, template % values if values else template)
        self.template = template
        self.params = values
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle and copy as template and parameters (not only the English text)."""
        return (type(self), (self.template, self.params))


def msg(template: str, **params: Any) -> Message:
    """A :class:`Message` from a template marked with :func:`N_` and its named parameters."""
    return Message(template, params)
