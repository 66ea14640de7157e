"""Secrets in text held in memory: detect-secrets' vendor and keyword detectors, line by
line, as spans (detector, entity, offsets). The value is never logged nor kept.

detect-secrets' own scanning (`scan_line`) works on files, logs what it filters (at info
level, with the value) and gives values, not offsets; this module runs the detectors'
compiled expressions itself. Each expression first runs over the whole text (one C-level
pass, which finds nothing in most texts); only the lines it touched are then matched one
by one, as detect-secrets does, so a match never spans two lines. The span of a match is
its first non-empty group (the secret: the password in a URL, the value of a keyword
assignment), else the whole match, as `RegexBasedDetector.analyze_string` yields it; for
GitHub and GitLab tokens, whose groups are the prefix only, the whole match.

Left out on purpose:

- the high-entropy detectors (`Base64HighEntropyString`, `HexHighEntropyString`): source
  code and logs are full of commit SHAs, SHA-256 digests (lock files, cassettes), UUIDs and
  base64 fixtures; masking those would blind an engine to the code, and the gateway would
  refuse ordinary requests. Secrets of known shape are caught by the vendor detectors and
  assignments to secret-sounding names by the keyword detector;
- `IPPublicDetector`: IP addresses are personal data here (`personal.py`), not secrets.

PEM private keys are one multi-line span from the `-----BEGIN ... PRIVATE KEY-----` line to
its `-----END ...-----` line (to the end of the text when the end line is missing), so no
line of the key's body reaches an engine.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from detect_secrets.filters import heuristic
from detect_secrets.plugins import keyword
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from codefactory.context.masking.spans import Kind, Span

VENDOR_DETECTORS: dict[type[RegexBasedDetector], str] = {
    AWSKeyDetector: "SECRET_AWS",
    ArtifactoryDetector: "SECRET_ARTIFACTORY",
    AzureStorageKeyDetector: "SECRET_AZURE_STORAGE",
    BasicAuthDetector: "SECRET_BASIC_AUTH",
    CloudantDetector: "SECRET_CLOUDANT",
    DiscordBotTokenDetector: "SECRET_DISCORD",
    GitHubTokenDetector: "SECRET_GITHUB",
    GitLabTokenDetector: "SECRET_GITLAB",
    IbmCloudIamDetector: "SECRET_IBM_CLOUD_IAM",
    IbmCosHmacDetector: "SECRET_IBM_COS_HMAC",
    JwtTokenDetector: "SECRET_JWT",
    MailchimpDetector: "SECRET_MAILCHIMP",
    NpmDetector: "SECRET_NPM",
    OpenAIDetector: "SECRET_OPENAI",
    PrivateKeyDetector: "SECRET_PRIVATE_KEY",
    PypiTokenDetector: "SECRET_PYPI",
    SendGridDetector: "SECRET_SENDGRID",
    SlackDetector: "SECRET_SLACK",
    SoftlayerDetector: "SECRET_SOFTLAYER",
    SquareOAuthDetector: "SECRET_SQUARE",
    StripeDetector: "SECRET_STRIPE",
    TelegramBotTokenDetector: "SECRET_TELEGRAM",
    TwilioKeyDetector: "SECRET_TWILIO",
}
"""detect-secrets' detectors of secrets with a known shape → the entity their spans carry."""

_KEY_WORDS = re.compile(r"key|pw|pass|token|secret|contrase|cloudant|softlayer")
_TRIGGERS: dict[type[RegexBasedDetector], re.Pattern[str]] = {
    ArtifactoryDetector: re.compile(r"akc|ap[\da-f]"),
    CloudantDetector: _KEY_WORDS,
    IbmCloudIamDetector: _KEY_WORDS,
    IbmCosHmacDetector: _KEY_WORDS,
    MailchimpDetector: re.compile(r"-us\d"),
    SoftlayerDetector: _KEY_WORDS,
    TelegramBotTokenDetector: re.compile(r"\d:[\w-]{35}"),
}
"""Cheaper expressions than a detector's own, run over the lower-cased text, which a line
must match for the detector to run on it (their own expressions, tried at every position
of a text, cost up to 0.5 s/MB each; the keyword ones share one pass)."""

