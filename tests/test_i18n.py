"""The grader speaks the learner's language: one gettext catalogue (autograder/locale), complete in
Chinese, and the same scores whatever the language."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from autograder import check, i18n, messages, outputs
from autograder.cli import chosen_language

from .conftest import ROOT

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def template():
    """A fresh extraction: every _()/N_() message of the package and the exercise catalogue's texts."""
    return messages.template()


@pytest.fixture
def english():
    """Speak English again after the test, whatever it chose."""
    yield
    i18n._current = i18n.SOURCE_LANGUAGE


def test_every_message_has_its_chinese_and_the_mo_is_current(template):
    assert len(template) > 100
    assert messages.problems("zh", pot=template) == [], "run python -m autograder.messages update, translate, compile"


def test_the_check_fails_on_a_message_without_its_chinese(template, tmp_path):
    po = messages.read_po(messages.po_path("zh"))
    po["NOT YET"].string = ""
    po["all {cases} cases passed"].string = "全部测试用例通过"  # a placeholder lost
    del po["PASSED"]
    broken = tmp_path / "zh_CN" / "LC_MESSAGES" / "minidl.po"
    messages.write_po(po, broken)
    shutil.copy(messages.po_path("zh").with_suffix(".mo"), broken.with_suffix(".mo"))
    found = messages.problems("zh", po_file=broken, pot=template)
    assert "no translation: 'NOT YET'" in found
    assert "not in the catalogue: 'PASSED'" in found
    assert any(p.startswith("placeholders differ: 'all {cases} cases passed'") for p in found)
    assert any("minidl.mo is not compiled from the current minidl.po" in p for p in found)
    assert len(found) == 4, found
    broken.with_suffix(".mo").write_bytes(messages.mo_bytes(messages.read_po(broken)))
    assert len(messages.problems("zh", po_file=broken, pot=template)) == 3


def test_the_mo_is_byte_stable():
    po = messages.read_po(messages.po_path("zh"))
    assert messages.mo_bytes(po) == messages.mo_bytes(messages.read_po(messages.po_path("zh")))


def test_placeholders():
    assert messages.placeholders("{name} took {seconds:g} s, {{literal}}") == ["{name}", "{seconds:g}"]
    assert messages.placeholders("{0} and {1}") == ["{0}", "{1}"]


def test_normalize_and_the_locale(monkeypatch):
    assert [i18n.normalize(x) for x in ("zh_CN.UTF-8", "zh-Hans", "zh", "ZH_tw", "en_US.UTF-8", "en")] == \
        ["zh", "zh", "zh", "zh", "en", "en"]
    assert [i18n.normalize(x) for x in (None, "", "C", "POSIX", "C.UTF-8", "fr_FR.UTF-8")] == [None] * 6
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "MINIDL_LANG"):
        monkeypatch.delenv(name, raising=False)
    assert i18n.locale_language() is None
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert i18n.locale_language() is None
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert i18n.locale_language() == "zh"
    monkeypatch.setenv("LC_ALL", "en_GB.UTF-8")  # LC_ALL over LANG
    assert i18n.locale_language() == "en"


def args(lang=None):
    return argparse.Namespace(lang=lang)


def test_the_cli_chooses_lang_then_minidl_lang_then_locale_then_notebook(monkeypatch, tmp_path):
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG", "MINIDL_LANG"):
        monkeypatch.delenv(name, raising=False)
    english_nb, chinese_nb = ROOT / "lessons" / "01_tensors.ipynb", ROOT / "lessons" / "zh" / "01_tensors.ipynb"
    assert chosen_language(args(), [english_nb]) == "en"
    if chinese_nb.exists():
        assert chosen_language(args(), [chinese_nb]) == "zh"  # the notebook's metadata
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {"minidl": {"lang": "zh"}}, "nbformat": 4, "nbformat_minor": 5}))
    assert chosen_language(args(), [nb]) == "zh"
    monkeypatch.setenv("LANG", "en_US.UTF-8")  # the user's locale over the notebook's
    assert chosen_language(args(), [nb]) == "en"
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    assert chosen_language(args(), [english_nb]) == "zh"
    assert chosen_language(args("en"), [nb]) == "en"  # --lang over everything
    monkeypatch.setenv("MINIDL_LANG", "zh")  # MINIDL_LANG over the locale and the notebook
    assert chosen_language(args(), [english_nb]) == "zh"
    assert chosen_language(args("en"), [english_nb]) == "en"


