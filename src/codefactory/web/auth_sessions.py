"""What the server keeps of browser logins: the sessions alive, and the login states used.

A session cookie is signed, so nobody can forge one; but a signature cannot be taken back. So
the cookie carries a random session id, and `SessionStore` keeps the ids alive in the `serve`
process: every request checks its id there, `/logout` removes it, and an old copy of the
cookie is then worth nothing (OWASP Session Management: "invalidate the session on the server
side"). A restart of `serve` ends every session.

A login's state, nonce and PKCE verifier travel in the browser's own signed cookie (each
browser holds its own: nobody else's `/login` can push it out); `UsedStates` remembers each
state redeemed until it would have expired anyway, so a callback replayed with a copy of the
cookie from before it is refused.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

SESSIONS_PER_PERSON = 20
"""Live sessions one person may hold (browsers, devices); a new login beyond ends their
oldest."""
MAX_USED_STATES = 200_000
"""Used login states remembered at most (each was minted by a `/login` of this process)."""


class SessionStore:
    """Session id → (person id, end in Unix seconds), in this process; thread-safe."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, tuple[str, float]] = {}

    def start(self, person: str, *, lifetime_s: float) -> str:
        """A new session of `person` for `lifetime_s` seconds; returns its id (256 random
        bits, URL-safe)."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            for old in [k for k, (_, end) in self._sessions.items() if end <= now]:
                del self._sessions[old]
            theirs = [k for k, (who, _) in self._sessions.items() if who == person]
            for old in theirs[: max(0, len(theirs) - SESSIONS_PER_PERSON + 1)]:
                del self._sessions[old]
            self._sessions[session_id] = (person, now + lifetime_s)
        return session_id

    def alive(self, session_id: object, person: str) -> bool:
        """Whether `session_id` is a live session of `person`."""
        if not isinstance(session_id, str):
            return False
        with self._lock:
            entry = self._sessions.get(session_id)
        return entry is not None and entry[0] == person and entry[1] > self._clock()

    def end(self, session_id: object) -> None:
        """End a session (at `/logout`); an unknown id is no error."""
        if isinstance(session_id, str):
            with self._lock:
                self._sessions.pop(session_id, None)


class UsedStates:
    """Login states already redeemed, each until `ttl_s` after its use; thread-safe."""

    def __init__(self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._used: dict[str, float] = {}

    def use(self, state: str) -> bool:
        """Mark `state` used: True the first time, False for a replay."""
        key = hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        with self._lock:
            until = self._used.get(key)
            if until is not None and until > now:
                return False
            self._used.pop(key, None)  # re-inserted last: the dict stays in order of expiry
            while self._used and (
                next(iter(self._used.values())) <= now or len(self._used) >= MAX_USED_STATES
            ):
                self._used.pop(next(iter(self._used)))
            self._used[key] = now + self._ttl_s
        return True
