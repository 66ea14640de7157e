"""Audit settings: the witnesses that cosign checkpoints, and the SIEM stream.

Witness verifier keys live here, in configuration outside the data folder: a copy of the
data folder cannot change whom `audit verify` trusts. Environment, e.g.
`CODEFACTORY_AUDIT__WITNESSES='[{"name": "sec", "url": "http://w:7380", "verifier_key": "..."}]'`
and `CODEFACTORY_AUDIT__SIEM__TARGET=udp://siem.bank:514`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from codefactory.audit.cosignature import CosignerKey

# `audit.cosignature` (and `cryptography` under it) is imported when a witness's key is read,
# not when the settings load: most commands configure no witness.


class WitnessSettings(BaseModel):
    """One witness (c2sp.org/tlog-witness): a label, its URL prefix, its verifier key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    """A label for reports and audit events (e.g. the team that runs it)."""
    url: str
    """The prefix `add-checkpoint` is posted under, e.g. `https://witness.sec.bank/`."""
    verifier_key: str
    """`name+hex(keyID)+base64(0x04 || Ed25519 key)`, as `codefactory witness key` prints."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("a witness URL starts with http:// or https://")
        return value.rstrip("/")

    @field_validator("verifier_key")
    @classmethod
    def _key(cls, value: str) -> str:
        from codefactory.audit.cosignature import parse_cosigner_key

        parse_cosigner_key(value)
        return value.strip()

    @property
    def key(self) -> CosignerKey:
        from codefactory.audit.cosignature import parse_cosigner_key

        return parse_cosigner_key(self.verifier_key)


class SiemSettings(BaseModel):
    """Where audit events are streamed, and in which standard format (docs/witnesses.md)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["ocsf", "syslog"] = "ocsf"
    """`ocsf`: OCSF 1.3 API Activity JSON; `syslog`: RFC 5424 with structured data."""
    target: str = ""
    """`udp://host:port`, `tcp://host:port` (RFC 6587 octet counting), `tls://host:port`
    (RFC 5425) or a file path (one message a line); empty: no stream."""
    queue_size: int = Field(default=10_000, ge=1)
    """Events waiting to be sent; beyond it events are dropped and counted, never blocking."""
    timeout_s: float = Field(default=2.0, gt=0)
    """Connect/send timeout of the TCP target."""

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value.startswith(("udp://", "tcp://", "tls://")):
            parts = urlsplit(value)
            try:
                port = parts.port
            except ValueError:
                port = None
            if not parts.hostname or port is None:
                raise ValueError(f"a SIEM target {value!r} is udp://, tcp:// or tls://host:port")
        elif "://" in value:
            raise ValueError("a SIEM target is udp://, tcp://, tls://host:port or a file path")
        return value

    ca_file: Path | None = None
    """CA certificates (PEM) the `tls://` target's certificate must chain to; default: the
    system's."""
    sd_id: str = Field(default="codefactory@32473", pattern=r"^[!-~]{1,32}$")
    """The RFC 5424 structured-data ID (`name@<private enterprise number>`)."""


class AuditSettings(BaseModel):
    """Witnessing and streaming of the audit log."""

    model_config = ConfigDict(extra="forbid")

    witnesses: list[WitnessSettings] = Field(default_factory=list)
    witness_quorum: int | None = None
    """How many witnesses' cosignatures `audit verify` requires on the latest checkpoint
    (default: all configured)."""
    witness_timeout_s: float = Field(default=5.0, gt=0)
    """Per request to a witness; a slow witness is an audit event, never a blocked run."""
    siem: SiemSettings = Field(default_factory=SiemSettings)

    @model_validator(mode="after")
    def _quorum(self) -> AuditSettings:
        if self.witness_quorum is not None and not (
            1 <= self.witness_quorum <= len(self.witnesses)
        ):
            raise ValueError(
                f"audit.witness_quorum {self.witness_quorum} must be between 1 and the "
                f"{len(self.witnesses)} configured witnesses"
            )
        names = [witness.name for witness in self.witnesses]
        if len(set(names)) != len(names):
            raise ValueError("audit.witnesses have distinct names")
        return self

    @property
    def quorum(self) -> int:
        return len(self.witnesses) if self.witness_quorum is None else self.witness_quorum
