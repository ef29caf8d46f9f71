"""Idempotency keys: the same job creation sent twice makes one job.

A key is recorded in the transaction that makes its job visible to workers
(lorry.jobs.staging), under a unique (token, key) constraint: of two
identical requests at once, the one that commits second hits the
constraint, rolls back its own job and answers the first one's.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lorry.clock import now_us
from lorry.store.tables import idempotency_keys

__all__ = [
    "KEEP_SECONDS",
    "KeyClaim",
    "KeyTaken",
    "Recorded",
    "find",
    "record",
    "request_hasher",
]

log = logging.getLogger(__name__)

#: How long a key is remembered. Clients resend within seconds; a day
#: covers a client that is restarted, or a script that is run again.
KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """A key to record with the job a request creates."""

    token_id: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class Recorded:
    request_hash: str
    job_id: str


class KeyTaken(Exception):
    """Another request recorded the key first; its job is the answer."""


def request_hasher(method: str, path: str, query: str) -> Any:
    """A SHA-256 of what identifies a request, to be fed its body bytes.

    NUL separates the parts: it cannot occur in a method, path or query.
    """
    hasher = hashlib.sha256()
    for part in (method.upper(), path, query):
        hasher.update(part.encode() + b"\0")
    return hasher


def _cutoff() -> int:
    return now_us() - KEEP_SECONDS * 1_000_000


def find(conn: sa.Connection, token_id: str, key: str) -> Recorded | None:
    """The job a key made, unless the key is older than KEEP_SECONDS."""
    k = idempotency_keys.c
    row = conn.execute(
        sa.select(k.request_hash, k.job_id).where(
            k.token_id == token_id, k.key == key, k.created_at >= _cutoff()
        )
    ).first()
    return None if row is None else Recorded(row.request_hash, row.job_id)


def record(conn: sa.Connection, claim: KeyClaim, job_id: str) -> None:
    """Record a key with its job, in the job's transaction; KeyTaken if a
    request committed the same key first (the transaction is then to be
    rolled back: the caller's job must not become visible)."""
    k = idempotency_keys.c
    # Keys past their time go first, so that such a key may be used again.
    conn.execute(sa.delete(idempotency_keys).where(k.created_at < _cutoff()))
    try:
        conn.execute(
            sa.insert(idempotency_keys).values(
                token_id=claim.token_id,
                key=claim.key,
                request_hash=claim.request_hash,
                job_id=job_id,
                created_at=now_us(),
            )
        )
    except sa.exc.IntegrityError:
        log.info(
            "job %s: idempotency key already used by another request",
            job_id,
            extra={"action": "idempotency_key_taken", "job_id": job_id},
        )
        raise KeyTaken(claim.key) from None
