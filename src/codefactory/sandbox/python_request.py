"""Which CPython a project asks for, read as `.python-version` and `requires-python` say it.

A request is either a version (`3.12`, `3.12.1`, `cpython@3.12`, as `.python-version` and
uv write it) or a PEP 440 version specifier (`>=3.12`, `>=3.10,<3.13`, `==3.12.*`, as PEP 621
`requires-python` writes it). A version names every release that starts with it: `3.12`
admits 3.12.0 and 3.12.9, never 3.13.0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

_VERSION = re.compile(r"(?:cpython[@-]?|python)?(?P<version>3(?:\.\d+){0,2})", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class PythonRequest:
    """One parsed request: what it admits, and how `uv python install` is asked for it."""

    text: str
    """The request as the project wrote it."""
    specifier: SpecifierSet
    """PEP 440 form of the request (`3.12` becomes `==3.12.*`)."""
    uv_request: str
    """The request as uv's `python install` takes it (`3.12`, `>=3.12`)."""

    def admits(self, version: str) -> bool:
        """Whether the final release `version` (`3.12.1`) satisfies the request."""
        try:
            parsed = Version(version)
        except InvalidVersion:
            return False
        return self.specifier.contains(parsed, prereleases=False)


def parse_request(text: str) -> PythonRequest:
    """`text` as a `PythonRequest`; a ValueError saying why for anything else: an empty
    request, another implementation (`pypy@3.10`), a free-threaded build (`3.13t`), a
    Python 2 version, or a malformed specifier."""
    request = text.strip()
    if not request:
        raise ValueError("the Python request is empty")
    matched = _VERSION.fullmatch(request)
    if matched is not None:
        version = matched["version"]
        exact = version.count(".") == 2
        specifier = SpecifierSet(f"=={version}" if exact else f"=={version}.*")
        return PythonRequest(text=text, specifier=specifier, uv_request=version)
    if request[0].isalpha() or not request[0].isascii():
        raise ValueError(
            f"{request!r} is not a CPython 3 version: only CPython is provided to the sandbox"
        )
    if request[0].isdigit():
        raise ValueError(
            f"{request!r} is not a CPython 3 version (`3.12`, `3.12.1`) or a PEP 440 "
            "specifier (`>=3.12`); free-threaded and Python 2 builds are not provided"
        )
    try:
        specifier = SpecifierSet(request)
    except InvalidSpecifier as err:
        raise ValueError(f"{request!r} is not a PEP 440 version specifier: {err}") from None
    if not len(specifier):
        raise ValueError(f"{request!r} holds no version specifier")
    return PythonRequest(text=text, specifier=specifier, uv_request=str(specifier))


def best_admitted(request: PythonRequest, versions: list[str]) -> str | None:
    """The highest of `versions` that `request` admits, None when none does."""
    admitted = [v for v in versions if request.admits(v)]
    return max(admitted, key=Version) if admitted else None
