"""How each supported OSV ecosystem names packages and orders versions.

OSV (https://ossf.github.io/osv-schema/#affectedpackage-field) leaves both to the ecosystem:

- `PyPI`: names compare after PEP 503 normalisation (`Flask_Caching` is `flask-caching`),
  versions in PEP 440 order (`3.6` equals `3.6.0`);
- `npm`: names are compared exactly (case-sensitive, scoped as `@scope/name`), versions in
  SemVer 2.0 order (prereleases before their release, build metadata ignored).

Any other ecosystem (`Go`, `Maven`, `Debian:12`, ...) is not supported: its `affected`
entries are skipped and counted by the importer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import semver
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI = "PyPI"
NPM = "npm"


@dataclass(frozen=True, kw_only=True)
class VersionScheme:
    """One ecosystem's rules: `package_key` turns a name into its lookup key, `parse` a
    version string into an ordered value (None when the string is not a version of the
    scheme), and `range_types` are the OSV range types evaluated in that order."""

    ecosystem: str
    package_key: Callable[[str], str]
    parse: Callable[[str], Any]
    range_types: frozenset[str]


def _pep440(raw: str) -> Version | None:
    try:
        return Version(raw)
    except InvalidVersion:
        return None


def _semver(raw: str) -> semver.Version | None:
    # npm's `semver.clean` drops a leading `v` or `=`; OSV data and lock files rarely carry one
    text = raw.strip().lstrip("=v").strip()
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def _npm_name(name: str) -> str:
    return name.strip()


SCHEMES: dict[str, VersionScheme] = {
    # PyPA data uses ECOSYSTEM ranges; a SEMVER range on a PyPI package is read in PEP 440
    # order too (it agrees with SemVer on every release version)
    PYPI: VersionScheme(
        ecosystem=PYPI,
        package_key=canonicalize_name,
        parse=_pep440,
        range_types=frozenset({"ECOSYSTEM", "SEMVER"}),
    ),
    # osv.dev publishes npm ranges as SEMVER, GitHub's own repository as ECOSYSTEM: npm's
    # ecosystem order is SemVer 2.0, so both mean the same
    NPM: VersionScheme(
        ecosystem=NPM,
        package_key=_npm_name,
        parse=_semver,
        range_types=frozenset({"ECOSYSTEM", "SEMVER"}),
    ),
}
"""The supported ecosystems, by their OSV name."""


def scheme_for(ecosystem: str) -> VersionScheme:
    """The scheme of a supported ecosystem, named as OSV names it or in any case (`pypi`, as
    a user types it on the command line); ValueError for any other. Records are matched on
    the exact OSV name."""
    wanted = str(ecosystem)
    for name, scheme in SCHEMES.items():
        if wanted == name or wanted.casefold() == name.casefold():
            return scheme
    supported = ", ".join(sorted(SCHEMES))
    raise ValueError(f"unsupported ecosystem {wanted!r} (supported: {supported})")
