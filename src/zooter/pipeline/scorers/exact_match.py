r"""``--scorer exact_match``: a response's extracted answer against a reference from the row.

The reference is the row field ``--reference_field`` (default ``answer``): a string, a number, or a list
of acceptable answers (the best match counts). It goes through the same extraction as the response;
a reference that does not parse is an error naming the row. A response whose answer cannot be
extracted scores 0 with the reason ``unparseable`` (counted at the end); otherwise the reason is
``correct: <answer>`` / ``wrong: <answer>`` (``extracted: <answer>`` for ``f1``). Modes (``--mode``):

``choice`` — a multiple-choice letter A–J (MMLU, MMLU-Pro, ARC). Tried in this order:

1. after the last "answer" (``answer``, ``answer is``, ``answer:``, any case; "The correct answer is"):
   ``(B)``, ``[B]``, ``**B**``, ``**(B)**``, a bare capital ``B`` not followed by a letter or digit
   ("The answer is B because ..."), or a bare small letter followed by ``.``, ``)``, ``:`` or the end of
   the text ("Answer: b"; never "the answer is a bit ...");
2. the whole response is one letter, with any punctuation or markup around it: ``B``, ``(b)``, ``**B**``,
   ``B.``;
3. the response starts with a capital letter followed by ``.``, ``)`` or ``:``: "B. Paris", "(C) 42";
4. every bold or parenthesised capital letter in the response, ``**B**`` or ``(B)``, is the same letter.

Otherwise unparseable. A whole-number reference is an index (0 → A, 1 → B, ...), as in the Hugging
Face MMLU rows.

``number`` — the final number (GSM8K, SVAMP, MATH answers that are numbers). Tried in this order: the
first number after the last ``####`` (GSM8K's own answer format), inside the last ``\boxed{...}``, after
the last "answer is" / "answer:" / "answer =" (any case), else the last number in the text. A number
is an optional minus sign (``-`` or ``−``, not after a letter or digit, so "5-6" gives 6), an optional
currency sign (``$ € £ ¥``), digits with optional thousands commas (``1,234``), an optional decimal
part (``12.50``), or a fraction ``3/4``; a trailing ``%`` or unit ("12 apples") is ignored. Values
compare exactly as fractions: ``12.50`` = ``12.5`` = ``25/2``, ``1,234`` = ``1234``. Not parsed:
numbers in words ("forty-two"), scientific notation, mixed numbers ("1 1/2" gives 1/2).

``text`` — normalised short answers (SQuAD, TriviaQA, Natural Questions): the text after the last
"answer is" or "answer:" up to the end of its line, else the whole response; both sides are
lower-cased, punctuation is removed, the articles a / an / the are dropped and whitespace is collapsed
(SQuAD's normalisation). Score 1 when equal, else 0; empty after normalisation is unparseable.

``f1`` — the same extraction and normalisation, scored by SQuAD's token F1 (bag-of-words overlap:
2·precision·recall / (precision + recall); 0 without a common token).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from zooter.pipeline.scorers.base import Key, Unit, Verdict, row_field
from zooter.table.schema import TableError

MODES = ("choice", "number", "text", "f1")
LETTERS = "ABCDEFGHIJ"
BATCH = 1000  # verdicts per journal write

_LETTER_AFTER_CUE = re.compile(  # the cue in any case; a bare letter: a capital, or a small one that ends a clause
    r"(?i:\banswer\b(?:\s+is)?)\s*[:：]?\s*(?:(?i:option|choice)\s+)?"
    r"(?:\(([A-Ja-j])\)|\[([A-Ja-j])\]|\*\*\(?([A-Ja-j])\)?\*\*"
    r"|([A-J])(?![A-Za-z0-9])|([a-j])(?=[ \t]*(?:[.):,]|\n|$)))"
)
_ONLY_LETTER = re.compile(r"^[\W_]*([A-Ja-j])[\W_]*$")
_LEADING_LETTER = re.compile(r"^[\s*(]*([A-J])[.):]")
_MARKED_LETTER = re.compile(r"\*\*\(?([A-J])\)?[.):]?\*\*|\(([A-J])\)")

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?[$€£¥]?(?P<sign2>[-−])?"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?(?:/(?P<den>\d+)(?![\d.]))?"
)
_HASHES = re.compile(r"####")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER_CUE = re.compile(r"\banswer\b\s*(?:is\b|[:：=])", re.IGNORECASE)
_TEXT_CUE = re.compile(r"\banswer\b\s*(?:is\b|[:：])[ \t]*([^\n]*)", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")


# ---------------------------------------------------------------------------------------------- extraction


def extract_choice(text: str) -> str | None:
    """The multiple-choice letter (upper case) a response gives, or None (rules in the module docstring)."""
    cued = list(_LETTER_AFTER_CUE.finditer(text))
    if cued:
        return next(g for g in cued[-1].groups() if g).upper()
    for pattern in (_ONLY_LETTER, _LEADING_LETTER):
        if match := pattern.match(text.strip()):
            return match.group(1).upper()
    marked = {a or b for a, b in _MARKED_LETTER.findall(text)}
    return marked.pop() if len(marked) == 1 else None


def _number_value(match: re.Match[str]) -> Fraction | None:
    value = Fraction(match["int"].replace(",", "") + (match["dec"] or ""))
    if match["den"]:
        if int(match["den"]) == 0:
            return None
        value /= int(match["den"])
    return -value if match["sign"] or match["sign2"] else value


def _first_number(text: str) -> Fraction | None:
    return next((v for m in _NUMBER.finditer(text) if (v := _number_value(m)) is not None), None)


def extract_number(text: str) -> Fraction | None:
    """The final numeric answer of a response as an exact fraction, or None (rules in the module docstring)."""
    hashes = list(_HASHES.finditer(text))
    if hashes and (value := _first_number(text[hashes[-1].end() :])) is not None:
        return value
    boxed = _BOXED.findall(text)
    if boxed and (value := _first_number(boxed[-1])) is not None:
        return value
    cues = list(_NUMBER_CUE.finditer(text))
    if cues and (value := _first_number(text[cues[-1].end() :])) is not None:
        return value
    values = [v for m in _NUMBER.finditer(text) if (v := _number_value(m)) is not None]
    return values[-1] if values else None


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles (a, an, the), single spaces."""
    text = "".join(ch for ch in text if not (unicodedata.category(ch).startswith("P") or ch in string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text.lower()).split())


