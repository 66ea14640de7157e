"""Personal data in text: Presidio's pattern recognizers, offline and fast, plus the bank's
own identifiers (`MaskingSettings.patterns`), as spans with their entity type.

Presidio's `AnalyzerEngine.analyze` ran at about 0.0016 MB/s here. Measured per recognizer
over 1 MB of mixed text: `PhoneRecognizer` took 29 s (libphonenumber's `PhoneNumberMatcher`,
pure Python, walks the whole text once per region, eight regions), the IP recognizer 0.9 s
(its IPv6 expression tried at every position), e-mail 1.1 s; the engine adds the spaCy
pipeline over the whole text and context enhancement over every result. So this module:

- calls each recognizer's own `analyze` without NLP artefacts (pattern recognizers need
  none) and without context enhancement: a score comes from the pattern, raised to 1.0 by a
  passing checksum (Luhn for cards, ISO 7064 for IBAN, national id check digits) or to 0 by
  a failing one;
- runs a recognizer only where a cheap Python `re` trigger points, the pieces joined by
  newlines into one text (matches straddling two pieces dropped) and analysed 40 pieces a
  call (Presidio drops duplicate results by comparing every pair): for e-mail and IP
  addresses, the token around an `@`, a `d.d.d` or a `:h:` (times of day skipped); for
  cards, IBANs and national ids, 48 characters each side (widened to a space) of six
  digits with at most one separator between pairs; for the Italian fiscal code, its own
  shape; the bank's patterns run over the whole text;
- IPv4 by Presidio's IPv4 expression alone (its octets are 0-255 by construction; the
  `ipaddress` check is skipped), IPv6 by the other IP expressions;
- finds phone numbers by a cheap expression first (a run of digits and separators, 10 to
  15 digits, or 7 to 15 after a `+`; no dotted quads) and hands each candidate, not the
  text, to libphonenumber (`parse`, `is_valid_number`), which must find a *valid* number
  for one of `PHONE_REGIONS`, or in international `+` format for any region; such a
  number counts as validated (score 1.0): Presidio's 0.4 expects context words this
  module does not look for. `international_phones_only` keeps `+` numbers only (the
  gateway's choice: version strings and timestamps never start with `+`);
- finds Bitcoin addresses (Presidio's `CryptoRecognizer`: base58 with its double SHA-256
  checksum, or Bech32/Bech32m with theirs, so a random token passes about once in 2^30) in
  the neighbourhood of `1` or `3` and 25 base58 characters, or `bc1` and 25 of Bech32's;
- leaves out URL, DATE_TIME, UUID and the recognizers of business, vehicle and postal
  codes: noise for code and logs;
- validates e-mail domains against tldextract's bundled public suffix snapshot
  (`suffix_list_urls=()`, no cache directory): no download, ever.

Presidio's package (and spaCy under it) takes seconds to import: `personal_recognizers()`
loads only the modules of the recognizers it runs (`pattern_recognizers.load()`), on first
use, once per process; nothing of Presidio is imported when the CLI starts.
"""

from __future__ import annotations

import bisect
import functools
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from codefactory.context.masking import pattern_recognizers
from codefactory.context.masking.spans import Kind, Span
from codefactory.context.settings import MaskingSettings

if TYPE_CHECKING:
    from presidio_analyzer import EntityRecognizer

PHONE_REGIONS = ("US", "GB")
"""Regions whose national formats count as phone numbers; `+` numbers count for every
region. Each region is one more libphonenumber parse of every candidate."""

NATIONAL_ID_RECOGNIZERS = (
    "UsSsnRecognizer",
    "UsItinRecognizer",
    "UkNinoRecognizer",
    "EsNifRecognizer",
    "EsNieRecognizer",
    "ItFiscalCodeRecognizer",
    "FiPersonalIdentityCodeRecognizer",
    "DeTaxIdRecognizer",
    "DeSocialSecurityRecognizer",
    "KrRrnRecognizer",
    "SgFinRecognizer",
    "CaSinRecognizer",
)
"""Presidio's recognizers of national person identifiers kept (a pattern at medium score,
or a check digit); those with only weak patterns (passports, driving licences, 9-digit tax
numbers with a 1-in-11 check digit such as Australia's TFN, the NHS number's 10 digits and
Aadhaar's 12 with a 1-in-10 or 1-in-11 check, US DEA numbers) would flag ordinary numbers in
code: one Unix timestamp in eleven passes the NHS check. Left out too:
Sweden's personnummer and Poland's PESEL, whose expressions have no word boundary and
match inside any longer run of digits (request ids, timestamps in milliseconds)."""

