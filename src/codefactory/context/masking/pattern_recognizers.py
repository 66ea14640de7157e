"""Presidio's pattern recognizers, loaded without Presidio's package.

`import presidio_analyzer` (and so any of its modules: Python runs a package's `__init__`
before its submodules) loads the analyzer engine, the recognizer registry with every
predefined recognizer, and the NLP engines: spaCy, thinc and numpy, about 1.4 s of every
process that masks. `personal.py` needs none of them: it calls a few pattern recognizers'
own `analyze`. `load()` runs only the modules those need (the `PatternRecognizer` base
classes and one module per recognizer, unchanged: the same expressions, scores and
checksums), under empty stand-ins for their parent packages, then takes every
`presidio_analyzer` module it loaded out of `sys.modules` again, so that a later
`import presidio_analyzer` elsewhere in the process loads the whole package as usual.
When the package is already imported, `load()` uses it. (While `load()` runs, under its
lock, the stand-ins are what `import presidio_analyzer` would find: nothing else in the
project imports Presidio.)
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types
from functools import cache
from pathlib import Path

PACKAGE = "presidio_analyzer"

CORE = (
    ("analysis_explanation", "AnalysisExplanation"),
    ("recognizer_result", "RecognizerResult"),
    ("score_thresholds", None),
    ("entity_recognizer", "EntityRecognizer"),
    ("local_recognizer", "LocalRecognizer"),
    ("pattern", "Pattern"),
    ("pattern_recognizer", "PatternRecognizer"),
)
"""The modules under the package that pattern recognizers import, in dependency order, and
the name each gives the package (`from presidio_analyzer import Pattern`)."""

RECOGNIZERS = {
    "EmailRecognizer": "generic.email_recognizer",
    "IpRecognizer": "generic.ip_recognizer",
    "CreditCardRecognizer": "generic.credit_card_recognizer",
    "IbanRecognizer": "generic.iban_recognizer",
    "CryptoRecognizer": "generic.crypto_recognizer",
    "UsSsnRecognizer": "country_specific.us.us_ssn_recognizer",
    "UsItinRecognizer": "country_specific.us.us_itin_recognizer",
    "UkNinoRecognizer": "country_specific.uk.uk_nino_recognizer",
    "EsNifRecognizer": "country_specific.spain.es_nif_recognizer",
    "EsNieRecognizer": "country_specific.spain.es_nie_recognizer",
    "ItFiscalCodeRecognizer": "country_specific.italy.it_fiscal_code_recognizer",
    "FiPersonalIdentityCodeRecognizer": (
        "country_specific.finland.fi_personal_identity_code_recognizer"
    ),
    "DeTaxIdRecognizer": "country_specific.germany.de_tax_id_recognizer",
    "DeSocialSecurityRecognizer": "country_specific.germany.de_social_security_recognizer",
    "KrRrnRecognizer": "country_specific.korea.kr_rrn_recognizer",
    "SgFinRecognizer": "country_specific.singapore.sg_fin_recognizer",
    "CaSinRecognizer": "country_specific.canada.ca_sin_recognizer",
}
"""Class name → its module under `presidio_analyzer.predefined_recognizers` (Presidio
2.2.366's layout; a moved module fails `load()` with ModuleNotFoundError)."""

_lock = threading.Lock()


class NlpArtifacts:
    """Stands in for `presidio_analyzer.nlp_engine.NlpArtifacts` (spaCy's tokens), which
    `iban_recognizer` imports for a type hint only; pattern recognizers get None."""


def load() -> types.SimpleNamespace:
    """`Pattern`, `PatternRecognizer` and every class of `RECOGNIZERS`, as attributes.
    Loaded once per process; ModuleNotFoundError when Presidio is not installed."""
    with _lock:
        return _loaded()


@cache
def _loaded() -> types.SimpleNamespace:
    if PACKAGE in sys.modules:  # the whole package is loaded already: use it
        return _from_package()
    return _without_package()


def _from_package() -> types.SimpleNamespace:
    from presidio_analyzer import Pattern, PatternRecognizer, predefined_recognizers

    found = {name: getattr(predefined_recognizers, name) for name in RECOGNIZERS}
    return types.SimpleNamespace(Pattern=Pattern, PatternRecognizer=PatternRecognizer, **found)


def _without_package() -> types.SimpleNamespace:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"No module named {PACKAGE!r}", name=PACKAGE)
    root = Path(spec.origin).parent
    before = {name for name in sys.modules if _ours(name)}
    try:
        package = _stand_in(PACKAGE, root)
        for module, exported in CORE:
            loaded = importlib.import_module(f"{PACKAGE}.{module}")
            if exported is not None:
                setattr(package, exported, getattr(loaded, exported))
        nlp_engine = _stand_in(f"{PACKAGE}.nlp_engine", root / "nlp_engine")
        nlp_engine.__dict__["NlpArtifacts"] = NlpArtifacts
        found = {name: _recognizer(root, name, where) for name, where in RECOGNIZERS.items()}
        # What Presidio's package `__init__` sets up for the loggers its modules use.
        logging.getLogger("presidio-analyzer").addHandler(logging.NullHandler())
        return types.SimpleNamespace(
            Pattern=package.Pattern, PatternRecognizer=package.PatternRecognizer, **found
        )
    finally:
        for name in [n for n in sys.modules if _ours(n) and n not in before]:
            del sys.modules[name]


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


def _recognizer(root: Path, name: str, where: str) -> type:
    """The class `name` from its module `where`, its parent packages stood in for."""
    folder = root / "predefined_recognizers"
    parent = f"{PACKAGE}.predefined_recognizers"
    for part in where.split(".")[:-1]:
        parent, folder = f"{parent}.{part}", folder / part
        if parent not in sys.modules:
            _stand_in(parent, folder)
    recognizer: type = getattr(importlib.import_module(f"{parent}.{where.split('.')[-1]}"), name)
    return recognizer


def _stand_in(name: str, folder: Path) -> types.ModuleType:
    """An empty package `name` in `sys.modules` whose submodules are found in `folder`."""
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    return sys.modules[name]