def extract_text(text: str) -> str | None:
    """The normalised short answer: after the last "answer is"/"answer:" on its line, else the whole text."""
    cued = list(_TEXT_CUE.finditer(text))
    normalized = normalize_answer(cued[-1].group(1) if cued else text)
    return normalized or None


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 between two normalised answers."""
    pred, gold = prediction.split(), reference.split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _format(value: str | Fraction) -> str:
    if isinstance(value, Fraction) and value.denominator != 1:
        return f"{value.numerator}/{value.denominator} ({float(value):g})"
    return str(value)


# ---------------------------------------------------------------------------------------------- scorer


@dataclass
class ExactMatch:
    """Extracted answers against the row's reference.

    Args:
        mode: ``choice``, ``number``, ``text`` or ``f1`` (see the module docstring).
        reference_field: the row field with the reference answer (or a list of acceptable ones).
    """

    mode: str = ""
    reference_field: str = "answer"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            given = f"got {self.mode!r}" if self.mode else "none was given"
            raise ValueError(f"--scorer exact_match needs --mode, one of {list(MODES)}; {given}")
        self._references: dict[str, list[Any]] = {}

    @property
    def name(self) -> str:
        return f"exact_match_{self.mode}"

    def spec(self) -> dict[str, Any]:
        return {"mode": self.mode, "reference_field": self.reference_field}

    def describe(self) -> str:
        return f"mode {self.mode}, references from {self.reference_field!r}"

    def extract(self, text: str) -> str | Fraction | None:
        """The answer a text gives under this mode, or None."""
        if self.mode == "choice":
            return extract_choice(text)
        if self.mode == "number":
            return extract_number(text)
        return extract_text(text)

    def check(self, rows: Sequence[Mapping[str, Any]], source: Path) -> None:
        """Every row's references, extracted; a missing or unparseable one names the row."""
        for row in rows:
            raw = row_field(row, self.reference_field, source, "a reference answer or a list of them")
            where = f"{source} (id={row['id']!r}): field {self.reference_field!r}"
            values = raw if isinstance(raw, list) else [raw]
            if not values:
                raise TableError(f"{where}: an empty list of references")
            self._references[row["id"]] = [self._reference(value, where) for value in values]

    def _reference(self, value: Any, where: str) -> str | Fraction:
        if self.mode == "choice" and isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(LETTERS):
                raise TableError(f"{where}: choice index {value} is not in 0..{len(LETTERS) - 1}")
            return LETTERS[value]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TableError(f"{where}: expected text or a number, got {value!r}")
        extracted = self.extract(str(value))
        if extracted is None:
            raise TableError(f"{where}: no {self.mode} answer can be extracted from the reference {value!r}")
        return extracted

    def verdict(self, response: str, references: Sequence[str | Fraction]) -> Verdict:
        """One response's score and reason against its extracted references."""
        answer = self.extract(response)
        if answer is None:
            return Verdict(0.0, "unparseable")
        if self.mode == "f1":
            return Verdict(max(token_f1(str(answer), str(ref)) for ref in references), f"extracted: {answer}")
        correct = answer in references
        return Verdict(float(correct), f"{'correct' if correct else 'wrong'}: {_format(answer)}")

    def score(self, units: Sequence[Unit]) -> Iterator[list[tuple[Key, Verdict]]]:
        for start in range(0, len(units), BATCH):
            yield [(u.key, self.verdict(u.response, self._references[u.id])) for u in units[start : start + BATCH]]
