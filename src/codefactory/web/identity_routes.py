"""What examiners fetch over HTTP: the JWK set, signed checkpoints and RFC 9162 proofs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Query

from codefactory.audit.errors import AuditError
from codefactory.identity.published import jwks

if TYPE_CHECKING:
    from codefactory.factory import Factory

T = TypeVar("T")

# Documented so the OpenAPI document describes every answer (schemathesis checks it).
BAD_REQUEST: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request names a leaf or tree size the log cannot prove."}
}


def identity_router(factory: Factory) -> APIRouter:
    """`/.well-known/jwks.json` and `/api/audit/{checkpoint,proofs/…}`."""
    router = APIRouter()
    identity = factory.identity

    @router.get("/.well-known/jwks.json", tags=["identity"])
    def jwk_set() -> dict[str, Any]:
        """The issuer's keys (current and retired) and every agent's key (RFC 7517 §5); with
        pinned trust roots (`identity.trust_file`), only the pinned keys."""
        return jwks(
            identity.issuer.name,
            identity.issuer.public_keys(),
            identity.agents.search(),
            trust=identity.trust,
        )

    @router.get("/api/audit/checkpoint", tags=["audit"], responses=BAD_REQUEST)
    def checkpoint() -> dict[str, Any]:
        """The latest signed checkpoint (C2SP signed note) and its verifier key."""
        signed = _answer(factory.audit.checkpoint)
        return {
            **signed.checkpoint.as_dict(),
            "note": signed.note,
            "verifier_key": signed.verifier_key,
        }

    @router.get("/api/audit/proofs/inclusion", tags=["audit"], responses=BAD_REQUEST)
    def inclusion(
        index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)]
    ) -> dict[str, Any]:
        """RFC 9162 §2.1.3 proof that leaf `index` is in the tree of `size` leaves."""
        return _answer(lambda: factory.audit.inclusion_proof(index, size)).as_dict()

    @router.get("/api/audit/proofs/consistency", tags=["audit"], responses=BAD_REQUEST)
    def consistency(
        first: Annotated[int, Query(ge=1)], second: Annotated[int, Query(ge=1)]
    ) -> dict[str, Any]:
        """RFC 9162 §2.1.4 proof that tree `first` is a prefix of tree `second`."""
        return _answer(lambda: factory.audit.consistency_proof(first, second)).as_dict()

    return router


def _answer(compute: Callable[[], T]) -> T:
    try:
        return compute()
    except AuditError as err:
        raise HTTPException(status_code=400, detail=str(err)) from err
