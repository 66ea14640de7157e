"""Benchmark: masking throughput (MB/s) on mixed text, beside baselines in the same run.

Builds about 5 MB of mixed text (seeded): a third source code (this repository's own
`src/codefactory`), a third service logs (timestamps, request ids, client IPs, some
e-mail addresses), a third tickets (prose with phone numbers, e-mails, card numbers,
IBANs, national ids, now and then a leaked key). Then measures, on the same text:

- `Masker.mask` (context coverage: every detector, placeholders written);
- `Masker.scan` (gateway coverage: what the model gateway runs on every request);
- the same regular expressions alone: every Presidio pattern and detect-secrets expression
  the masker uses, compiled with Python `re`, one `finditer` each over the whole text (a
  lower bound for any pure-regex approach: no validation, no overlap resolution);
- detect-secrets' own in-memory scan alone (`scan_line` per line, its default plugins);
- Presidio's recognizers called naively (`analyze` of each over the whole text, phone
  numbers by its `PhoneRecognizer`) on a small slice: the approach this module replaced.

The first masking call imports Presidio and spaCy; it is timed apart ("warm-up").

    .venv/bin/python benchmarks/bench_masking.py            # 5 MB
    .venv/bin/python benchmarks/bench_masking.py --mb 1     # a quick look
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from codefactory.context.masking import Coverage, Masker, Pseudonyms  # noqa: E402
from codefactory.context.masking.personal import personal_recognizers  # noqa: E402
from codefactory.context.masking.secrets import SecretDetector  # noqa: E402
from codefactory.context.settings import MaskingSettings  # noqa: E402

NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
AWS_KEY_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"


def log_block(rnd: random.Random) -> str:
    lines = []
    for _ in range(40):
        ip = ".".join(str(rnd.randrange(1, 255)) for _ in range(4))
        user = (
            f" user={rnd.choice(NAMES)}{rnd.randrange(99)}@example.com"
            if rnd.random() < 0.2
            else ""
        )
        lines.append(
            f"2026-11-{rnd.randrange(1, 29):02d}T12:{rnd.randrange(60):02d}:{rnd.randrange(60):02d}"
            f".{rnd.randrange(1000):03d}Z INFO payments.api request_id={rnd.getrandbits(64):016x}"
            f" client={ip}{user} status={rnd.choice((200, 200, 201, 404, 500))}"
            f" latency_ms={rnd.randrange(900)} version=2.{rnd.randrange(20)}.{rnd.randrange(9)}"
        )
    return "\n".join(lines) + "\n"


def ticket_block(rnd: random.Random) -> str:
    name = rnd.choice(NAMES)
    leak = f" The script printed {AWS_KEY_ID} to the console." if rnd.random() < 0.05 else ""
    return (
        f"Ticket PAY-{rnd.randrange(9999)}: {name.title()} called from "
        f"+44 20 7946 0{rnd.randrange(100, 999)}"
        " about card 4111 1111 1111 1111 and IBAN GB82 WEST 1234 5698 7654 32. "
        f"NI number AB 12 34 56 C. Please reply to {name}@bank.example.co.uk.{leak}\n"
        "The nightly batch failed again after the 3.2.1 upgrade; the runbook has the steps to"
        " reproduce, and the on-call engineer attached the logs from the last three runs.\n"
        "Expected: the settlement file is written by 02:00. Actual: it times out at 01:45 and"
        " the retry finds the lock still held; see the thread in the incident channel.\n\n"
    )


def mixed_text(size: int, seed: int = 13) -> str:
    rnd = random.Random(seed)
    code = "".join(p.read_text() for p in sorted((ROOT / "src" / "codefactory").rglob("*.py")))
    parts: list[str] = []
    total = 0
    while total < size:
        kind = rnd.randrange(3)
        if kind == 0:
            start = rnd.randrange(0, len(code) - 6000)
            part = code[start : start + 6000]
        elif kind == 1:
            part = log_block(rnd)
        else:
            part = "".join(ticket_block(rnd) for _ in range(4))
        parts.append(part)
        total += len(part)
    return "".join(parts)[:size]


def rate(label: str, size: int, action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    mb_s = size / 1e6 / elapsed
    print(f"{label:<58} {elapsed:8.2f} s {mb_s:9.2f} MB/s")
    return mb_s


def regexes_alone(text: str) -> int:
    patterns = [
        re.compile(rule.pattern.pattern, rule.pattern.flags) for rule in SecretDetector()._rules
    ]
    for entry in personal_recognizers():
        for pattern in getattr(entry.recognizer, "patterns", []):
            try:
                patterns.append(re.compile(pattern.regex, re.IGNORECASE | re.MULTILINE))
            except re.error:
                continue  # a `regex`-module-only construct
    return sum(1 for pattern in patterns for _ in pattern.finditer(text))


def detect_secrets_alone(text: str) -> int:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    found = 0
    with default_settings():
        for line in text.splitlines():
            found += sum(1 for _ in scan_line(line))
    return found


def presidio_naive(text: str) -> int:
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    recognizers = [e.recognizer for e in personal_recognizers()] + [PhoneRecognizer()]
    return sum(len(r.analyze(text, r.supported_entities, None)) for r in recognizers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=5.0, help="size of the mixed text in MB")
    args = parser.parse_args()
    size = int(args.mb * 1_000_000)
    text = mixed_text(size)
    print(f"mixed text: {len(text):,} characters, {text.count(chr(10)):,} lines")
    settings = MaskingSettings(patterns={"CUSTOMER_ID": r"\bCUST-\d{6}\b"})
    masker = Masker(settings, Pseudonyms())
    gateway = Masker(settings, Pseudonyms(), coverage=Coverage.GATEWAY)
    started = time.perf_counter()
    masker.mask("warm-up: bob@example.com")
    print(f"{'warm-up (imports Presidio and spaCy)':<58} {time.perf_counter() - started:8.2f} s")
    result = masker.mask(text)
    print(f"masked: {sum(result.counts.values()):,} spans {dict(sorted(result.counts.items()))}")
    mask_rate = rate("Masker.mask (context coverage)", size, lambda: masker.mask(text))
    rate("Masker.scan (gateway coverage)", size, lambda: gateway.scan(text))
    rate(
        "baseline: the same regular expressions alone (Python re)",
        size,
        lambda: regexes_alone(text),
    )
    slice_size = min(size, 500_000)
    rate(
        f"baseline: detect-secrets scan_line alone ({slice_size / 1e6:g} MB)",
        slice_size,
        lambda: detect_secrets_alone(text[:slice_size]),
    )
    naive_size = min(size, 100_000)
    rate(
        f"before: Presidio recognizers over the text ({naive_size / 1e6:g} MB)",
        naive_size,
        lambda: presidio_naive(text[:naive_size]),
    )
    print(f"target: at least 1 MB/s for Masker.mask: {'met' if mask_rate >= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
