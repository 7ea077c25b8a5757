"""What an edition calls things: its site title, the taxonomy's labels and the words around
them, in the edition's own language, with the main edition's words where a form is missing.

Pure: everything comes from the config (``[editions.<code>]`` site_title, site_description
and labels; ``titles`` on sections, subsections, regions and dossiers). English, Arabic and
Spanish forms of the words are built in; config overrides them, and `feedhub check` names
every label an edition shows in the main edition's words.
"""
from __future__ import annotations

import unicodedata

from aggregator.config import Config, Edition
from aggregator.words import LABEL_KEYS, builtin_label

__all__ = ["LABEL_KEYS", "Labels", "builtin_label", "directed_html", "isolate", "language_direction"]

_RTL = frozenset(("R", "AL"))
#: Unicode's first-strong isolate and its closing pop (UAX #9): the text inside is laid out
#: on its own, so "Example Newsroom (العربية)" keeps its order in a right-to-left title
FSI, PDI = "\u2068", "\u2069"


def strong_direction(text: str) -> str | None:
    """"rtl" or "ltr" by the first letter with a strong direction; None if there is none."""
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if kind == "L":
            return "ltr"
        if kind in _RTL:
            return "rtl"
    return None


def isolate(text: str, direction: str) -> str:
    """``text`` wrapped in a bidi isolate when it holds letters of the other direction than
    ``direction`` (the text around it); unchanged otherwise."""
    other = "ltr" if direction == "rtl" else "rtl"
    if not text or FSI in text:
        return text
    for ch in text:
        kind = unicodedata.bidirectional(ch)
        if (kind == "L" and other == "ltr") or (kind in _RTL and other == "rtl"):
            return f"{FSI}{text}{PDI}"
    return text


#: languages written right to left (primary subtags)
RTL_LANGUAGES = frozenset(("ar", "arc", "ckb", "dv", "fa", "he", "ks", "ps", "sd", "ug", "ur", "yi"))


def language_direction(language: str) -> str:
    """"rtl" for a language written right to left, else "ltr"."""
    return "rtl" if language.split("-")[0].lower() in RTL_LANGUAGES else "ltr"


def directed_html(html: str, language: str) -> str:
    """An entry's HTML body marked with its direction when that is right to left, so a reader
    lays out an Arabic body from the right whatever the page around it."""
    if not html or language_direction(language) != "rtl":
        return html
    return f'<div dir="rtl">{html}</div>'


class Labels:
    """One edition's words and labels."""

    def __init__(self, config: Config, edition: str):
        self.config = config
        self.edition: Edition = config.editions[edition]
        self.code = edition
        self.main = edition == config.site.default_edition
        self.direction = self.edition.direction
        self._translations = config.taxonomy.translations

    def word(self, name: str) -> str:
        """A word of the pages and feeds ("latest", "group_tags", ...)."""
        return (self.edition.labels.get(name) or builtin_label(self.edition.language, name)
                or LABEL_KEYS[name])

    def _form(self, label: str, main: str) -> str:
        if self.main:
            return main
        return self._translations.get(label, {}).get(self.code) or main

    def section(self, slug: str) -> str:
        return self._form(f"section:{slug}", self.config.taxonomy.sections[slug].title)

    def section_path(self, slug: str) -> str:
        """A subsection with its section ("News: Politics"), a section alone."""
        parent = self.config.taxonomy.sections[slug].parent
        return f"{self.section(parent)}: {self.section(slug)}" if parent else self.section(slug)

    def region(self, slug: str) -> str:
        return self._form(f"region:{slug}", self.config.taxonomy.regions.get(slug, slug))

    def coverage(self, slug: str) -> str:
        return self._form(f"coverage:{slug}", self.config.taxonomy.coverage[slug].title)

    def coverage_description(self, slug: str) -> str:
        return self._form(f"coverage-description:{slug}", self.config.taxonomy.coverage[slug].description)

    @property
    def site_title(self) -> str:
        """The site's title in this edition; the main one with the edition's name where the
        edition has none of its own ("Example Newsroom (العربية)", isolated as needed)."""
        if self.main:
            return self.config.site.title
        if self.edition.site_title:
            return self.edition.site_title
        return f"{isolate(self.config.site.title, self.direction)} ({isolate(self.edition.title, self.direction)})"

    @property
    def site_description(self) -> str:
        if self.main:
            return self.config.site.description
        return self.edition.site_description or self.config.site.description

    def feed_name(self, kind: str, slug: str | None, display: str | None = None) -> str:
        """What a feed holds, e.g. "Politics", "Tag: Gaza Strip"; ``display`` is the tag's or
        author's name (from the store)."""
        if kind in ("latest", "breaking"):
            return self.word(kind)
        if kind == "section":
            return self.section(slug or "")
        if kind == "region":
            return self.region(slug or "")
        if kind == "coverage":
            return f"{self.word('coverage')}: {isolate(self.coverage(slug or ''), self.direction)}"
        return f"{self.word(kind)}: {isolate(display or slug or '', self.direction)}"

    def image(self, which: str) -> str:
        """The edition's logo or icon (its own, else the site's); "" if none."""
        return getattr(self.edition, which) or getattr(self.config.site, which)
