"""Tables of the feedback loop: per-commit check baselines and test maps (issue 6).

One row per immutable fact (what a check found in one file of a base commit under one
configuration, or the test map of a commit), keyed by a digest of its parts so paths of
any length fit; the parts stay readable for diagnostics and clean-up.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, String, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from codefactory.store.models import Base
from codefactory.verify.cache import CacheKey


class VerifyCacheRow(Base):
    """One cached fact of a base commit: a check's findings for a path, or a test map."""

    __tablename__ = "verify_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    check: Mapped[str] = mapped_column(String(64))
    commit: Mapped[str] = mapped_column(String(64), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def row_key(key: CacheKey) -> str:
    parts = (key.check, key.commit, key.digest, key.path)
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


class SqlVerifyCache:
    """The gate's cache (`verify.cache.VerifyCache`) in the factory's database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: CacheKey) -> str | None:
        with Session(self.engine) as session:
            row = session.get(VerifyCacheRow, row_key(key))
            return None if row is None else row.value

    def put(self, key: CacheKey, value: str) -> None:
        with Session(self.engine) as session:
            row = session.get(VerifyCacheRow, row_key(key))
            if row is not None:
                row.value = value
            else:
                session.add(
                    VerifyCacheRow(
                        key=row_key(key),
                        check=key.check,
                        commit=key.commit,
                        digest=key.digest,
                        path=key.path,
                        value=value,
                        created_at=datetime.now(UTC),
                    )
                )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another thread stored the same immutable fact first
