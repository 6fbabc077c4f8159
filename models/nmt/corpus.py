"""English->German sentence pairs from real offline sources, cleaned, deduplicated and split.

Sources:

- pip-only (always there, the same on every machine): the German gettext catalogs that
  PyPI wheels ship: Django's (`django/**/locale/de/LC_MESSAGES/*.mo`), the JupyterLab
  German language pack (`jupyterlab-language-pack-de-DE`) and Trac's, all BSD-licensed:
  user interface strings and messages; and the English and German display names of
  languages, countries, scripts and currencies in Babel's CLDR data (Unicode license).
- Debian (richer, when installed; `make data` installs them as root): the example
  sentences of the Ding dictionary (`trans-de-en`, GPL-2+, `/usr/share/trans/de-en`) and
  every German catalog under `/usr/share/locale/de/LC_MESSAGES/` (coreutils, git, apt,
  PostgreSQL, GLib, ...). The iso-codes catalogs (`iso_*`) are left out: they are lists
  of country and language names, which CLDR already covers.

Counts on the development machine (`tfstack nmt corpus [--pip-only]` prints them):
pip-only, 3,403 catalog entries and 1,465 CLDR names give 3,639 pairs (3,343 train,
296 held-out); with Debian data, 18,465 Ding sentences and 41,926 Debian catalog
entries more give 41,988 pairs (38,703 train, 3,285 held-out).

Cleaning: Unicode NFC, whitespace collapsed, keyboard accelerators (`_File`, `&Open`)
removed; entries with format placeholders (`%s`, `{name}`, `$1`), markup or line breaks
are dropped (not natural sentences, and copying them would flatter the copy-the-source
baseline); so are pairs longer than `MAX_WORDS` words or whose lengths differ too much.
Duplicates are removed by their normalized English side, keeping the first (Ding, Debian
catalogs, pip catalogs, CLDR names; catalogs in path order). The split hashes that
normalized English side, so pairs that differ only in case or spacing land in the same
split.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import babel
import polib

MAX_WORDS = 30  # per side; longer entries are help texts, not sentences
MAX_LENGTH_RATIO = 3.0  # characters; larger ratios are mostly partial translations
PIP_CATALOG_DISTRIBUTIONS = ("Django", "jupyterlab-language-pack-de-DE", "Trac")
# Babel's CLDR data: display names with an English and a German form.
CLDR_NAME_TABLES = ("languages", "territories", "scripts", "currencies", "variants")
NAME_LIST_CATALOGS = re.compile(r"^iso_")

_PLACEHOLDER = re.compile(r"%[-#0 +'\d.*]*[a-zA-Z%]|%\(\w+\)|\{[^}]*\}|\$\d|\$\{|</?\w[^>]*>")
# Keyboard accelerators mark a letter anywhere in a word ("_Open", "Ö_ffnen", "&Quit"); an
# identifier such as "file_name" loses its "_" too, on both sides alike.
_ACCELERATOR = re.compile(r"[_&](?=\w)")
_DING_ANNOTATION = re.compile(r"\s*(\{[^}]*\}|\[[^\]]*\]|<[^>]*>)")
_SENTENCE_END = re.compile(r"[.!?…]$")


@dataclasses.dataclass(frozen=True)
class DebianSources:
    """Where the Debian packages install; tests point these elsewhere."""

    ding: Path = Path("/usr/share/trans/de-en")
    catalogs: Path = Path("/usr/share/locale/de/LC_MESSAGES")


DEBIAN_SOURCES = DebianSources()


@dataclasses.dataclass(frozen=True)
class Pair:
    """One English sentence and its German translation; `origin` names the source."""

    english: str
    german: str
    origin: str


@dataclasses.dataclass
class Corpus:
    """The cleaned pairs, their split, and how many entries each step kept."""

    train: list[Pair]
    heldout: list[Pair]
    counts: dict[str, int]

    def count_rows(self) -> list[tuple[str, int]]:
        """Raw entries per source, then pairs per source after cleaning, then the split."""
        return list(self.counts.items())


def load_corpus(
    debian: DebianSources | None = DEBIAN_SOURCES, heldout_fraction: float = 0.08
) -> Corpus:
    """All pairs from the available sources, cleaned and split; `debian=None`: pip only."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(
            f"`heldout_fraction` must be in (0, 1). Received: heldout_fraction={heldout_fraction}"
        )
    counts: Counter[str] = Counter()
    raw: list[Pair] = []
    if debian is not None:
        raw += _counted(ding_pairs(debian.ding), "ding sentences", counts)
        debian_entries = catalog_pairs(debian_catalogs(debian.catalogs), "debian catalogs")
        raw += _counted(debian_entries, "debian catalog entries", counts)
    raw += _counted(catalog_pairs(pip_catalogs(), "pip catalogs"), "pip catalog entries", counts)
    raw += _counted(cldr_name_pairs(), "cldr names", counts)

    pairs = deduplicate(pair for pair in map(clean_pair, raw) if pair is not None)
    train, heldout = [], []
    for pair in pairs:
        counts[f"pairs from {pair.origin}"] += 1
        (heldout if is_heldout(pair.english, heldout_fraction) else train).append(pair)
    counts.update({"pairs": len(pairs), "train pairs": len(train), "held-out pairs": len(heldout)})
    if not train or not heldout:
        raise ValueError(f"too few sentence pairs to train and evaluate on: {dict(counts)}")
    return Corpus(train, heldout, dict(counts))


