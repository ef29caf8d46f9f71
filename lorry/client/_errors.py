"""Exceptions raised by the Lorry client.

The hierarchy::

    LorryError
    ├── ApiError                  the server answered 4xx or 5xx
    │   ├── BadRequest            400
    │   ├── AuthenticationError   401
    │   ├── PermissionDenied      403
    │   ├── NotFound              404
    │   ├── Conflict              409
    │   ├── PayloadTooLarge       413
    │   ├── UnprocessableEntity   422
    │   ├── RateLimited           429
    │   └── ServerError           5xx
    ├── TransportError            the request never got an answer
    ├── InvalidResponse           a 2xx answer the client cannot read
    └── JobWaitTimeout            the job was still running when wait gave up
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from lorry.client._models import Job

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "ErrorObject",
    "ErrorSource",
    "ExportChecksumError",
    "InvalidResponse",
    "JobWaitTimeout",
    "LorryError",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ServerError",
    "TransportError",
    "UnprocessableEntity",
    "api_error",
]


class LorryError(Exception):
    """Base class of every error the Lorry client raises."""


class ErrorSource(msgspec.Struct, frozen=True, kw_only=True):
    pointer: str | None = None
    parameter: str | None = None


class ErrorObject(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an error answer's ``errors`` list."""

    status: str | None = None
    code: str | None = None
    title: str | None = None
    detail: str | None = None
    source: ErrorSource | None = None


class _ErrorBody(msgspec.Struct):
    errors: list[ErrorObject]


_error_body_decoder = msgspec.json.Decoder(_ErrorBody)


class ApiError(LorryError):
    """The server answered with an error status."""

    def __init__(
        self, message: str, *, status_code: int, errors: list[ErrorObject]
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.errors = errors

    @property
    def code(self) -> str | None:
        """The machine-readable code of the first error, if the server sent one."""
        return self.errors[0].code if self.errors else None


class BadRequest(ApiError):
    """The request was malformed (400)."""


class AuthenticationError(ApiError):
    """The token is missing or not valid (401)."""


class PermissionDenied(ApiError):
    """The token's role may not do this (403)."""


class NotFound(ApiError):
    """The resource does not exist (404)."""


class Conflict(ApiError):
    """The request conflicts with the current state, e.g. a stale version (409)."""


class PayloadTooLarge(ApiError):
    """The body is larger than the server accepts (413)."""


class UnprocessableEntity(ApiError):
    """The body is well-formed but not valid (422)."""


class RateLimited(ApiError):
    """Too many requests (429); ``retry_after`` is in seconds when known."""

    retry_after: float | None = None


class ServerError(ApiError):
    """The server failed (5xx)."""


class TransportError(LorryError):
    """The request got no answer: connection refused, timeout, broken stream.

    For a job creation, ``idempotency_key`` is the key it was sent with: the
    server may have made the job, and the same call sent again with this
    key answers that job instead of making a second one.
    """

    def __init__(self, message: str, *, idempotency_key: str | None = None) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key


class InvalidResponse(LorryError):
    """A successful answer whose body does not have the documented shape."""


class ExportChecksumError(LorryError):
    """A downloaded export file does not have the SHA-256 its job recorded;
    nothing was kept."""


class JobWaitTimeout(LorryError):
    """The job had not finished when the wait timed out; it keeps running."""

    def __init__(self, message: str, *, job: "Job") -> None:
        super().__init__(message)
        self.job = job


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: UnprocessableEntity,
    429: RateLimited,
}


def _message(status_code: int, errors: list[ErrorObject], body: bytes) -> str:
    for error in errors:
        if error.detail or error.title:
            return error.detail or error.title or ""
    # A proxy in front of the server may answer with HTML or plain text; a
    # short piece of it says more than the bare status.
    text = body[:200].decode("utf-8", "replace").strip()
    return f"HTTP {status_code}: {text}" if text else f"HTTP {status_code}"


def api_error(
    status_code: int, body: bytes, headers: Mapping[str, str] | None = None
) -> ApiError:
    """Build the typed error for an error answer, whatever its body holds."""
    try:
        errors = _error_body_decoder.decode(body).errors
    except msgspec.MsgspecError:
        errors = []
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else ApiError
    error = cls(
        _message(status_code, errors, body), status_code=status_code, errors=errors
    )
    if isinstance(error, RateLimited) and headers is not None:
        try:
            error.retry_after = float(headers.get("retry-after", ""))
        except ValueError:
            pass
    return error
