"""The exercise catalogue's texts for translation (catalog/text.py) and their Simplified Chinese:
every title, hint and case note a learner can see is a catalogue message, and each has a translation
that keeps its placeholders."""

import pathlib
import re

import pytest
import torch

from autograder import oracle
from autograder.catalog import cnn, lm, rnn, text, transformer
from autograder.exercise import GENERIC_HINTS
from autograder.i18n import LOCALE_DIR, note_template

babel = pytest.importorskip("babel")
from babel.messages.extract import extract_from_file  # noqa: E402
from babel.messages.pofile import read_po  # noqa: E402

CATALOG = pathlib.Path(text.__file__).parent
PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@pytest.fixture(scope="module")
def messages():
    return text.messages()


def code_messages() -> list[str]:
    """The ``_()``/``N_()`` messages of the catalogue's modules (raised by its probes and metrics)."""
    found = []
    for path in sorted(CATALOG.glob("*.py")):
        extracted = extract_from_file("python", str(path), keywords={"_": None, "N_": None})
        found += [message for _lineno, message, _comments, _context in extracted]
    return found


def test_titles_hints_and_generic_hints_are_messages(messages):
    for lesson in text.lessons():
        assert lesson.title in messages and lesson.builds in messages
        for exercise in lesson.exercises:
            assert exercise.title in messages, exercise.id
            assert exercise.builds in messages, exercise.id
            for group in exercise.groups:
                assert not group.hint or group.hint in messages, (exercise.id, group.name)
            for key, hint in exercise.hints.items():
                assert hint in messages, (exercise.id, key)
            if exercise.threshold is not None:
                assert exercise.threshold.name in messages
                assert not exercise.threshold.unit or exercise.threshold.unit in messages
    for hint in GENERIC_HINTS.values():
        assert hint in messages
    assert all(isinstance(where, str) and where for where in messages.values())


@pytest.mark.parametrize("seed", ["0", "hidden:not-one-of-text.SEEDS"])
def test_every_note_template_is_a_message(messages, seed):
    """The notes of the grader's own cases (oracle.make_cases), for seed "0" and for a seed that
    messages() never drew: each note's template is in the catalogue, or the note is a program (code)."""
    missing = set()
    for lesson in text.lessons():
        for exercise in lesson.exercises:
            for case in oracle.make_cases(exercise, seed, ["cpu"]):
                template = note_template(case.note)[0]
                if case.note and not text.is_code(template) and template not in messages:
                    missing.add((exercise.id, template))
    assert not missing


def test_programs_are_code_and_words_are_not():
    assert text.is_code("a = Value({0}); b = a.tanh(); c = b * b; d = c + b; d.backward()")
    assert text.is_code("e = (a + b) * c")
    for words in ("d = {0}: pair (x0, x1) turned by the angle p", "T = {0}: RoPE turns position {1} by {2}",
                  "x = {0}, {1}, ..., {2} with scale {3}", "is_causal=True", "a single class"):
        assert not text.is_code(words), words


def translations(wanted: list[str]) -> dict[str, str]:
    """msgid -> Chinese: from minidl.po once it holds every wanted message (after the merge), else
    from the draft the merge reads."""
    folder = LOCALE_DIR / "zh_CN" / "LC_MESSAGES"
    found: dict[str, str] = {}
    for name in ("minidl.po", "exercises.draft.po"):
        path = folder / name
        if not path.exists():
            continue
        with open(path, "rb") as f:
            found = {m.id: m.string for m in read_po(f) if m.id and m.string and not m.fuzzy}
        if all(w in found for w in wanted):
            return found
    return found


def test_every_message_has_its_chinese(messages):
    wanted = list(messages) + code_messages()
    zh = translations(wanted)
    assert [w for w in wanted if w not in zh] == []
    for english in wanted:
        chinese = zh[english]
        words = re.search(r"\b(?:a|an|the|is|of|to|with|from)\b", english)
        if words and "signature" not in messages.get(english, ""):  # words, not only code: in Chinese
            assert re.search(r"[\u4e00-\u9fff]", chinese), english
        assert sorted(PLACEHOLDER.findall(chinese.replace("{{", "").replace("}}", ""))) == \
            sorted(PLACEHOLDER.findall(english.replace("{{", "").replace("}}", ""))), english


def test_translated_messages_are_english_unchanged():
    """The messages wrapped in _() read as before in English (the source language)."""
    with pytest.raises(ValueError, match=re.escape(
            "your model should return float logits [3, 10] for 3 images [N, 1, 8, 8], but it returned int64[3]")):
        cnn.accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=re.escape(
            "your model should return float logits [2, 5, 27] for tokens [2, 5] (or a tuple (logits, state)), "
            "but it returned float32[2, 5]")):
        rnn.char_loss(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.long))
    k = transformer.PASSAGE_CHARS
    with pytest.raises(ValueError, match=re.escape(
            f"your model should return float logits [2, {k}, 65] for tokens [2, {k}], but it returned float32[2]")):
        transformer.gpt_loss(torch.zeros(2), torch.zeros(2, k, dtype=torch.long))
    k, v = lm.PASSAGE_TOKENS, lm.VOCAB
    with pytest.raises(ValueError, match=re.escape(
            f"your model should return float logits [2, {k}, {v}] for tokens [2, {k}], but it returned float64[1]")):
        lm.bits_per_byte(torch.zeros(1, dtype=torch.float64), torch.zeros(2, k, 2, dtype=torch.long))
    assert set(code_messages()) >= {
        "scale(loss) should return a tensor (loss * scale), not {type}",
        "on rank {rank}: {error}: {message}",
        "load_checkpoint should return the extra keywords save_checkpoint was given, as a dict "
        "({{'epoch': ..., 'losses': ...}} here), not {type}",
    }
