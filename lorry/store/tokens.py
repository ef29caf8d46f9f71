"""API tokens: random, stored as SHA-256 hashes, looked up per request."""

from __future__ import annotations

import hashlib
import logging
import secrets

import msgspec
import sqlalchemy as sa

from lorry.clock import now_us
from lorry.ids import new_id
from lorry.store.tables import api_tokens

__all__ = ["ROLES", "Token", "authenticate", "bootstrap", "create", "hash_token"]

log = logging.getLogger(__name__)

ROLES = ("reader", "editor", "admin")


class Token(msgspec.Struct, frozen=True):
    id: str
    name: str
    role: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    return "lorry_" + secrets.token_urlsafe(32)


def create(conn: sa.Connection, name: str, role: str, secret: str) -> Token:
    token = Token(new_id(), name, role)
    conn.execute(
        sa.insert(api_tokens).values(
            id=token.id,
            name=name,
            role=role,
            token_hash=hash_token(secret),
            created_at=now_us(),
        )
    )
    return token


def authenticate(conn: sa.Connection, secret: str) -> Token | None:
    row = conn.execute(
        sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
            api_tokens.c.token_hash == hash_token(secret),
            api_tokens.c.revoked_at.is_(None),
        )
    ).first()
    return Token(row.id, row.name, row.role) if row is not None else None


def bootstrap(conn: sa.Connection, admin_token: str | None) -> str | None:
    """On first start, make the admin token; return it if it was generated.

    ``admin_token`` (LORRY_ADMIN_TOKEN) becomes the admin token when given;
    otherwise a random one is made and returned, to be shown once.
    """
    has_any = conn.execute(sa.select(sa.func.count()).select_from(api_tokens))
    if has_any.scalar_one():
        return None
    secret = admin_token or new_secret()
    create(conn, "admin", "admin", secret)
    log.info("admin token created", extra={"action": "admin_token_created"})
    return None if admin_token else secret
