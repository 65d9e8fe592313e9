"""Strings matching a simple regular expression, for the generic model's ``pattern`` fields.

Understood: literal characters and escaped ones (``\\.``), ``.``, ``\\d``, ``\\w``, ``\\s``, character classes
(``[A-Z0-9_-]``, ``[^,]``), groups with alternatives (``(EUR|USD)``, ``(?:a|b)``), the quantifiers ``?``, ``*``,
``+``, ``{n}``, ``{n,}``, ``{n,m}``, and ``^``/``$`` at the ends. Anything else (look-arounds, back-references,
``\\b``, anchors inside) raises UnsupportedError.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable

Maker = Callable[[random.Random], str]

# what ``.`` and negated classes draw from: printable ASCII without quotes and backslashes (JSON-friendly)
_PRINTABLE = "".join(c for c in string.ascii_letters + string.digits + string.punctuation + " " if c not in "\"'\\")
_CLASSES = {"d": string.digits, "w": string.ascii_letters + string.digits + "_", "s": " "}
_OPEN_ENDED = 5  # ``*``, ``+`` and ``{n,}`` repeat at most this many times more than their minimum
_SAMPLES = 50


class UnsupportedError(ValueError):
    """A contract feature the generic generator cannot make (here: pattern syntax); the message says which."""


def string_maker(pattern: str) -> Maker:
    """A function making random strings that ``re.search(pattern, ...)`` matches; UnsupportedError if the pattern is
    beyond the syntax above (or, as a safety net, if samples do not match)."""
    maker = _Parser(pattern).parse()
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UnsupportedError(f"not a valid regular expression: {exc}") from exc
    check = random.Random(0)
    for _ in range(_SAMPLES):
        sample = maker(check)
        if not compiled.search(sample):
            raise UnsupportedError(f"made {sample!r}, which the pattern does not match")
    return maker


class _Parser:
    """Recursive descent over the pattern: alternatives of sequences of quantified atoms."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def parse(self) -> Maker:
        if self.text.startswith("^"):
            self.pos = 1
        maker = self._alternatives()
        if self.pos != len(self.text):
            raise UnsupportedError(f"unexpected {self.text[self.pos]!r} at position {self.pos}")
        return maker

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _alternatives(self) -> Maker:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        if len(options) == 1:
            return options[0]
        return lambda rng: rng.choice(options)(rng)

    def _sequence(self) -> Maker:
        parts: list[Maker] = []
        while self._peek() not in ("", "|", ")"):
            if self._peek() == "$" and self.pos == len(self.text) - 1:
                self.pos += 1
                break
            parts.append(self._quantified(self._atom()))
        return lambda rng: "".join(part(rng) for part in parts)

    def _atom(self) -> Maker:
        char = self._peek()
        self.pos += 1
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self._peek() == "?":
                raise UnsupportedError(f"group modifier '(?{self.text[self.pos + 1 : self.pos + 2]}' is not supported")
            inner = self._alternatives()
            if self._peek() != ")":
                raise UnsupportedError(f"unclosed group at position {self.pos}")
            self.pos += 1
            return inner
        if char == "[":
            return _choice(self._class())
        if char == ".":
            return _choice(_PRINTABLE)
        if char == "\\":
            return _choice(self._escape())
        if char in "^$*+?{}]":
            raise UnsupportedError(f"{char!r} at position {self.pos - 1} is not supported there")
        return lambda rng: char

    def _escape(self) -> str:
        char = self._peek()
        self.pos += 1
        if char in _CLASSES:
            return _CLASSES[char]
        if not char or char.isalnum():
            raise UnsupportedError(f"escape '\\{char}' is not supported")
        return char

    def _class(self) -> str:
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        members: set[str] = set()
        first = True
        while True:
            char = self._peek()
            if not char:
                raise UnsupportedError("unclosed character class")
            self.pos += 1
            if char == "]" and not first:
                break
            first = False
            if char == "\\":
                chars = self._escape()
                if len(chars) > 1:
                    members.update(chars)
                    continue
                char = chars
            if self._peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                end = self.text[self.pos + 1]
                if end == "\\":
                    raise UnsupportedError("escapes as the end of a range are not supported")
                self.pos += 2
                if ord(end) < ord(char):
                    raise UnsupportedError(f"bad range {char}-{end}")
                members.update(chr(c) for c in range(ord(char), ord(end) + 1))
            else:
                members.add(char)
        if negated:
            members = set(_PRINTABLE) - members
        if not members:
            raise UnsupportedError("the character class matches nothing printable")
        return "".join(sorted(members))

    def _quantified(self, atom: Maker) -> Maker:
        char = self._peek()
        if char == "?":
            low, high = 0, 1
        elif char == "*":
            low, high = 0, _OPEN_ENDED
        elif char == "+":
            low, high = 1, 1 + _OPEN_ENDED
        elif char == "{":
            match = re.compile(r"\{(\d+)(,(\d*))?\}").match(self.text, self.pos)
            if match is None:
                raise UnsupportedError(f"bad quantifier at position {self.pos}")
            low = int(match.group(1))
            high = low if match.group(2) is None else int(match.group(3) or low + _OPEN_ENDED)
            if high < low:
                raise UnsupportedError(f"bad quantifier {match.group(0)}")
            self.pos = match.end() - 1
        else:
            return atom
        self.pos += 1
        if self._peek() in ("?", "+"):
            raise UnsupportedError(f"lazy or possessive quantifier at position {self.pos} is not supported")
        return lambda rng: "".join(atom(rng) for _ in range(rng.randint(low, high)))


def _choice(alphabet: str) -> Maker:
    return lambda rng: alphabet[int(rng.random() * len(alphabet))]
