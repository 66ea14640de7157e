"""What the forge tests share across the four forges (GitHub, GitLab, Azure DevOps, Bitbucket)."""

from __future__ import annotations

from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeUnauthorized,
    ForgeUnavailable,
)

NAMED_ERRORS: tuple[tuple[int, type[ForgeApiError]], ...] = (
    (400, ForgeInvalid),
    (401, ForgeUnauthorized),
    (403, ForgeForbidden),
    (404, ForgeNotFound),
    (409, ForgeConflict),
    (422, ForgeInvalid),
    (500, ForgeUnavailable),
)
"""(HTTP status a forge answers, the named error the client raises for it): every forge client
reads a refusal the same way (`review.forges.http`), so each forge's test runs every row."""
