"""Forge API errors: each names the forge, the call and the vendor's answer.

ForgeApiError (review.errors.ForgeError)
 ├── ForgeUnauthorized   401: the token is missing, expired or revoked
 ├── ForgeForbidden      403 (without a rate limit): the token lacks the permission
 ├── ForgeNotFound       404: no such repository, branch or request (or hidden from the token)
 ├── ForgeConflict       409: the branch or request exists already, or moved
 ├── ForgeInvalid        422/400: the forge refused the request's content (its message kept)
 ├── ForgeRateLimited    429 or a 403 rate limit, with `Retry-After` seconds when given
 ├── ForgeUnavailable    5xx, a timeout or a refused connection
 ├── NoUserToken         the person has no forge token: the request is not opened under
 │                       anyone else's
 └── ForeignRequest      a request already open on the factory's branch was opened by an
                         account other than the sponsor's: it is not adopted
"""

from __future__ import annotations

from codefactory.review.errors import ForgeError


class ForgeApiError(ForgeError):
    """A forge's REST API refused or failed a call."""

    def __init__(self, forge: str, call: str, status: int, message: str) -> None:
        shown = message.strip().replace("\n", " ")[:300]
        super().__init__(
            f"{forge}: {call}: HTTP {status}: {shown}" if status else f"{forge}: {call}: {shown}"
        )
        self.forge = forge
        self.call = call
        self.status = status
        self.vendor_message = shown

    @property
    def kind(self) -> str:
        """The error's name in audit events (`forge-unauthorized`, ...)."""
        name = type(self).__name__.removeprefix("Forge")
        return "forge-" + "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


class ForgeUnauthorized(ForgeApiError):
    pass


class ForgeForbidden(ForgeApiError):
    pass


class ForgeNotFound(ForgeApiError):
    pass


class ForgeConflict(ForgeApiError):
    pass


class ForgeInvalid(ForgeApiError):
    pass


class ForgeRateLimited(ForgeApiError):
    def __init__(
        self, forge: str, call: str, status: int, message: str, retry_after_s: float | None
    ) -> None:
        super().__init__(forge, call, status, message)
        self.retry_after_s = retry_after_s


class ForgeUnavailable(ForgeApiError):
    pass


class NoUserToken(ForgeApiError):
    def __init__(self, forge: str, person: str) -> None:
        super().__init__(
            forge,
            "open request",
            0,
            f"{person} has no {forge} token: the request is opened only under the sponsor's "
            "own grant (forge.user_tokens in development, forge.user_tokens_dir in production)",
        )
        self.person = person


class ForeignRequest(ForgeApiError):
    """The forge holds an open request on the factory's branch whose author is not the
    sponsor's own forge account: someone else opened it, and the factory does not adopt it
    (the sponsor could approve it, or its author could steer it)."""

    def __init__(
        self, forge: str, *, number: str, branch: str, author: str, sponsor_login: str
    ) -> None:
        super().__init__(
            forge,
            "open request",
            0,
            f"request {number} on {branch} was opened by {author or 'an unnamed account'}, "
            f"not by the sponsor's account {sponsor_login}: someone else opened a request on "
            "the factory's branch; it is not adopted",
        )
        self.number = number
        self.branch = branch
        self.author = author
        self.sponsor_login = sponsor_login
