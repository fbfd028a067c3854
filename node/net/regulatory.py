"""Which radio channels a node may use where it stands: a small, conservative table.

The kernel's regulatory database (selected by hostapd's ``country_code``) is the
real authority on a running node; this table exists so that ``meshhub net plan``
refuses an obviously illegal or unusable choice *before* anything is written,
with the key and the reason. It is deliberately conservative:

* 2.4 GHz: channels 1-13, except 1-11 in the countries that allow only those;
  channel 14 is never offered (Japan allows it for 802.11b only).
* 5 GHz: only the channels that need no radar detection (DFS), because a mesh
  point that must leave its channel when radar appears breaks the mesh:
  36-48 everywhere, 149-165 only where they are licence-exempt at useful power.
"""

from __future__ import annotations

_ISO3166 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
VN VU WF WS YE YT ZA ZM ZW
"""
#: ISO 3166-1 alpha-2 codes (from tzdata's iso3166.tab), so an unknown code is refused.
COUNTRIES: frozenset[str] = frozenset(_ISO3166.split())

#: Countries whose 2.4 GHz band ends at channel 11.
ELEVEN_CHANNELS: frozenset[str] = frozenset({"US", "CA", "TW", "PR", "GU", "AS", "VI", "MP",
                                             "UM", "CO", "DO", "GT", "PA", "UZ"})

#: Countries where 5 GHz channels 149-165 are licence-exempt for outdoor/indoor APs.
UPPER_5GHZ: frozenset[str] = frozenset({"US", "CA", "AU", "NZ", "IN", "CN", "SG", "TW", "KR",
                                        "BR", "MX", "HK", "MY", "PH", "TH", "ID", "CL", "CO"})

LOWER_5GHZ = (36, 40, 44, 48)
UPPER_5GHZ_CHANNELS = (149, 153, 157, 161, 165)


def allowed_channels(country: str, hw_mode: str) -> tuple[int, ...]:
    """The channels this table allows in ``country`` on the band ``hw_mode`` ('g' or 'a')."""
    if hw_mode == "g":
        return tuple(range(1, 12 if country in ELEVEN_CHANNELS else 14))
    if country in UPPER_5GHZ:
        return LOWER_5GHZ + UPPER_5GHZ_CHANNELS
    return LOWER_5GHZ


def channel_problem(country: str, hw_mode: str, channel: int) -> str | None:
    """Why ``channel`` cannot be used in ``country`` on ``hw_mode``, or ``None``."""
    if country not in COUNTRIES:
        return f"{country!r} is not an ISO 3166 country code"
    allowed = allowed_channels(country, hw_mode)
    if channel in allowed:
        return None
    band = "2.4 GHz (hw_mode 'g')" if hw_mode == "g" else "5 GHz (hw_mode 'a')"
    listed = ", ".join(str(c) for c in allowed)
    extra = ""
    if hw_mode == "a" and 52 <= channel <= 144:
        extra = " (it needs radar detection, DFS, which a mesh cannot follow)"
    return f"channel {channel} is not usable on {band} in {country}{extra}; use one of {listed}"


def frequency_mhz(channel: int) -> int:
    """The centre frequency of a 2.4 or 5 GHz Wi-Fi channel, in MHz (for ``iw``)."""
    if 1 <= channel <= 13:
        return 2407 + 5 * channel
    if channel == 14:
        return 2484
    return 5000 + 5 * channel
