"""Presidio's pattern recognizers loaded without Presidio's package (`pattern_recognizers`):
no spaCy, thinc or numpy in the process, the same spans as with the whole package loaded,
and the whole package still importable afterwards. Each check runs in a fresh interpreter,
since this test process may have imported Presidio already."""

from __future__ import annotations

import json
import subprocess
import sys

SAMPLE = (
    "mail jane.doe@bank.example or x@gmail.com, not noreply@github.com; ip 10.0.0.1 and "
    "fe80::1:2; card 4111 1111 1111 1111; IBAN DE89 3704 0044 0532 0130 00 and "
    "GB82WEST12345698765432; ssn 536-90-4399; nino AB123456C; fiscal RSSMRA85T10A562S; "
    "nif 12345678Z; nie X1234567L; fi 131052-308T; de tax 12345678903; kr 800101-1234567; "
    "sg S1234567D; sin 046 454 286; phone +44 20 7946 0958; customer CUST-123456; btc "
    "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 and bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
)

FIND = f"""
import json, sys
if sys.argv[1] == "package":
    import presidio_analyzer
from codefactory.context.masking.personal import PersonalDataDetector
from codefactory.context.settings import MaskingSettings
detector = PersonalDataDetector(MaskingSettings(patterns={{"CUSTOMER_ID": r"\\bCUST-\\d{{6}}\\b"}}))
found = sorted((s.start, s.end, s.entity, s.detector, s.score) for s in detector.find({SAMPLE!r}))
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"spacy", "thinc", "numpy"}})
print(json.dumps({{"found": found, "heavy": heavy}}))
"""


def find(mode: str) -> dict[str, list[object]]:
    result = subprocess.run(
        [sys.executable, "-c", FIND, mode], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_masking_loads_no_nlp_library_and_finds_what_the_whole_package_finds() -> None:
    alone, whole = find("alone"), find("package")
    assert alone["heavy"] == []
    assert whole["heavy"] != []  # the package does load them: the check above can fail
    assert alone["found"] == whole["found"]
    entities = {span[2] for span in alone["found"]}  # type: ignore[index]
    assert {"EMAIL_ADDRESS", "IP_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN"} <= entities
    assert {"IT_FISCAL_CODE", "ES_NIF", "CUSTOMER_ID", "PHONE_NUMBER", "CRYPTO"} <= entities


def test_the_whole_package_loads_after_the_recognizers_alone() -> None:
    script = """
import sys
from codefactory.context.masking import pattern_recognizers
alone = pattern_recognizers.load()
assert not [m for m in sys.modules if m.startswith("presidio_analyzer")]
from presidio_analyzer import AnalyzerEngine, predefined_recognizers
package = predefined_recognizers.EmailRecognizer
assert package.PATTERNS[0].regex == alone.EmailRecognizer.PATTERNS[0].regex
assert package is not alone.EmailRecognizer  # loaded anew, with the whole package
print(issubclass(alone.EmailRecognizer, alone.PatternRecognizer), AnalyzerEngine.__name__)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "AnalyzerEngine"]


def test_the_recognizers_come_from_the_package_once_it_is_loaded() -> None:
    script = """
import presidio_analyzer
from presidio_analyzer import predefined_recognizers
from codefactory.context.masking import pattern_recognizers
print(pattern_recognizers.load().IbanRecognizer is predefined_recognizers.IbanRecognizer)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"]