_CANDIDATE_PHONE = re.compile(r"(?<![\w+.\-/])(?:\+|\(?)\d[\d ().\-]{5,18}\d(?![\w\-/]|\.\d|:\d)")
_INTERNATIONAL_PHONE = re.compile(r"(?<![\w+.\-/])\+\d[\d ().\-]{5,18}\d(?![\w\-/]|\.\d|:\d)")
"""A number may end a sentence (`... 0958.`); a version or address continues (`1.2.3`)."""
NEIGHBOURHOOD = 48
"""Characters each side of a trigger match that a recognizer reads: more than the longest
entity (an IBAN of 34 characters with its spaces)."""
LINES_PER_CALL = 40
"""Lines (or tokens) per call of a recognizer: Presidio removes duplicate results by
comparing every pair, so a call's cost grows with the square of its matches."""
_DOTTED = re.compile(r"\d+(?:\.\d+){3,}")
"""IPv4 addresses and dotted versions or OIDs are never phone numbers."""
_SIX_DIGITS = re.compile(r"\d\d[- .]?\d\d[- .]?\d\d")
_TRIGGERS: dict[str, re.Pattern[str]] = {
    "IT_FISCAL_CODE": re.compile(r"[A-Za-z]{6}\d\d[A-Za-z]\d\d"),
    # The first 26 characters of any match of Presidio's expression that its checksum can
    # pass: base58 after 1 or 3 (a 0, O, I or l fails the decoding), Bech32's alphabet after
    # a lowercase bc1 (the only prefix it validates). Hex digests rarely go 25 digits
    # without a 0, so lock files and commit hashes seldom wake the recognizer.
    "CRYPTO": re.compile(r"bc1[ac-hj-np-z02-9]{25}|[13][1-9A-HJ-NP-Za-km-z]{25}"),
}


@dataclass(frozen=True, slots=True)
class _TokenWindows:
    """Where an e-mail or IP address may be: the run of `chars` around each `trigger` match
    (literal-led triggers are fast to search), except runs that fully match `skip`."""

    trigger: re.Pattern[str]
    chars: str
    skip: re.Pattern[str] | None = None

    def spans(self, text: str) -> list[tuple[int, int]]:
        run = _token_run(self.chars)
        backwards = text[::-1]  # the run before a match is a run after it, read backwards
        spans: list[tuple[int, int]] = []
        position = 0
        while (match := self.trigger.search(text, position)) is not None:
            head = run.match(backwards, len(text) - match.start())
            tail = run.match(text, match.end())
            start = match.start() - min(MAX_HEAD, head.end() - head.start() if head else 0)
            end = tail.end() if tail else match.end()
            if self.skip is None or not self.skip.fullmatch(text, start, end):
                spans.append((start, end))
            position = max(end, match.end())
        return spans


@functools.cache
def _token_run(chars: str) -> re.Pattern[str]:
    return re.compile(f"{chars}{{0,{MAX_TOKEN}}}")


MAX_HEAD = 64
"""Characters before a trigger a token may hold (an e-mail's local part: 64 at most)."""
MAX_TOKEN = 256
_WINDOWS: dict[str, _TokenWindows] = {
    "EMAIL_ADDRESS": _TokenWindows(re.compile("@"), r"""[^\s@<>()\[\]\\"',;:]"""),
    "IPV4": _TokenWindows(re.compile(r"\d\.\d+\.\d"), r"[\d.:/]"),
    "IPV6": _TokenWindows(
        re.compile(r":[0-9A-Fa-f]{0,4}:"),
        r"[0-9A-Fa-f.:%/]",
        skip=re.compile(r"\d{1,2}:\d\d(?::\d\d(?:\.\d+)?)?"),  # a time of day
    ),
}
"""For e-mail and IP addresses, which hold no space, the recognizer runs over these tokens
(one per line) instead of whole lines."""
"""Cheap expressions (Python `re`, no case folding) a line must match for the recognizer of
an entity to run on it; every other recognizer needs six digits with at most one separator
between pairs (cards, IBANs, national ids all have them)."""


@dataclass(frozen=True, slots=True)
class _Recognizer:
    entity: str
    detector: str
    recognizer: EntityRecognizer
    trigger: re.Pattern[str] | _TokenWindows | None
    """What is analysed: the neighbourhood of a pattern's matches, the tokens of a
    `_TokenWindows`, or (None) the whole text."""


@cache
def _offline_suffixes() -> Any:
    import tldextract

    # The bundled snapshot only: no suffix list URL, no cache directory, no download.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


ROLE_MAILBOX = re.compile(r"no-?reply|do-?not-?reply|notifications?|postmaster|mailer-daemon|git")
"""Local parts of addresses that name a role, not a person (`noreply@anthropic.com` in an
agent CLI's own system prompt, `git@github.com` in a remote URL): not personal data."""

_PRIVATE_TLD = re.compile(r"\.[a-z]{2,24}$")


