"""The gateway's second scan: no model request leaves with a detectable secret or personal
datum in it, whatever masked (or failed to mask) it before.

Every text the provider would read is collected with its JSON path: OpenAI Chat
`messages` (string contents, text parts, tool-call `arguments`, tool results), Responses
`instructions` and `input` (messages, `function_call.arguments`, `function_call_output`),
Anthropic `system` and `messages` (text blocks, `tool_use.input` at any depth,
`tool_result` contents). Binary payloads and ids are skipped (`data`, `image_url`,
`file_data`, `signature`, `encrypted_content`, `id`, `type`, `role`, call ids). The texts
are scanned at once with `Masker.scan` at `Coverage.GATEWAY`:

- secrets: detect-secrets' vendor detectors (AWS, Stripe, GitHub, GitLab, Slack, OpenAI,
  JWT, basic-auth URLs, ...) and PEM private keys;
- personal data: e-mail addresses, card numbers passing Luhn, IBANs passing their
  checksum, the national ids of `masking.personal.NATIONAL_ID_RECOGNIZERS`, the bank's
  own patterns, and phone numbers in international `+` format only;
- not IP addresses, phone numbers in national formats, nor detect-secrets' keyword
  detector: each fires on ordinary code (`127.0.0.1`, version strings, `SECRET =
  "secret"`) and a refusal stops the run (see `Coverage.GATEWAY`).

Placeholders (`<EMAIL_ADDRESS_1>`) are never findings. A request with findings is refused
(400, `content-refused`); the refusal and its record name the entity, the detector and the
JSON path of each finding (at most `MAX_NAMED`), never the value. A repository's test
fixture with a Luhn-valid card number (the networks' test cards) is refused too: that is the
rule (issue 13); the context engine masks such text before an engine reads it.
"""

from __future__ import annotations

import bisect
import hashlib
import html
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from codefactory.context.masking import Coverage, Masker, Pseudonyms
from codefactory.context.settings import MaskingSettings
from codefactory.engines.gateway.protocols import WireProtocol

UNSCANNED_FIELDS = frozenset({"model"})
"""Top-level request fields that are not text for the model (every other field is read:
tool descriptions and schemas, `prediction`, `response_format`, `metadata` reach the
provider as much as messages do)."""
SKIPPED_KEYS = frozenset(
    {
        "image_url",
        "file_data",
        "signature",
        "encrypted_content",
        "type",
        "role",
        "cache_control",
    }
)
"""Keys whose values are binary payloads, provider-sealed blobs or wire vocabulary."""
MAX_NAMED = 5
CACHED_TEXTS = 20_000
"""Digests of scanned texts remembered with their findings (about 100 bytes each)."""
_SEPARATOR = "\n\n"


@dataclass(frozen=True, kw_only=True)
class ContentFinding:
    """A secret or personal datum at `path` (`messages[2].content[0].text`), as `entity`
    (`SECRET_AWS`) by `detector` (`detect-secrets:AWSKeyDetector`); never the value."""

    path: str
    entity: str
    detector: str

    def __str__(self) -> str:
        return f"{self.entity} ({self.detector}) at {self.path}"


def texts(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """`(json_path, text)` for every string of the request but its model name, wire
    vocabulary and binary payloads."""
    for field, value in document.items():
        if field not in UNSCANNED_FIELDS:
            yield from _strings(value, field)


def _binary(node: dict[str, Any]) -> bool:
    """A `source` block whose `data` is base64 of something that is not text."""
    media = str(node.get("media_type", ""))
    return node.get("type") == "base64" and not media.startswith("text/")


def _strings(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        if node:
            yield path, node
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in SKIPPED_KEYS or (key == "data" and _binary(node)):
                continue
            yield from _strings(value, f"{path}.{key}")


_ZERO_WIDTH = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def decoded(text: str) -> str:
    """`text` as a reader would take it: NFKC-normalised (full-width digits and `＠`),
    without zero-width characters, HTML entities, `%XX` escapes and JSON `\\uXXXX`
    escapes decoded. A value hidden in one of those spellings is found in this copy."""
    plain = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    plain = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), html.unescape(plain))
    return unquote(plain)


def _variants(path: str, text: str) -> Iterator[tuple[str, str]]:
    yield path, text
    plain = decoded(text)
    if plain != text:
        yield f"{path} (decoded)", plain


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class ContentScan:
    """The scan of request documents; one per gateway, thread-safe. `masking` gives the
    bank's own patterns and the score threshold (`context.masking`). The first scan
    imports Presidio (about 3 s, once per process)."""

    def __init__(self, masking: MaskingSettings | None = None) -> None:
        # Scanning maps nothing: a private pseudonym table that stays empty.
        self._masker = Masker(masking or MaskingSettings(), Pseudonyms(), coverage=Coverage.GATEWAY)
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[tuple[str, str], ...]] = OrderedDict()

    def warm(self) -> None:
        """Import Presidio and build the recognizers now (about 3 s) rather than on the
        first request; call it in a background thread when the gateway starts."""
        self._masker.scan("warm-up")

    def findings(self, document: dict[str, Any]) -> list[ContentFinding]:
        """Every finding in the request, in document order. Texts scanned before (an
        agent resends its whole conversation on every call) are answered from a cache
        keyed by their BLAKE2b digest, so it holds no text; the new ones are scanned
        together in one pass."""
        entries = [
            (where, variant, _digest(variant))
            for path, text in texts(document)
            for where, variant in _variants(path, text)
        ]
        with self._lock:
            known = {key: self._cache[key] for _, _, key in entries if key in self._cache}
            for key in known:
                self._cache.move_to_end(key)  # least recently used goes first
        fresh = {key: text for _, text, key in entries if key not in known}
        known.update(self._scan(fresh))
        return [
            ContentFinding(path=path, entity=entity, detector=detector)
            for path, _, key in entries
            for entity, detector in known[key]
        ]

    def _scan(self, fresh: dict[bytes, str]) -> dict[bytes, tuple[tuple[str, str], ...]]:
        if not fresh:
            return {}
        keys = list(fresh)
        starts: list[int] = []
        offset = 0
        for key in keys:
            starts.append(offset)
            offset += len(fresh[key]) + len(_SEPARATOR)
        found: dict[bytes, list[tuple[str, str]]] = {key: [] for key in keys}
        for f in self._masker.scan(_SEPARATOR.join(fresh.values())):
            found[keys[bisect.bisect_right(starts, f.start) - 1]].append((f.entity, f.detector))
        result = {key: tuple(value) for key, value in found.items()}
        with self._lock:
            self._cache.update(result)
            while len(self._cache) > CACHED_TEXTS:
                self._cache.popitem(last=False)
        return result

    def refusal(self, protocol: WireProtocol, document: dict[str, Any]) -> str | None:
        """Why the request may not leave (its findings, without values), or None when it
        scans clean. `protocol` is for the caller's symmetry with the other screenings:
        every protocol's text fields are read."""
        del protocol
        found = list(dict.fromkeys(self.findings(document)))
        if not found:
            return None
        named = "; ".join(str(f) for f in found[:MAX_NAMED])
        more = f"; and {len(found) - MAX_NAMED} more" if len(found) > MAX_NAMED else ""
        return (
            f"the request carries {len(found)} secret(s) or personal data: {named}{more}. "
            "Mask them before sending (placeholders such as <EMAIL_ADDRESS_1> pass)"
        )
