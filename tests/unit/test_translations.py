"""The English catalog: it covers every source string, matches its compiled .mo and keeps the placeholders."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
BABEL_CFG = ROOT / "babel.cfg"
PO = ROOT / "growth" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
# The same keywords `make translations` passes to pybabel (-k _l -k lazy_gettext) on top of Babel's defaults.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
SKIPPED_DIRS = {"tests", "node_modules", "instance"}

CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*(?:\d+)?(?:\.\d+)?([diouxXeEfFgGcrsa])")

Key = tuple[str, str | None]


def _key(msgid: str | tuple[str, ...] | list[str], context: str | None) -> Key:
    return (msgid if isinstance(msgid, str) else msgid[0], context)


def _forms(string: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    if not string:
        return ()
    return (string,) if isinstance(string, str) else tuple(string)


def _keep_dir(path: str) -> bool:
    name = os.path.basename(path)
    return not name.startswith((".", "_")) and name not in SKIPPED_DIRS


@pytest.fixture(scope="module")
def source_messages() -> dict[Key, list[str]]:
    """Extract every translatable string from the tree the way `make translations` does: msgid -> locations."""
    with BABEL_CFG.open() as fp:
        method_map, options_map = parse_mapping_cfg(fp, str(BABEL_CFG))
    found: dict[Key, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, directory_filter=_keep_dir
    ):
        found.setdefault(_key(message, context), []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def po() -> Catalog:
    with PO.open("rb") as fp:
        return read_po(fp, locale="en")


def _translated(catalog: Iterable) -> dict[Key, tuple[str, ...]]:
    return {_key(m.id, m.context): _forms(m.string) for m in catalog if m.id}


def test_the_extraction_finds_the_strings_of_python_code_and_templates(source_messages):
    # Guards the guard: a broken babel.cfg that extracts nothing would make the coverage test pass vacuously.
    files = {loc.split(":")[0] for locs in source_messages.values() for loc in locs}
    assert any(f.endswith(".py") for f in files) and any(f.startswith("templates") for f in files), files
    assert ("投资有风险，理财需谨慎。", None) in source_messages
    assert ("渠道", None) in source_messages
    assert not any(f.startswith(("tests", ".venv")) for f in files)


def test_every_source_string_has_an_english_translation(source_messages, po):
    missing = []
    for (msgid, context), locations in sorted(source_messages.items(), key=lambda item: item[1][0]):
        message = po.get(msgid, context)
        if message is None or message.fuzzy or not all(f.strip() for f in _forms(message.string)):
            state = "missing" if message is None else "fuzzy" if message.fuzzy else "empty"
            label = f"[{context}] {msgid}" if context else msgid
            missing.append(f"  {label!r} ({state}; {locations[0]})")
    assert not missing, (
        f"{len(missing)} string(s) have no English translation; run `make translations` and translate them in "
        f"{PO.relative_to(ROOT)}:\n" + "\n".join(missing)
    )


def test_plural_strings_have_every_english_form(po):
    incomplete = [m.id for m in po if m.id and m.pluralizable and len(_forms(m.string)) != po.num_plurals]
    assert not incomplete


def test_no_translation_is_left_in_chinese(po):
    chinese = [(m.id, s) for m in po if m.id for s in _forms(m.string) if CJK.search(s)]
    assert not chinese, chinese


def test_the_committed_mo_is_the_compiled_po(po):
    assert MO.exists(), f"{MO.relative_to(ROOT)} is missing: run `make translations`"
    with MO.open("rb") as fp:
        compiled = read_mo(fp)
    # `pybabel compile` leaves out fuzzy and untranslated entries, so the .mo holds exactly these.
    expected = {k: v for k, v in _translated(m for m in po if not m.fuzzy).items() if v and all(v)}
    assert _translated(compiled) == expected, f"{MO.relative_to(ROOT)} is stale: run `make translations`"


def _placeholders(text: str) -> Counter[tuple[str, str]]:
    return Counter(PLACEHOLDER.findall(text))


def _english_part(msgid: str) -> str:
    """Return what an English translation must carry: the English half of a bilingual "中文 / English" msgid."""
    head, sep, tail = msgid.partition(" / ")
    if sep and CJK.search(head) and not CJK.search(tail):
        return tail
    return msgid


def test_translations_keep_the_placeholders_of_their_source(po):
    wrong = []
    for m in po:
        if not m.id:
            continue
        sources = [m.id] if isinstance(m.id, str) else list(m.id)
        wanted = _placeholders(_english_part(sources[-1]))
        for form in _forms(m.string):
            if _placeholders(form) != wanted:
                wrong.append((m.id, form, dict(wanted)))
    assert not wrong, wrong


def test_translations_have_no_bare_percent_sign(po):
    # Templates format every translated string with `%` (newstyle gettext), so a lone "%" raises or garbles.
    bare = [
        (m.id, form) for m in po if m.id for form in _forms(m.string)
        if "%" in PLACEHOLDER.sub("", form).replace("%%", "")
    ]
    assert not bare, bare


def test_the_english_half_of_a_bilingual_message_is_recognised():
    assert _english_part("请填写%(label)s / %(field)s is required") == "%(field)s is required"
    assert _english_part("名称 / 落地页") == "名称 / 落地页"
    assert _placeholders("%(n)d 行 %(code)s") == Counter({("n", "d"): 1, ("code", "s"): 1})