@functools.lru_cache(maxsize=4096)
def _known_domain(domain: str) -> bool:
    """A public domain (the bundled suffix list), or a private one with a name-like last
    label: banks mail from `corp.internal`, `bank.local`, `bank.example` as well."""
    # tldextract takes about 0.2 ms a call; a text repeats its few domains many times.
    return bool(_offline_suffixes()(domain).fqdn) or bool(_PRIVATE_TLD.search(domain))


class _OfflineEmailValidation:
    """Mixed into Presidio's e-mail recognizer: its domain checked against the bundled
    suffixes, role mailboxes left out."""

    def validate_result(self, pattern_text: str) -> bool:
        local, _, domain = pattern_text.lower().rpartition("@")
        return _known_domain(domain) and not ROLE_MAILBOX.fullmatch(local)


class _UncheckedIPv4:
    """Mixed into Presidio's IP recognizer given its IPv4 pattern alone: its octets are
    0-255 by construction, so the check by `ipaddress` (about 80 us a match) is skipped."""

    def invalidate_result(self, pattern_text: str) -> bool:
        return False


@cache
def personal_recognizers() -> tuple[_Recognizer, ...]:
    """The Presidio recognizers this module runs, built once per process (loads their
    modules alone, not Presidio's package: see `pattern_recognizers`)."""
    presidio = pattern_recognizers.load()
    ip = presidio.IpRecognizer
    email_recognizer = type(
        "OfflineEmailRecognizer", (_OfflineEmailValidation, presidio.EmailRecognizer), {}
    )
    ipv4_recognizer = type("IPv4Recognizer", (_UncheckedIPv4, ip), {})
    ipv4 = [p for p in ip.PATTERNS if p.name == "IPv4"]
    ipv6 = [p for p in ip.PATTERNS if p.name != "IPv4"]
    entries = [
        _windowed(email_recognizer(name="EmailRecognizer"), "EMAIL_ADDRESS"),
        _windowed(ipv4_recognizer(patterns=ipv4, name="IpRecognizer"), "IPV4"),
        _windowed(ip(patterns=ipv6, name="IpRecognizer"), "IPV6"),
    ]
    lined = [
        presidio.CreditCardRecognizer(),
        presidio.IbanRecognizer(),
        presidio.CryptoRecognizer(),
    ]
    lined += [getattr(presidio, name)() for name in NATIONAL_ID_RECOGNIZERS]
    entries += [
        _Recognizer(
            entity=r.supported_entities[0],
            detector=f"presidio:{type(r).__name__}",
            recognizer=r,
            trigger=_TRIGGERS.get(r.supported_entities[0], _SIX_DIGITS),
        )
        for r in lined
    ]
    return tuple(entries)


def _name(recognizer: EntityRecognizer) -> str:
    return str(getattr(recognizer, "name", type(recognizer).__name__))


def _windowed(recognizer: EntityRecognizer, window: str) -> _Recognizer:
    return _Recognizer(
        entity=recognizer.supported_entities[0],
        detector=f"presidio:{_name(recognizer)}",
        recognizer=recognizer,
        trigger=_WINDOWS[window],
    )


@cache
def _bank_recognizer(entity: str, pattern: str) -> _Recognizer:
    presidio = pattern_recognizers.load()
    multiline = 8  # regex.MULTILINE (Presidio's `regex` module ships no type stubs)

    recognizer = presidio.PatternRecognizer(
        supported_entity=entity,
        name=f"bank:{entity}",
        patterns=[presidio.Pattern(entity, pattern, 1.0)],
        global_regex_flags=multiline,  # as written: no IGNORECASE, unlike Presidio's
    )
    return _Recognizer(entity, f"pattern:{entity}", recognizer, None)