def ding_pairs(path: Path) -> list[Pair]:
    """Example sentences of the Ding dictionary (`German :: English`, ` | ` aligned parts).

    A part is an example sentence when both sides end like a sentence and the German one
    has at least three words; of `;`-separated alternatives the first is kept, and parts
    with `/` alternatives ("just/only") are skipped since they are no single sentence."""
    if not path.is_file():
        return []
    pairs = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith("#") or " :: " not in line:
                continue
            german, english = line.rstrip("\n").split(" :: ", 1)
            german_parts, english_parts = german.split(" | "), english.split(" | ")
            if len(german_parts) != len(english_parts):
                continue
            for de, en in zip(german_parts, english_parts, strict=True):
                de, en = _first_alternative(de), _first_alternative(en)
                if "/" in de or "/" in en or len(de.split()) < 3:
                    continue
                if _SENTENCE_END.search(de) and _SENTENCE_END.search(en):
                    pairs.append(Pair(en, de, "ding"))
    return pairs


def catalog_pairs(paths: Iterable[Path], origin: str) -> Iterator[Pair]:
    """(msgid, msgstr) of translated entries; plurals give their singular form."""
    for path in paths:
        for entry in polib.mofile(str(path)):
            german = entry.msgstr or entry.msgstr_plural.get(0, "")
            if entry.msgid and german:
                yield Pair(entry.msgid, german, origin)


def pip_catalogs() -> list[Path]:
    """German .mo files inside the installed wheels named in `PIP_CATALOG_DISTRIBUTIONS`."""
    paths = []
    for name in PIP_CATALOG_DISTRIBUTIONS:
        try:
            files = importlib.metadata.files(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        paths += [
            Path(file.locate())
            for file in files
            if file.suffix == ".mo" and ({"de", "de_DE"} & set(file.parts))
        ]
    return sorted(paths)


def cldr_name_pairs() -> list[Pair]:
    """English and German CLDR display names (languages, countries, scripts, currencies)."""
    english, german = babel.Locale("en"), babel.Locale("de")
    pairs = []
    for table in CLDR_NAME_TABLES:
        german_names = getattr(german, table)
        for key, name in getattr(english, table).items():
            if key in german_names:
                pairs.append(Pair(name, german_names[key], "cldr names"))
    return pairs


def debian_catalogs(root: Path) -> list[Path]:
    """German .mo catalogs of installed Debian packages, without name lists."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("*.mo") if not NAME_LIST_CATALOGS.match(p.name))


def clean_pair(pair: Pair) -> Pair | None:
    """The normalized pair, or None when it is no usable sentence pair."""
    if any(_PLACEHOLDER.search(side) or "\n" in side for side in (pair.english, pair.german)):
        return None
    english, german = _clean_text(pair.english), _clean_text(pair.german)
    if not (_has_letter(english) and _has_letter(german)):
        return None
    if max(len(english.split()), len(german.split())) > MAX_WORDS:
        return None
    shorter, longer = sorted((len(english), len(german)))
    if longer > 8 and longer > MAX_LENGTH_RATIO * shorter:
        return None
    return Pair(english, german, pair.origin)


def deduplicate(pairs: Iterable[Pair]) -> list[Pair]:
    """First pair per normalized English side, in input order."""
    seen: set[str] = set()
    kept = []
    for pair in pairs:
        key = normalized_key(pair.english)
        if key not in seen:
            seen.add(key)
            kept.append(pair)
    return kept


def normalized_key(text: str) -> str:
    """Case- and spacing-insensitive identity of a sentence."""
    return " ".join(text.casefold().split())


def is_heldout(english: str, heldout_fraction: float) -> bool:
    """Deterministic on every machine: a SHA-256 of the normalized English side."""
    digest = hashlib.sha256(normalized_key(english).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < heldout_fraction


def sample(pairs: Sequence[Pair], limit: int | None) -> list[Pair]:
    """At most `limit` pairs spread evenly over `pairs` (all when `limit` is None)."""
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    return [pairs[i * len(pairs) // limit] for i in range(limit)]


def _counted(pairs: Iterable[Pair], name: str, counts: Counter[str]) -> list[Pair]:
    pairs = list(pairs)
    counts[name] += len(pairs)
    return pairs


def _first_alternative(text: str) -> str:
    return _DING_ANNOTATION.sub("", text.split("; ")[0]).strip()


def _clean_text(text: str) -> str:
    text = unicodedata.normalize("NFC", text)
    return " ".join(_ACCELERATOR.sub("", text).split())


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)
