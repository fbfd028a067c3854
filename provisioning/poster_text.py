"""The words on a node's window poster, in the community's languages.

The house rules are the portal's own (``portal/templates/_house_rules.html``):
the English texts below are its message ids, and their translations are read
from the portal's compiled catalogues (``portal/translations/<lang>/LC_MESSAGES/
messages.mo``) with the standard library's gettext, without importing the
portal package (provisioning may not). The tests fail when a text here is no
longer a message of the portal, so the two cannot drift apart silently.
"""

from __future__ import annotations

import gettext
from dataclasses import dataclass
from pathlib import Path

#: Where the portal's compiled translations live (a source checkout or an installed wheel:
#: both put the top-level packages side by side).
PORTAL_TRANSLATIONS = Path(__file__).resolve().parents[1] / "portal" / "translations"

RULES_TITLE = "House rules"
RULES_INTRO = ("This network belongs to the people of %(community)s. Using it means agreeing "
               "to these rules.")
RULES = (
    "Be kind and respectful. No harassment, hate or threats.",
    "Nothing illegal: no stolen goods, weapons, drugs or scams.",
    "Post honest listings with a real way to reach you. No spam or advertising chains.",
    "Respect other people’s privacy: do not post their details without their consent.",
    "Share the connection fairly: avoid very large downloads at busy times.",
    "Organisers may remove listings that break these rules.",
)
#: Right-to-left languages among those the portal offers.
RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur", "ps", "ku"})


@dataclass(frozen=True)
class HouseRules:
    """The house rules in one language; ``translated`` is False for the English fallback."""

    language: str
    title: str
    intro: str
    rules: tuple[str, ...]
    translated: bool

    @property
    def rtl(self) -> bool:
        """Whether the language is written right to left."""
        return self.language.split("_")[0] in RTL_LANGUAGES


def catalogue(language: str,
              directory: Path = PORTAL_TRANSLATIONS) -> gettext.GNUTranslations | None:
    """The portal's compiled catalogue for ``language``, or ``None`` if there is none."""
    try:
        return gettext.translation("messages", localedir=directory, languages=[language])
    except OSError:
        return None


def house_rules(language: str, community: str,
                directory: Path = PORTAL_TRANSLATIONS) -> HouseRules:
    """The house rules in ``language`` (English when the portal has no translation)."""
    found = catalogue(language, directory) if language != "en" else None
    translate = found.gettext if found else (lambda text: text)
    complete = found is not None and all(
        found.gettext(text) != text for text in (RULES_TITLE, RULES_INTRO, *RULES))
    return HouseRules(language if complete or language == "en" else "en",
                      translate(RULES_TITLE), translate(RULES_INTRO) % {"community": community},
                      tuple(translate(text) for text in RULES), complete or language == "en")
