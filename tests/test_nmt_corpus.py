"""The EN->DE corpus: parsing Ding and gettext catalogs, cleaning, deduplication, the split."""

import json

import polib
import pytest

from models.nmt import corpus

DING_LINES = """\
# Version :: devel 2023-01-30
Aal {m} [zool.] | Aale {pl} :: eel | eels
Er hat eine hohe Sprechstimme. :: He has a high-pitched voice.
Wetter {n} | Das Wetter ist heute schön. :: weather | The weather is nice today.
Er tut nur so. :: He's just/only pretending.
Er hat gewonnen.; Er hat es geschafft. :: He has won.; He made it.
Drei Autos rasten die Straße runter. [ugs.] | x :: Three cars careered down the road.
"""


def _write_mo(path, entries):
    catalog = polib.POFile()
    catalog.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    for msgid, msgstr in entries:
        catalog.append(polib.POEntry(msgid=msgid, msgstr=msgstr))
    catalog.save_as_mofile(str(path))
    return path


def test_ding_example_sentences_become_english_german_pairs(tmp_path):
    path = tmp_path / "de-en"
    path.write_text(DING_LINES, encoding="utf-8")
    pairs = corpus.ding_pairs(path)
    assert [(p.english, p.german) for p in pairs] == [
        ("He has a high-pitched voice.", "Er hat eine hohe Sprechstimme."),
        ("The weather is nice today.", "Das Wetter ist heute schön."),
        ("He has won.", "Er hat gewonnen."),
    ]
    assert {p.origin for p in pairs} == {"ding"}
    assert corpus.ding_pairs(tmp_path / "missing") == []


def test_catalog_entries_become_pairs(tmp_path):
    mo = _write_mo(
        tmp_path / "app.mo",
        [("Change password", "Passwort ändern"), ("Untranslated", ""), ("Save", "Sichern")],
    )
    pairs = list(corpus.catalog_pairs([mo], "pip catalogs"))
    assert [(p.english, p.german, p.origin) for p in pairs] == [
        ("Change password", "Passwort ändern", "pip catalogs"),
        ("Save", "Sichern", "pip catalogs"),
    ]


def test_cldr_names_pair_english_and_german_display_names():
    pairs = {(p.english, p.german) for p in corpus.cldr_name_pairs()}
    assert {("Germany", "Deutschland"), ("German", "Deutsch"), ("Euro", "Euro")} <= pairs
    assert len(pairs) > 1000


def test_debian_catalogs_skip_name_lists(tmp_path):
    for name in ("coreutils.mo", "iso_3166-1.mo", "git.mo"):
        _write_mo(tmp_path / name, [("yes", "ja")])
    assert [p.name for p in corpus.debian_catalogs(tmp_path)] == ["coreutils.mo", "git.mo"]
    assert corpus.debian_catalogs(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("english", "german", "expected"),
    [
        ("_Open  file", "Datei  ö_ffnen", ("Open file", "Datei öffnen")),
        ("&Quit", "&Beenden", ("Quit", "Beenden")),
        (
            "file_name is set",
            "file_name ist gesetzt",
            ("filename is set", "filename ist gesetzt"),
        ),
        ("Delete %s?", "%s löschen?", None),
        ("Added {name}.", "{name} hinzugefügt.", None),
        ("Hello %(user)s", "Hallo %(user)s", None),
        ("<b>Bold</b>", "<b>Fett</b>", None),
        ("two\nlines", "zwei\nZeilen", None),
        ("---", "---", None),
        ("A long sentence with very many words in it", "Ja", None),
        (" ".join(["word"] * (corpus.MAX_WORDS + 1)), "Wort", None),
    ],
)
def test_clean_pair(english, german, expected):
    cleaned = corpus.clean_pair(corpus.Pair(english, german, "test"))
    assert (None if cleaned is None else (cleaned.english, cleaned.german)) == expected


def test_deduplicate_keeps_the_first_per_normalized_english():
    pairs = [
        corpus.Pair("Save", "Sichern", "a"),
        corpus.Pair("save", "Speichern", "b"),
        corpus.Pair("Save  ", "Speichern", "c"),
        corpus.Pair("Open", "Öffnen", "d"),
    ]
    assert [p.origin for p in corpus.deduplicate(pairs)] == ["a", "d"]


def test_split_is_deterministic_and_by_normalized_english():
    assert corpus.is_heldout("Save", 0.5) == corpus.is_heldout("  save ", 0.5)
    fractions = [corpus.is_heldout(f"sentence {i}", 0.1) for i in range(4000)]
    assert 0.08 < sum(fractions) / len(fractions) < 0.12
    with pytest.raises(ValueError, match=r"Received: heldout_fraction=1\.0"):
        corpus.load_corpus(None, heldout_fraction=1.0)


def test_sample_spreads_over_the_pairs():
    assert corpus.sample(list(range(10)), 3) == [0, 3, 6]
    assert corpus.sample(list(range(4)), None) == [0, 1, 2, 3]
    assert corpus.sample(list(range(4)), 10) == [0, 1, 2, 3]


def test_pip_only_corpus_is_real_disjoint_and_counted():
    loaded = corpus.load_corpus(None)
    assert len(corpus.pip_catalogs()) >= 20  # Django and the JupyterLab German pack
    train_keys = {corpus.normalized_key(p.english) for p in loaded.train}
    heldout_keys = {corpus.normalized_key(p.english) for p in loaded.heldout}
    assert not train_keys & heldout_keys
    assert loaded.counts["pairs"] == len(loaded.train) + len(loaded.heldout) >= 1000
    raw = loaded.counts["pip catalog entries"] + loaded.counts["cldr names"]
    assert raw >= loaded.counts["pairs"]
    assert len(loaded.heldout) >= 80
    german = {p.german for p in loaded.train}
    assert {"Passwort ändern", "Sichern"} <= german


def test_cli_counts_the_corpus(tmp_path, capsys):
    from tfstack.cli import main

    report = tmp_path / "counts.json"
    assert main(["nmt", "corpus", "--pip-only", "--json", str(report)]) == 0
    counts = json.loads(report.read_text())
    assert counts == corpus.load_corpus(None).counts
    assert "held-out pairs" in capsys.readouterr().out
