"""Settings of the advisory data (the `advisories` section of `Settings`).

Environment variables use `__` between levels, e.g.
`CODEFACTORY_ADVISORIES__SYNC_URL=https://osv-mirror.bank.internal` or
`CODEFACTORY_ADVISORIES__ECOSYSTEMS='["PyPI"]'`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codefactory.advisories.ecosystems import NPM, PYPI, SCHEMES

OSV_BUCKET = "https://osv-vulnerabilities.storage.googleapis.com"
"""OSV's public bucket: `<URL>/<ecosystem>/all.zip` holds every record of an ecosystem."""


class AdvisorySettings(BaseModel):
    """Where `advisories sync` fetches OSV data from, and how much it accepts."""

    model_config = ConfigDict(extra="forbid")

    sync_url: str = OSV_BUCKET
    """Base URL of the OSV archives (`<sync_url>/<ecosystem>/all.zip`): OSV's public bucket,
    or a bank's internal mirror of it. `advisories sync --from URL` overrides it."""
    ecosystems: list[str] = Field(default_factory=lambda: [PYPI, NPM])
    """The ecosystems `advisories sync` fetches when `--ecosystem` is not given."""
    sync_timeout_s: float = 60.0
    """Limit on connecting and on each read of a download (httpx timeouts)."""
    sync_deadline_s: float = 1800.0
    """Limit on one ecosystem's whole download, however steadily the server trickles."""
    max_archive_bytes: int = 2 * 1024**3
    """Largest archive accepted (OSV's npm archive is a few hundred MB); a larger one, by its
    Content-Length or by the bytes received, fails the sync."""

    @field_validator("ecosystems")
    @classmethod
    def _supported(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SCHEMES))
        if unknown:
            raise ValueError(f"unsupported ecosystems {unknown} (supported: {sorted(SCHEMES)})")
        if not value:
            raise ValueError("at least one ecosystem")
        return value

    @field_validator("sync_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("sync_url must be an http(s) URL")
        return value.rstrip("/")
