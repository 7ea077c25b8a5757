"""Full-text search, the pure part: what an entry's text and a reader's ``q`` become as words.

Both stores index and query the *same* words, made here: SQLite's FTS5 and PostgreSQL's
tsvector are only given finished tokens (FTS5 through its ``ascii`` tokenizer, which splits on
the spaces between them; PostgreSQL through tsvector and tsquery literals, which bypass its
locale-dependent parser), so a query finds the same entries on either store.

A word is folded so that a reader finds it however it was typed: case-folded, Latin
diacritics dropped (``España`` = ``espana``), Arabic short vowels, shadda and tatweel dropped,
the alef forms, alef maqsura and taa marbuta unified (as Lucene's Arabic normaliser does), and
the definite article (ال, also after و ب ك ف, and لل) taken off, so ``الحكومة`` = ``حكومة``.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

#: words of an entry indexed at most (PostgreSQL keeps positions up to 16,383)
MAX_WORDS = 4000
#: longer "words" (a pasted hash, a run of letters) are not words anyone searches for, and
#: PostgreSQL refuses lexemes over 2 KiB: both stores leave them out
MAX_WORD = 64

_WORD = re.compile(r"[^\W_]+")
_PHRASE = re.compile(r'"([^"]*)"?')
_ARABIC_LETTERS = str.maketrans({"ى": "ي", "ة": "ه", "ـ": None})
# Longest first: "وال" must win over "و" never being stripped alone.
_ARTICLES = ("وال", "بال", "كال", "فال", "لل", "ال")


# Every combining mark of the Basic Multilingual Plane (Latin accents, Arabic harakat, ...),
# as one character class: a regex drops them far faster than a test per character.
# Made on first use: scanning the plane costs a tenth of a second no command should pay at start.
@functools.cache
def _marks() -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(chr(c)) for c in range(0x300, 0x10000)
                                    if unicodedata.combining(chr(c))) + "]+")


_ARTICLE_STARTS = frozenset(a[0] for a in ("وال", "بال", "كال", "فال", "لل", "ال"))


def fold(text: str) -> str:
    """Case, diacritics and Arabic letter variants folded (NFKD, marks dropped)."""
    if text.isascii():
        return text.lower()  # (all an ASCII text needs: the common case, kept cheap)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _marks().sub("", decomposed).translate(_ARABIC_LETTERS)


def _stem(word: str) -> str:
    if word[0] not in _ARTICLE_STARTS:
        return word
    for article in _ARTICLES:
        # A short word that only looks like it starts with the article keeps it (e.g. "الم").
        if word.startswith(article) and len(word) - len(article) >= 2:
            return word[len(article):]
    return word


def words(text: str) -> list[str]:
    """The searchable words of ``text``, in order."""
    return [_stem(w) for w in _WORD.findall(fold(text)) if len(w) <= MAX_WORD]


def document(*parts: str) -> list[str]:
    """An entry's indexed words (title, then summary), capped at MAX_WORDS."""
    found: list[str] = []
    for part in parts:
        found += words(part)
    return found[:MAX_WORDS]


@dataclass(frozen=True)
class Query:
    """A parsed ``q``: every group must be in the entry; a group of several words is a phrase
    (its words next to each other, in order)."""

    groups: tuple[tuple[str, ...], ...]

    @property
    def empty(self) -> bool:
        """True when ``q`` held no word at all (only punctuation): it matches nothing."""
        return not self.groups

    def fts5(self) -> str:
        """The FTS5 MATCH expression (each group a quoted phrase, implicitly ANDed)."""
        return " ".join('"' + " ".join(g) + '"' for g in self.groups)

    def tsquery(self) -> str:
        """The PostgreSQL tsquery literal (words quoted: no parser or dictionary touches them)."""
        return " & ".join("(" + " <-> ".join(f"'{w}'" for w in g) + ")" for g in self.groups)


def parse_query(q: str) -> Query:
    """``q`` as groups: text in double quotes is a phrase, every other word a group of its own
    (a word that folds to several, such as ``covid-19``, is a phrase of them)."""
    groups: list[tuple[str, ...]] = []
    rest = []
    last = 0
    for m in _PHRASE.finditer(q):
        rest.append(q[last:m.start()])
        last = m.end()
        phrase = tuple(words(m.group(1)))
        if phrase:
            groups.append(phrase)
    rest.append(q[last:])
    for chunk in rest:
        for token in chunk.split():
            found = tuple(words(token))
            if found:
                groups.append(found)
    # The same group twice changes nothing; first spelling kept, order kept (stable SQL).
    return Query(tuple(dict.fromkeys(groups)))
