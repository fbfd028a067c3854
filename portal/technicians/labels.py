"""Translatable words for the technicians' pages: alert kinds, link qualities, graphs.

The alert texts repeat :data:`node.health.alerts.KINDS` (the agent's English) so that
they reach the translation catalogue; a test keeps the two equal. A kind this node
does not know (a newer node's) is shown with the words its document carries.
"""

from __future__ import annotations

from typing import Any

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

#: kind -> (title, what to check)
ALERT_TEXTS: dict[str, tuple[LazyString, LazyString]] = {
    "node_lost": (
        _l('A neighbour node stopped answering'),
        _l('Is the neighbour powered (look at its LED)? Did its power supply or battery '
           'fail, or did something block the radio path (new building, tree in leaf)?')),
    "link_degraded": (
        _l('A radio link to a neighbour is poor'),
        _l("Check the antenna's direction and cable, new obstacles, and interference "
           "(run 'meshhub diag survey'); a cost that keeps rising means the link is "
           'failing.')),
    "disk_full": (
        _l('The data partition is nearly full'),
        _l("Look at the library's size and the logs in the data directory; remove old "
           'library items or move to a larger SD card. Writes fail when it is full.')),
    "sd_wear": (
        _l('The SD card or eMMC reports heavy wear'),
        _l("Plan to replace the card soon; back up the node's identity key first.")),
    "too_hot": (
        _l('The processor is too hot'),
        _l('Is the case in direct sun or sealed? Add shade, ventilation or a heatsink; '
           'the board slows itself down when hot and may crash.')),
    "undervoltage": (
        _l('The supply voltage is too low'),
        _l('Use a stronger power supply and a short, thick cable; on solar or battery '
           "nodes check the battery's charge and the panel. Undervoltage corrupts SD "
           'cards.')),
    "throttled": (
        _l('The processor is being slowed down'),
        _l("The firmware limits speed when hot or underpowered: see 'too hot' and "
           "'undervoltage'.")),
    "sensor_unavailable": (
        _l('A sensor does not answer'),
        _l("Check the sensor's wiring (SDA, SCL, power, ground) and its I2C address with "
           "'meshhub hw detect'; water in the case often causes this.")),
    "uplink_down": (
        _l('The internet uplink is down'),
        _l('Is the uplink cable or router powered and connected? The hub still works '
           'locally; while another node of the mesh has a working uplink, residents '
           'reach the internet through it, otherwise they lose only the internet.')),
    "service_down": (
        _l('A service of the node is not running'),
        _l("Read its log ('journalctl -u SERVICE -n 50') and restart it ('systemctl "
           "restart SERVICE'); if it keeps failing, check the disk and the configuration "
           "with 'meshhub config check'.")),
}

#: Link qualities on the map and in the neighbours' tables (short: they fit the legend).
QUALITY_LABELS: dict[str, LazyString] = {
    "good": _l("good"),
    "fair": _l("fair"),
    "poor": _l("poor"),
    "unknown": _l("cost unknown"),
}


def alert_text(alert: dict[str, Any]) -> tuple[str, str]:
    """(title, what to check) of an alert, translated when this node knows its kind."""
    known = ALERT_TEXTS.get(str(alert.get("kind")))
    if known is not None:
        return str(known[0]), str(known[1])
    return str(alert.get("title") or alert.get("kind")), str(alert.get("check") or "")
