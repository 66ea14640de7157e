"""Masking of secrets and personal data before a text reaches a coding engine, and the
scan the model gateway runs over every request (`Masker.scan`).

Importing this package is cheap: Presidio's recognizers (their modules alone, not spaCy)
are loaded on the first `mask` or `scan`, once per process.
"""

from codefactory.context.masking.masker import Coverage, Finding, Masker, MaskResult
from codefactory.context.masking.pseudonyms import PLACEHOLDER, Pseudonyms
from codefactory.context.masking.spans import Kind, Span

__all__ = [
    "PLACEHOLDER",
    "Coverage",
    "Finding",
    "Kind",
    "MaskResult",
    "Masker",
    "Pseudonyms",
    "Span",
]
