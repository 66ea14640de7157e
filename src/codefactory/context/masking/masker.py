"""`Masker`: replaces secrets and personal data in a text by the run's placeholders
(`mask`), or says where they are without the values (`scan`, the model gateway's check).

Where spans overlap, one wins: secrets before personal data, then the longer span, then
the higher score, then the earlier one (a card number inside a private key is the key; an
e-mail inside a basic-auth URL's password is the password). Text that is already a
placeholder (`<EMAIL_ADDRESS_1>`) is never found again, so a masked text scans clean.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from enum import StrEnum

from codefactory.context.masking.personal import PersonalDataDetector
from codefactory.context.masking.pseudonyms import PLACEHOLDER, Pseudonyms
from codefactory.context.masking.secrets import SecretDetector
from codefactory.context.masking.spans import Kind, Span
from codefactory.context.settings import MaskingSettings


class Coverage(StrEnum):
    """Which detectors a masker runs."""

    CONTEXT = "context"
    """Everything: secrets (vendor and keyword detectors, PEM keys), e-mail, phone numbers
    in national formats of `PHONE_REGIONS` and international format, cards, IBANs, IP
    addresses, national ids and the bank's patterns. For context items, where a false
    positive costs one placeholder."""
    GATEWAY = "gateway"
    """What the model gateway refuses a request for, where a false positive stops a run:
    as CONTEXT but phone numbers only in international `+` format (national formats match
    version strings, timestamps and ids in code), no IP addresses (`127.0.0.1`,
    `10.0.0.0/8` fill configs and tests) and no keyword detector (`SECRET = "secret"`,
    `password="test-password"` fill ordinary code and its tests)."""


_GATEWAY_EXCLUDED = frozenset({"IP_ADDRESS", "SECRET_KEYWORD"})


@dataclass(frozen=True, kw_only=True)
class MaskResult:
    """The masked text and how many spans each entity type had replaced
    (`{"EMAIL_ADDRESS": 2, "SECRET_AWS": 1}`; never a value)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Finding:
    """A secret or personal datum found at `text[start:end]` (code point offsets, end
    exclusive), by `detector` (`detect-secrets:AWSKeyDetector`, `presidio:EmailRecognizer`,
    `pattern:CUSTOMER_ID`, `pem`) as `entity` (`SECRET_AWS`, `EMAIL_ADDRESS`). Carries no
    part of the value."""

    detector: str
    entity: str
    kind: Kind
    start: int
    end: int


class Masker:
    """Masks and scans texts for one run; thread-safe (the detectors are stateless and
    `pseudonyms` locks). The first call imports Presidio (about 3 s, once per process)."""

    def __init__(
        self,
        settings: MaskingSettings,
        pseudonyms: Pseudonyms,
        *,
        coverage: Coverage = Coverage.CONTEXT,
    ) -> None:
        self.settings = settings
        self.pseudonyms = pseudonyms
        self.coverage = coverage
        gateway = coverage is Coverage.GATEWAY
        self._secrets = SecretDetector(keywords=not gateway)
        self._excluded = _GATEWAY_EXCLUDED if gateway else frozenset()
        self._personal = PersonalDataDetector(
            settings, international_phones_only=gateway, excluded=self._excluded
        )

    def mask(self, text: str) -> MaskResult:
        """`text` with every chosen span replaced by its placeholder, and the counts; values
        the run has seen before are replaced wherever they appear, found or not."""
        pieces: list[str] = []
        counts: dict[str, int] = {}
        position = 0
        for span in self._chosen(text):
            value = text[span.start : span.end]
            pieces += [text[position : span.start], self.pseudonyms.placeholder(span.entity, value)]
            counts[span.entity] = counts.get(span.entity, 0) + 1
            position = span.end
        pieces.append(text[position:])
        masked = self.pseudonyms.replace_known("".join(pieces))
        return MaskResult(text=masked, counts=counts)

    def scan(self, text: str) -> list[Finding]:
        """Where `text` holds secrets or personal data, in text order, overlaps resolved as
        `mask` would; an empty list for a clean (or already masked) text."""
        return [
            Finding(detector=s.detector, entity=s.entity, kind=s.kind, start=s.start, end=s.end)
            for s in self._chosen(text)
        ]

    def _chosen(self, text: str) -> list[Span]:
        spans = [*self._secrets.find(text), *self._personal.find(text)]
        spans = [s for s in spans if s.entity not in self._excluded]
        if "<" in text:
            spans = [s for s in spans if not _only_placeholders(text[s.start : s.end])]
        return _without_overlaps(spans)


def _only_placeholders(value: str) -> bool:
    return not any(c.isalnum() for c in PLACEHOLDER.sub("", value))


def _rank(span: Span) -> tuple[int, int, float, int]:
    return (0 if span.kind is Kind.SECRET else 1, -span.length, -span.score, span.start)


def _without_overlaps(spans: list[Span]) -> list[Span]:
    """The winners (see the module text), in text order."""
    starts: list[int] = []
    kept: list[Span] = []
    for span in sorted(spans, key=_rank):
        index = bisect.bisect_left(starts, span.start)
        if index > 0 and kept[index - 1].end > span.start:
            continue
        if index < len(kept) and kept[index].start < span.end:
            continue
        starts.insert(index, span.start)
        kept.insert(index, span)
    return kept
