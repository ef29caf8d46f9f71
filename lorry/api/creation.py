"""Answering a job's creation: the 202, and the ``Idempotency-Key`` that
makes a creation safe to send again.

A request that carries a key is hashed as it is read (method, path, query
and body bytes). A key its token used before answers the job it made, if
the request is the same, and ``idempotency_key_reused`` if it is not; a new
key is recorded with the job it makes (lorry.jobs.idempotency).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from lorry.api.responses import JSONResponse
from lorry.errors import ApiError
from lorry.jobs import idempotency, render
from lorry.jobs.idempotency import KeyClaim, KeyTaken, Recorded
from lorry.server import Runtime

__all__ = ["HEADER", "Idempotency", "accepted", "create_job"]

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: Visible ASCII, as the key is compared byte for byte and shown in logs.
_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


async def accepted(
    runtime: Runtime, job_id: str, *, replayed: bool = False
) -> JSONResponse:
    """The 202 answer to a job's creation: the job as it is now."""

    def load() -> dict[str, Any] | None:
        with runtime.db.read() as conn:
            row = render.find_row(conn, job_id)
            return None if row is None else render.job_resource(conn, row)

    resource = await run_in_threadpool(load)
    if resource is None:  # forgotten since its key was read
        raise ApiError.not_found("job", job_id)
    headers = {"Location": f"/jobs/{job_id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse({"data": resource}, status_code=202, headers=headers)


class Idempotency:
    """The idempotency key of one job creation request, if it has one."""

    def __init__(self, request: Request, token_id: str) -> None:
        raw = request.headers.get(HEADER)
        if raw is not None and not _KEY_RE.fullmatch(raw.strip()):
            raise ApiError.one(
                400,
                "invalid_idempotency_key",
                f"{HEADER} must be 1 to 255 visible ASCII characters",
                parameter=HEADER,
            )
        self.key = None if raw is None else raw.strip()
        self.token_id = token_id
        url = request.url
        self._hasher = idempotency.request_hasher(request.method, url.path, url.query)
        #: What the key answered before this request, if it did.
        self.prior: Recorded | None = None

    @classmethod
    async def of(cls, request: Request, runtime: Runtime, token_id: str) -> Idempotency:
        """The request's key, looked up: ``prior`` is set if it was used."""
        self = cls(request, token_id)
        if self.key is not None:
            self.prior = await run_in_threadpool(self._find, runtime)
        return self

    def _find(self, runtime: Runtime) -> Recorded | None:
        assert self.key is not None
        with runtime.db.read() as conn:
            return idempotency.find(conn, self.token_id, self.key)

    def update(self, data: bytes) -> None:
        """Hash the next bytes of the body."""
        if self.key is not None:
            self._hasher.update(data)

    @property
    def claim(self) -> KeyClaim | None:
        """The key to record with the job, once the whole body was hashed."""
        if self.key is None:
            return None
        return KeyClaim(self.token_id, self.key, self._hasher.hexdigest())

    async def drain(self, request: Request, limit: int) -> None:
        """Hash the rest of a streamed body that needs no staging."""
        received = 0
        async for part in request.stream():
            received += len(part)
            if received > limit:
                raise ApiError.one(
                    413, "body_too_large", f"the body is larger than {limit} bytes"
                )
            self.update(part)

    async def replay(self, runtime: Runtime) -> JSONResponse:
        """The answer to a key used before: its job, if the request is the
        same; the whole body must have been hashed."""
        recorded = self.prior or await run_in_threadpool(self._find, runtime)
        claim = self.claim
        assert claim is not None
        if recorded is None:
            # The key's job was forgotten between the conflict and this read.
            raise ApiError.one(
                409,
                "idempotency_key_conflict",
                f"another request with this {HEADER} was handled at the same "
                "time; send the request again",
                parameter=HEADER,
            )
        if recorded.request_hash != claim.request_hash:
            raise ApiError.one(
                422,
                "idempotency_key_reused",
                f"this {HEADER} was used for another request (job "
                f"{recorded.job_id}); use a new key for a new request",
                parameter=HEADER,
            )
        log.info(
            "job %s: answered again for its idempotency key",
            recorded.job_id,
            extra={"action": "job_replayed", "job_id": recorded.job_id},
        )
        return await accepted(runtime, recorded.job_id, replayed=True)


async def create_job(
    runtime: Runtime, idem: Idempotency, stage: Callable[[], Awaitable[str]]
) -> JSONResponse:
    """Stage a job with ``stage`` and answer 202; if a request with the same
    key won the race, the answer is that request's job."""
    try:
        job_id = await stage()
    except KeyTaken:
        return await idem.replay(runtime)
    runtime.pool.wake()
    return await accepted(runtime, job_id)
