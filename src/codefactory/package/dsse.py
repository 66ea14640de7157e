"""DSSE v1 envelopes (github.com/secure-systems-lab/dsse): the pre-authentication encoding
a signature covers, and the JSON envelope that carries a payload and its signatures."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

Sign = Callable[[bytes], tuple[str, bytes]]
"""Signs the PAE bytes: returns `(key id, raw signature)`."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: `DSSEv1 SP len SP type SP len SP body`."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def seal(payload_type: str, payload: bytes, sign: Sign) -> dict[str, Any]:
    """The DSSE envelope `{payloadType, payload: base64, signatures: [{keyid, sig: base64}]}`
    of `payload`, signed once over its PAE by `sign` (whose errors propagate)."""
    keyid, signature = sign(pae(payload_type, payload))
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode()}],
    }