_WHOLE_MATCH = frozenset({GitHubTokenDetector, GitLabTokenDetector})
"""Detectors whose groups hold a token's prefix (`ghp`, `glpat`), not the token."""

MODERN_KEYS: dict[str, re.Pattern[str]] = {
    "SECRET_OPENAI": re.compile(r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,}"),
    "SECRET_ANTHROPIC": re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"),
    "SECRET_GITHUB": re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    "SECRET_GOOGLE": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
}
"""Key formats detect-secrets does not know yet (OpenAI project keys, Anthropic keys,
GitHub fine-grained tokens, Google API keys)."""

_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-.+/=]*")
"""What may follow a vendor pattern's match inside the same token: a live Stripe key is
about 100 characters where detect-secrets' pattern matches its first 32."""

KEYWORD_ENTITY = "SECRET_KEYWORD"
PRIVATE_KEY_ENTITY = "SECRET_PRIVATE_KEY"

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?:.*?-----END \1-----|.*\Z)",
    re.DOTALL,
)


@dataclass(frozen=True, slots=True)
class _Rule:
    detector: str
    entity: str
    pattern: re.Pattern[str]
    trigger: re.Pattern[str] | None
    """Over the lower-cased text; None: the detector's own expression over the text."""
    group: int | None
    """The group that holds the secret; None: the first non-empty group, else the match."""
    keyword: bool = False


def _rules(*, keywords: bool) -> tuple[_Rule, ...]:
    rules = [
        _Rule(
            f"detect-secrets:{plugin.__name__}",
            entity,
            pattern,
            _TRIGGERS.get(plugin),
            0 if plugin in _WHOLE_MATCH else None,
        )
        for plugin, entity in VENDOR_DETECTORS.items()
        for pattern in plugin().denylist
    ]
    rules += [
        _Rule(f"pattern:{entity}", entity, pattern, None, 0)
        for entity, pattern in MODERN_KEYS.items()
    ]
    if keywords:
        # The expressions detect-secrets uses for a line of unknown file type (a quoted
        # value assigned to, or compared with, a secret-sounding name) and for a
        # configuration file (the same, unquoted: `export AWS_SECRET_ACCESS_KEY=...` in a
        # ticket, `password: x` in a log line).
        expressions = {
            **keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
            **keyword.CONFIG_DENYLIST_REGEX_TO_GROUP,
        }
        rules += [
            _Rule(
                "detect-secrets:KeywordDetector", KEYWORD_ENTITY, pattern, _KEY_WORDS, group, True
            )
            for pattern, group in expressions.items()
        ]
    return tuple(rules)


def _secret_span(match: re.Match[str], group: int | None) -> tuple[int, int]:
    if group is not None:
        return match.span(group)
    for index in range(1, (match.re.groups or 0) + 1):
        if match.group(index):
            return match.span(index)
    return match.span()


def _filtered_keyword(value: str, line: str) -> bool:
    """detect-secrets' heuristic filters for keyword findings: templates (`${X}`, `<x>`,
    `{{x}}`), `$VARIABLES`, indirect references (`password = get_secret()`), sequential
    strings, UUIDs, id-like names and values without a letter or digit."""
    return bool(
        heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_indirect_reference(line)
        or heuristic.is_sequential_string(value)
        or heuristic.is_potential_uuid(value)
        or heuristic.is_likely_id_string(value, line)
        or heuristic.is_not_alphanumeric_string(value)
    )