class PersonalDataDetector:
    """Finds personal data in a text. Safe to share between threads once built.
    `excluded`: entity types not looked for at all (`IP_ADDRESS`)."""

    def __init__(
        self,
        settings: MaskingSettings,
        *,
        international_phones_only: bool = False,
        excluded: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.international_phones_only = international_phones_only
        self.excluded = excluded
        self._lock = threading.Lock()
        self._recognizers: tuple[_Recognizer, ...] | None = None

    def _built(self) -> tuple[_Recognizer, ...]:
        with self._lock:
            if self._recognizers is None:
                bank = tuple(_bank_recognizer(n, p) for n, p in self.settings.patterns.items())
                every = personal_recognizers() + bank
                self._recognizers = tuple(r for r in every if r.entity not in self.excluded)
            return self._recognizers

    def find(self, text: str) -> list[Span]:
        """Every personal-data span in `text` at or above `settings.score_threshold`, in no
        particular order; overlapping spans are all returned (the masker picks)."""
        threshold = self.settings.score_threshold
        spans: list[Span] = []
        reduced: dict[re.Pattern[str] | _TokenWindows | None, _Reduced] = {}
        for entry in self._built():
            if entry.trigger not in reduced:
                reduced[entry.trigger] = _Reduced(text, entry.trigger)
            found = reduced[entry.trigger].analyze(entry)
            spans.extend(s for s in found if s.score >= threshold)
        if "PHONE_NUMBER" not in self.excluded:
            spans.extend(self._phones(text))
        return spans

    def _phones(self, text: str) -> Iterator[Span]:
        import phonenumbers

        international = self.international_phones_only
        candidates = _INTERNATIONAL_PHONE if international else _CANDIDATE_PHONE
        for candidate in candidates.finditer(text):
            window = candidate.group()
            digits = sum(c.isdigit() for c in window)
            plus = window.startswith("+")
            # E.164 numbers have at most 15 digits; national US and UK numbers 10 or 11.
            if digits > 15 or (not plus and digits < 10) or _DOTTED.fullmatch(window):
                continue
            for region in (None,) if plus else PHONE_REGIONS:
                try:
                    number = phonenumbers.parse(window, region)
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.is_valid_number(number):
                    yield _phone_span(candidate.start(), candidate.end())
                    break


def _phone_span(start: int, end: int) -> Span:
    return Span(
        start=start,
        end=end,
        entity="PHONE_NUMBER",
        detector="presidio:PhoneRecognizer",
        kind=Kind.PERSONAL,
    )


class _Reduced:
    """The pieces of `text` a trigger points at (neighbourhoods of a pattern's matches, or
    a `_TokenWindows`' tokens), joined by newlines; spans map back to `text`, and a span
    across two pieces (not a match in `text`) is dropped. No trigger: the whole text."""

    def __init__(self, text: str, trigger: re.Pattern[str] | _TokenWindows | None) -> None:
        self.text = text
        self.lines: list[tuple[int, int]] = [(0, len(text))]
        if trigger is not None:
            if isinstance(trigger, _TokenWindows):
                self.lines = trigger.spans(text)
            else:
                self.lines = _neighbourhoods(text, trigger)
            self.text = "\n".join(text[start:end] for start, end in self.lines)
        self.starts: list[int] = []
        offset = 0
        for start, end in self.lines:
            self.starts.append(offset)
            offset += end - start + 1

    def analyze(self, entry: _Recognizer) -> list[Span]:
        """`entry`'s spans in the original text."""
        spans = []
        for first in range(0, len(self.lines), LINES_PER_CALL):
            last = min(first + LINES_PER_CALL, len(self.lines)) - 1
            begin = self.starts[first]
            end = self.starts[last] + self.lines[last][1] - self.lines[last][0]
            chunk = self.text[begin:end]
            results = entry.recognizer.analyze(chunk, [entry.entity], None)  # type: ignore[arg-type]
            for span in _spans(entry, results, begin):
                index = bisect.bisect_right(self.starts, span.start) - 1
                line_start, line_end = self.lines[index]
                if span.end - self.starts[index] > line_end - line_start:
                    continue
                spans.append(_moved(span, line_start - self.starts[index]))
        return spans


def _neighbourhoods(text: str, trigger: re.Pattern[str]) -> list[tuple[int, int]]:
    """Around each trigger match, `NEIGHBOURHOOD` characters each side within its line,
    widened to the next space so that no token is cut; overlapping ones merged."""
    regions: list[tuple[int, int]] = []
    position = 0
    line_start, line_end = 0, -1  # the line of the last match: found once per line, not
    while (match := trigger.search(text, position)) is not None:  # per match (quadratic)
        if match.start() > line_end:
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.start())
            line_end = len(text) if line_end < 0 else line_end
        start = max(line_start, match.start() - NEIGHBOURHOOD)
        if start > line_start:
            start = text.rfind(" ", line_start, start) + 1 or line_start
        end = min(line_end, match.end() + NEIGHBOURHOOD)
        if end < line_end:
            space = text.find(" ", end, line_end)
            end = line_end if space < 0 else space
        if regions and regions[-1][1] >= start:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, end))
        position = max(end, match.end())
    return regions


def _spans(entry: _Recognizer, results: Iterable[Any], offset: int) -> Iterator[Span]:
    for result in results:
        if result.end > result.start:
            yield Span(
                start=offset + result.start,
                end=offset + result.end,
                entity=entry.entity,
                detector=entry.detector,
                kind=Kind.PERSONAL,
                score=float(result.score),
            )


def _moved(span: Span, shift: int) -> Span:
    return Span(
        start=span.start + shift,
        end=span.end + shift,
        entity=span.entity,
        detector=span.detector,
        kind=span.kind,
        score=span.score,
    )
