"""Answer extraction from real model output.

Order of preference, after removing the reasoning (``<think>`` blocks):

1. the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced;
2. the last marker "the answer is X", "Answer: X", "#### X" (case-insensitive)
   followed by a number or ``$…$``/``\\(…\\)`` LaTeX, on the same or the next line;
3. otherwise the last number in the text;
4. otherwise the words after the last marker ("The answer is yes").

Numbers are normalised so that string equality already settles the common case:
thousands commas ("1,234"), ``$`` signs, a trailing period, the Unicode minus and
``\\frac{a}{b}`` (as ``a/b``). Everything else is left to math-verify
(:mod:`tasks.math.verifier`).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "strip_think",
    "last_boxed",
    "extract_answer",
    "normalize_number",
    "reference_answer",
    "NUMBER_RE",
]

_OPEN, _CLOSE = "<think>", "</think>"
_BLOCK_RE = re.compile(r"<think>.*?</think>", re.S | re.I)
_OPEN_RE = re.compile(re.escape(_OPEN), re.I)
_CLOSE_RE = re.compile(re.escape(_CLOSE), re.I)

# A minus is a sign only where it cannot be a binary minus ("10-5" holds no -5).
_SIGN = r"(?:(?<![\w)\]}])-)?"
_PLAIN = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|\.\d+"
_FRAC = r"\\[dt]?frac\{\s*-?\d+\s*\}\{\s*\d+\s*\}"
NUMBER_RE = re.compile(rf"{_SIGN}(?:{_FRAC}|{_PLAIN})")
_FULL_NUMBER_RE = re.compile(rf"-?(?:{_FRAC}|{_PLAIN})")
_FRAC_PARTS_RE = re.compile(r"\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(\d+)\s*\}")

_MARKER_RE = re.compile(r"answer\s*(?:is\b\s*:?|:|=)|####", re.I)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\b")


def strip_think(text: str) -> str:
    """The visible answer part of a completion, without its reasoning.

    Complete ``<think>…</think>`` blocks are removed. A closing tag with no opener
    means the chat template opened the block in the prompt: everything before it
    goes. An opener never closed means the model never finished thinking: everything
    after it goes (so a truncated reasoning trace has no answer).
    """
    text = _BLOCK_RE.sub("", text)
    closers = list(_CLOSE_RE.finditer(text))
    if closers:
        text = text[closers[-1].end() :]
    opener = _OPEN_RE.search(text)
    if opener:
        text = text[: opener.start()]
    return text.strip()


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{…}`` with balanced braces (``\\boxed 5`` too)."""
    for match in reversed(list(_BOXED_RE.finditer(text))):
        rest = text[match.end() :].lstrip()
        if rest.startswith("{"):
            depth = 0
            for i, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    return rest[1:i].strip()
            continue  # unbalanced: try an earlier box
        token = rest.split(maxsplit=1)
        if token:
            return token[0].rstrip(".$")
    return None


def normalize_number(text: str) -> str:
    """Canonical text of a number: no ``$``/commas/spaces/trailing period; ``a/b`` fractions."""
    s = text.strip().replace("\u2212", "-").replace("$", "").replace("\\!", "").replace(" ", "")
    s = s.rstrip(".")
    frac = _FRAC_PARTS_RE.fullmatch(s.lstrip("-"))
    if frac:
        sign = "-" if s.startswith("-") != frac.group(1).startswith("-") else ""
        return f"{sign}{frac.group(1).lstrip('-')}/{frac.group(2)}"
    if _FULL_NUMBER_RE.fullmatch(s):
        s = s.replace(",", "")
    return s


def _clean_latex(s: str) -> str:
    s = s.strip().rstrip(".").strip()
    return normalize_number(s) if _FULL_NUMBER_RE.fullmatch(normalize_number(s)) else s


def _answer_after_marker(span: str) -> tuple[str | None, bool]:
    """The answer right after "the answer is": (answer, whether it is maths, not prose)."""
    s = span.strip().lstrip("*:").strip()
    if not s:
        return None, False
    for opener, closer in (("\\[", "\\]"), ("\\(", "\\)"), ("$$", "$$")):
        if s.startswith(opener) and closer in s[len(opener) :]:
            return _clean_latex(s[len(opener) :].split(closer, 1)[0]), True
    if s.startswith("$") and not NUMBER_RE.match(s[1:].lstrip()) and "$" in s[1:]:
        return _clean_latex(s[1:].split("$", 1)[0]), True  # inline LaTeX, not a currency sign
    number = NUMBER_RE.search(s)
    if number:
        return normalize_number(number.group()), True
    words = re.split(r"(?<=[.!?])\s", s, maxsplit=1)[0].strip(" .*")
    return words or None, False


def extract_answer(completion: str) -> str | None:
    """The final answer of a completion as a string, or ``None`` when it gives none."""
    text = strip_think(completion).replace("\u2212", "-")
    boxed = last_boxed(text)
    if boxed is not None:
        return _clean_latex(boxed) if boxed else None
    # The last marker followed by maths wins; prose after a marker ("the answer is
    # correct") counts only when the text holds no number at all.
    prose = None
    for marker in reversed(list(_MARKER_RE.finditer(text))):
        rest = text[marker.end() :].lstrip()
        found, is_math = _answer_after_marker(rest.split("\n", 1)[0] if rest else "")
        if is_math:
            return found
        prose = prose or found
    numbers = NUMBER_RE.findall(text)
    return normalize_number(numbers[-1]) if numbers else prose


def reference_answer(reference: Any) -> str | None:
    """The gold answer of a reference: a bare answer, a GSM8K solution, or a boxed solution."""
    if reference is None:
        return None
    ref = str(reference).strip()
    if "####" in ref:
        ref = ref.rsplit("####", 1)[1].strip()
    elif _BOXED_RE.search(ref):
        ref = last_boxed(ref) or ""
    return _clean_latex(ref) if ref else None
