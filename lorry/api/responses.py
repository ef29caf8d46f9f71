"""JSON responses encoded with msgspec, and JSON:API error responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

from lorry.errors import ApiError

__all__ = ["JSONResponse", "error_response"]

_encode = msgspec.json.Encoder().encode


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _encode(content)


def error_response(
    exc: ApiError, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=headers)
