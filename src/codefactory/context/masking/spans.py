"""`Span`: where a detector found a secret or a personal datum in a text (never the value)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What a span holds; secrets win over personal data where spans overlap."""

    SECRET = "secret"
    PERSONAL = "personal"


@dataclass(frozen=True, kw_only=True, slots=True)
class Span:
    """`text[start:end]` is an `entity` (`EMAIL_ADDRESS`, `SECRET_AWS`) found by `detector`
    (`presidio:EmailRecognizer`, `detect-secrets:AWSKeyDetector`, `pattern:CUSTOMER_ID`).
    Offsets are Python string indices (code points), end exclusive; `score` in [0, 1]."""

    start: int
    end: int
    entity: str
    detector: str
    kind: Kind
    score: float = 1.0

    @property
    def length(self) -> int:
        return self.end - self.start
