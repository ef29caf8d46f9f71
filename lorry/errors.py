"""Errors that reach an API client, shaped as JSON:API error objects.

Raised anywhere on the server side (schema checks, repositories, routes); the
API turns each into a response with its status and error list. Per-item job
errors are not exceptions: they are rows (lorry.jobs.outcome).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["ApiError", "ErrorItem"]

_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable entity",
    500: "Internal server error",
}


class ErrorItem(msgspec.Struct, omit_defaults=True):
    status: str
    code: str
    title: str
    detail: str
    source: dict[str, str] | None = None
    #: Where in an uploaded file, for errors about its content.
    meta: dict[str, Any] | None = None

    @classmethod
    def make(
        cls,
        status: int,
        code: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
    ) -> ErrorItem:
        source: dict[str, str] | None = None
        if pointer is not None:
            source = {"pointer": pointer}
        elif parameter is not None:
            source = {"parameter": parameter}
        title = _TITLES.get(status, "Error")
        return cls(str(status), code, title, detail, source)

    @classmethod
    def invalid(
        cls, detail: str, *, pointer: str | None = None, code: str = "invalid"
    ) -> ErrorItem:
        return cls.make(422, code, detail, pointer=pointer)


class ApiError(Exception):
    """An error answer: an HTTP status and one or more error objects."""

    def __init__(self, status: int, errors: list[ErrorItem]) -> None:
        super().__init__(errors[0].detail if errors else str(status))
        self.status = status
        self.errors = errors

    @classmethod
    def one(
        cls,
        status: int,
        code: str,
        detail: str,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
    ) -> ApiError:
        item = ErrorItem.make(
            status, code, detail, pointer=pointer, parameter=parameter
        )
        return cls(status, [item])

    @classmethod
    def invalid(
        cls, detail: str, *, pointer: str | None = None, code: str = "invalid"
    ) -> ApiError:
        return cls(422, [ErrorItem.invalid(detail, pointer=pointer, code=code)])

    @classmethod
    def not_found(cls, what: str, key: Any) -> ApiError:
        return cls.one(404, "not_found", f"no {what} {key!r}")

    def to_body(self) -> dict[str, Any]:
        return {"errors": [msgspec.to_builtins(e) for e in self.errors]}
