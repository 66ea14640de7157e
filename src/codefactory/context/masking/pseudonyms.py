"""`Pseudonyms`: one run's mapping of found values to placeholders, so the same value reads
the same everywhere the engine sees it (`<EMAIL_ADDRESS_1>`, `<SECRET_AWS_2>`, ...).

The mapping lives in the host's memory for the run and nowhere else: it cannot be pickled,
copied or printed with its values, so it never ends up in anything an engine sees.
"""

from __future__ import annotations

import re
import threading
from typing import NoReturn

PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_([1-9][0-9]*)>")
"""A placeholder as `Pseudonyms` writes it: `<ENTITY_N>`, N counting from 1 per entity."""


MIN_KNOWN_CHARS = 6


class Pseudonyms:
    """Value → placeholder for one run; thread-safe. Numbers count per entity type in the
    order values are first seen; the same value under two entity types gets two
    placeholders."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._placeholders: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._known: re.Pattern[str] | None = None

    def placeholder(self, entity: str, value: str) -> str:
        """`<ENTITY_N>` for `value`: the one given before, or the entity's next number.
        Raises ValueError for an entity name that is not UPPER_SNAKE_CASE."""
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", entity):
            raise ValueError(f"entity name {entity!r} must be UPPER_SNAKE_CASE")
        key = (entity, value)
        with self._lock:
            found = self._placeholders.get(key)
            if found is None:
                number = self._counts.get(entity, 0) + 1
                self._counts[entity] = number
                found = f"<{entity}_{number}>"
                self._placeholders[key] = found
                self._originals[found] = value
                self._known = None
            return found

    def original(self, placeholder: str) -> str | None:
        """The value behind `placeholder` (for the host only, e.g. to restore it in an
        engine's answer), or None when this run never gave it."""
        with self._lock:
            return self._originals.get(placeholder)

    def replace_known(self, text: str) -> str:
        """`text` with every value this run has seen replaced by its placeholder (exact,
        longest first): a value the detectors would miss where it reappears (reversed by a
        command, cut from its context) is still hidden once it was found anywhere."""
        with self._lock:
            if not self._originals:
                return text
            if self._known is None:
                values = sorted({v for _, v in self._placeholders}, key=len, reverse=True)
                # a value shorter than a few characters would hide ordinary words
                longer = [re.escape(v) for v in values if len(v) >= MIN_KNOWN_CHARS]
                self._known = re.compile("|".join(longer)) if longer else re.compile(r"(?!)")
            known = self._known
            by_value = {value: found for (_, value), found in self._placeholders.items()}
        return known.sub(lambda match: by_value[match.group(0)], text)

    def counts(self) -> dict[str, int]:
        """How many distinct values each entity type has had: `{"EMAIL_ADDRESS": 2}`."""
        with self._lock:
            return dict(self._counts)

    def __len__(self) -> int:
        with self._lock:
            return len(self._placeholders)

    def __repr__(self) -> str:
        return f"Pseudonyms({self.counts()!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("Pseudonyms hold the run's real values: they are never serialised")

    def __copy__(self) -> NoReturn:
        raise TypeError("Pseudonyms are not copied: share the run's one instance")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("Pseudonyms are not copied: share the run's one instance")
