"""Signed, expiring download URLs of exports.

The signature is the credential of a download (it needs no API token), so
it is made by itsdangerous with a server secret, not by code of our own. The
secret is ``LORRY_EXPORT_SECRET`` when set (several API nodes must share
one); otherwise it is generated at first start and kept in a 0600 file of
the data directory, where worker processes on the same data directory read
it too, and a restart keeps every link that was handed out valid.
The expiry travels inside the signed payload: each job has its own TTL, and
a re-signed URL its own expiry.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

from itsdangerous import BadSignature, URLSafeSerializer

from lorry.clock import now_us
from lorry.config import Settings

__all__ = [
    "SECRET_FILE",
    "ExpiredLink",
    "InvalidLink",
    "download_path",
    "ensure_secret",
    "server_secret",
    "sign",
    "verify",
]

SECRET_FILE = "export-url.secret"
_SALT = "lorry.export-url"
_lock = threading.Lock()
_cache: dict[Path, bytes] = {}


class InvalidLink(Exception):
    """The link was not signed by this server, or was changed."""


class ExpiredLink(Exception):
    """The link was signed by this server but its time is up."""


def ensure_secret(data_dir: Path) -> bytes:
    """The server's signing secret, created (0600) if there is none yet."""
    path = (data_dir / SECRET_FILE).resolve()
    with _lock:
        found = _cache.get(path)
        if found is not None:
            return found
        try:
            # O_EXCL: two processes starting at once cannot both write one.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            secret = path.read_bytes().strip()
        else:
            secret = secrets.token_hex(32).encode()
            with os.fdopen(fd, "wb") as handle:
                handle.write(secret)
        if len(secret) < 32:
            raise RuntimeError(f"{path} holds no usable secret; delete it to renew")
        _cache[path] = secret
        return secret


def server_secret(settings: Settings) -> bytes:
    """The secret that signs download URLs: the configured one, else the
    one kept in the data directory."""
    if settings.export_secret:
        return settings.export_secret.encode()
    return ensure_secret(settings.data_dir)


def _serializer(secret: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_SALT)


def sign(secret: bytes, job_id: str, expires_us: int) -> str:
    """A token naming the job and the end of its validity."""
    token = _serializer(secret).dumps([job_id, expires_us])
    assert isinstance(token, str)
    return token


def verify(secret: bytes, token: str, now: int | None = None) -> str:
    """The job id a token names; raises InvalidLink or ExpiredLink."""
    try:
        payload = _serializer(secret).loads(token)
    except BadSignature:
        raise InvalidLink("the link's signature is not valid") from None
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not isinstance(payload[0], str)
        or not isinstance(payload[1], int)
    ):
        raise InvalidLink("the link's payload is not one this server makes")
    job_id: str = payload[0]
    expires: int = payload[1]
    if (now_us() if now is None else now) >= expires:
        raise ExpiredLink("the link has expired; ask for a fresh one")
    return job_id


def download_path(token: str) -> str:
    """The path of the download endpoint for a token (relative to the API)."""
    return f"/exports/{token}"