def test_use_language_speaking_and_minidl_lang(monkeypatch, english):
    monkeypatch.delenv("MINIDL_LANG", raising=False)
    assert i18n.use_language("zh_CN.UTF-8") == "zh" and i18n._("PASSED") != "PASSED"
    with pytest.raises(ValueError):
        i18n.use_language("klingon")
    with i18n.speaking("en"):
        assert i18n._("PASSED") == "PASSED" and i18n.environment_language() == "en"
    assert i18n.language() == "zh" and i18n.environment_language() is None
    monkeypatch.setenv("MINIDL_LANG", "en")  # the grader's language wins over the set-up cell's
    assert i18n.use_language("zh") == "en"


def test_case_notes_are_translated_by_their_template(english):
    po = messages.read_po(messages.po_path("zh"))
    template = next(m for m in po if m.id and "{0}" in m.id and "{1}" not in m.id and m.string)
    note = template.id.replace("{0}", "7")
    assert i18n.note_template(note) == (template.id, ["7"])
    i18n.use_language("zh")
    assert i18n.note(note) == template.string.format("7")
    assert i18n.note("a note nobody wrote 3") == "a note nobody wrote 3"


def wrong_one_hot(labels, num_classes):
    return torch.zeros(len(labels), num_classes)


def test_a_check_in_chinese_scores_as_in_english(english):
    en = check("tensors.one_hot", wrong_one_hot)
    i18n.use_language("zh")
    zh = check("tensors.one_hot", wrong_one_hot)
    missing = check("tensors.one_hot", None)
    text, page = str(zh), zh.points._repr_html_()  # a report reads in the language in use when shown
    i18n.use_language("en")
    assert (zh.score, zh.passed_cases, zh.status, zh.groups) == (en.score, en.passed_cases, en.status, en.groups)
    assert str(en).startswith("NOT YET  tensors.one_hot: ") and "First failing case" in str(en)
    assert text.startswith("尚未通过  tensors.one_hot：") and "第一个未通过的测试用例" in text
    assert "提示" in text and CHINESE.search(zh.hint and i18n.gettext_in("zh", zh.hint))
    assert "此单元格记录的得分" in page and "tensors.one_hot" in page
    assert CHINESE.search(missing.note) and missing.status == "missing"
    assert en.to_dict().keys() == zh.to_dict().keys()


def test_the_feedback_page_speaks_the_students_language():
    report = {"lesson": "01_tensors", "notebook": "x.ipynb", "score": 1.0, "max_score": 3.0, "hidden_cases": True,
              "problems": [], "exercises": [{"id": "tensors.one_hot", "score": 1.0, "max_score": 3.0, "passed": False,
                                             "status": "checked", "message": "", "cases": 4, "passed_cases": 2}]}
    zh, en = outputs.feedback_page("ada", [dict(report, lang="zh")]), outputs.feedback_page("ada", [report])
    assert "ada 的反馈" in zh and "隐藏测试用例" in zh and "Feedback for ada" in en and not CHINESE.search(en)
    assert i18n.language() == "en"
    assert outputs.exercise_rows("ada", "01_tensors", "x.ipynb", report, ())[0].keys() == set(outputs.FIELDS)


@pytest.mark.slow
def test_grade_in_chinese_and_english_gives_the_same_scores(tmp_path, tool_env):
    notebook = ROOT / "lessons" / "01_tensors.ipynb"  # the student edition: stubs, scores 0, fast
    reports, tables = {}, {}
    for lang in ("en", "zh"):
        out = tmp_path / f"{lang}.json"
        env = dict(tool_env, LANG="C.UTF-8")
        env.pop("MINIDL_LANG", None)
        proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(notebook), "--json", str(out),
                               "--lang", lang], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        reports[lang], tables[lang] = json.loads(out.read_text()), proc.stdout
    scores = {lang: [(e["id"], e["score"], e["max_score"], e["passed"], e["status"], e["cases"], e["passed_cases"])
                     for e in r["exercises"]] for lang, r in reports.items()}
    assert scores["en"] == scores["zh"] and reports["en"]["score"] == reports["zh"]["score"]
    assert reports["en"].keys() == reports["zh"].keys()
    assert "total" in tables["en"] and not CHINESE.search(tables["en"])
    assert i18n.gettext_in("zh", "total") in tables["zh"] and "尚未实现" in tables["zh"]