class SecretDetector:
    """Finds secrets in a text; stateless after construction and safe to share between
    threads. `keywords`: include detect-secrets' keyword detector (assignments of quoted
    values to names such as `password`, `api_key`, `token`)."""

    def __init__(self, *, keywords: bool = True) -> None:
        self._rules = _rules(keywords=keywords)

    def find(self, text: str) -> list[Span]:
        """Every secret span in `text`, in no particular order; overlapping spans of
        different detectors are all returned (the masker picks)."""
        spans = list(_private_keys(text))
        lines = _Lines(text)
        lowered = text.lower()
        case_folded = len(lowered) == len(text)  # else offsets would shift: no triggers
        touched_by: dict[re.Pattern[str], list[int]] = {}
        for rule in self._rules:
            if rule.trigger is None or not case_folded:
                touched = _touched(rule.pattern, text, lines)
            else:
                if rule.trigger not in touched_by:
                    touched_by[rule.trigger] = _touched(rule.trigger, lowered, lines)
                touched = touched_by[rule.trigger]
            spans.extend(self._find_rule(rule, touched, lines))
        return spans

    def _find_rule(self, rule: _Rule, touched: list[int], lines: _Lines) -> Iterator[Span]:
        for number in touched:
            offset, line = lines.line(number)
            for match in _matches(rule.pattern, line):
                start, end = _secret_span(match, rule.group)
                # the heuristics read the assignment itself, not the whole line: an `_ID=`
                # earlier on the line must not make a later secret look like an id
                if start >= end or (
                    rule.keyword and _filtered_keyword(line[start:end], match.group(0))
                ):
                    continue
                if not rule.keyword:  # the whole token, not the pattern's first characters
                    tail = _TOKEN_TAIL.match(line, end)
                    end = tail.end() if tail else end
                if rule.entity == "SECRET_JWT" and not JwtTokenDetector.is_formally_valid(
                    line[start:end]
                ):
                    continue
                yield Span(
                    start=offset + start,
                    end=offset + end,
                    entity=rule.entity,
                    detector=rule.detector,
                    kind=Kind.SECRET,
                )


def _matches(pattern: re.Pattern[str], line: str) -> Iterator[re.Match[str]]:
    """Every match of `pattern` in `line`, each search starting just after the previous
    match's start: a keyword expression that swallows the rest of a line
    (`KEY_ID=AKIA… aws_secret_access_key=…`) does not hide the next assignment on it."""
    position = 0
    while position <= len(line):
        match = pattern.search(line, position)
        if match is None:
            return
        yield match
        position = match.start() + 1


def _touched(pattern: re.Pattern[str], text: str, lines: _Lines) -> list[int]:
    """The numbers of the lines `pattern`'s matches in `text` touch, in order."""
    touched: dict[int, None] = {}
    for match in pattern.finditer(text):
        touched.update(dict.fromkeys(lines.numbers(match.start(), match.end())))
    return list(touched)


def _private_keys(text: str) -> Iterator[Span]:
    if "PRIVATE KEY" not in text:
        return
    for match in _PEM_PRIVATE_KEY.finditer(text):
        yield Span(
            start=match.start(),
            end=match.end(),
            entity=PRIVATE_KEY_ENTITY,
            detector="pem",
            kind=Kind.SECRET,
        )


class _Lines:
    """Line boundaries of a text, computed on first use (most texts need none)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: Sequence[int] | None = None

    @property
    def starts(self) -> Sequence[int]:
        if self._starts is None:
            text = self._text
            self._starts = [0, *(m.end() for m in re.finditer(r"\n", text))]
        return self._starts

    def numbers(self, start: int, end: int) -> range:
        """The numbers (0-based) of the lines `text[start:end]` touches."""
        first = bisect.bisect_right(self.starts, start) - 1
        last = bisect.bisect_right(self.starts, max(start, end - 1)) - 1
        return range(first, last + 1)

    def line(self, number: int) -> tuple[int, str]:
        """The offset of line `number` and its text, without its newline."""
        start = self.starts[number]
        end = self.starts[number + 1] - 1 if number + 1 < len(self.starts) else len(self._text)
        return start, self._text[start:end]
