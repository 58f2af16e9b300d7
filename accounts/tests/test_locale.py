"""The translation catalogs are complete and compiled (SPEC §4.2: every page complete in
both Chinese scripts). When one of these fails, run `make messages`, translate the new
msgids in both .po files, and compile again."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings

LOCALE_DIR = Path(settings.BASE_DIR) / "locale"
LOCALES = ["zh_Hans", "zh_Hant"]


def parse_po(path: Path) -> list[dict]:
    """Entries of a .po file: msgctxt, msgid, msgid_plural, msgstr(s), flags. Obsolete
    (``#~``) entries are left out."""
    entries: list[dict] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": set(), "ctxt": None, "id": None, "plural": None, "strs": {}}
        field = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                value = ast.literal_eval(line)
                if isinstance(field, int):
                    entry["strs"][field] += value
                else:
                    entry[field] += value
            else:
                keyword, _sep, literal = line.partition(" ")
                value = ast.literal_eval(literal)
                if keyword.startswith("msgstr"):
                    field = int(keyword[7:-1]) if "[" in keyword else 0
                    entry["strs"][field] = value
                else:
                    field = {"msgctxt": "ctxt", "msgid": "id", "msgid_plural": "plural"}[keyword]
                    entry[field] = value
        if entry["id"] is not None:
            entries.append(entry)
    return entries


def _label(entry: dict) -> str:
    return f"{entry['ctxt']}|{entry['id']}" if entry["ctxt"] else entry["id"]


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_has_no_untranslated_or_fuzzy_entries(locale):
    entries = parse_po(LOCALE_DIR / locale / "LC_MESSAGES" / "django.po")
    untranslated = [_label(e) for e in entries if e["id"] and not all(e["strs"].values())]
    fuzzy = [_label(e) or "(header)" for e in entries if "fuzzy" in e["flags"]]
    assert len(entries) > 100
    assert untranslated == []
    assert fuzzy == []


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_keeps_placeholders(locale):
    entries = parse_po(LOCALE_DIR / locale / "LC_MESSAGES" / "django.po")
    broken = [
        _label(e)
        for e in entries
        if e["id"] and sorted(_placeholders(e["id"])) != sorted(_placeholders(e["strs"].get(0, "")))
    ]
    assert broken == []


def _placeholders(text: str) -> list[str]:
    return re.findall(r"%\([a-z_]+\)[sdr]|\{[a-z_]*\}", text)


def expected_catalog(entries: list[dict]) -> dict:
    """What msgfmt puts in the .mo file, in ``gettext.GNUTranslations._catalog`` form:
    translated, non-fuzzy entries; ``context\x04msgid`` keys; ``(msgid, n)`` for plurals."""
    catalog: dict = {}
    for entry in entries:
        if "fuzzy" in entry["flags"] and entry["id"]:
            continue
        if not all(entry["strs"].values()):
            continue
        key = f"{entry['ctxt']}\x04{entry['id']}" if entry["ctxt"] else entry["id"]
        if not key:  # the header; msgfmt leaves out the POT creation date
            catalog[key] = re.sub(r"POT-Creation-Date: .*\n", "", entry["strs"][0])
        elif entry["plural"] is None:
            catalog[key] = entry["strs"][0]
        else:
            catalog.update({(key, n): text for n, text in entry["strs"].items()})
    return catalog


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_catalog_matches_the_po_file(locale):
    directory = LOCALE_DIR / locale / "LC_MESSAGES"
    with (directory / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)._catalog
    assert compiled == expected_catalog(parse_po(directory / "django.po"))
