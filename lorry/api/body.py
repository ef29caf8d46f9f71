"""Decoding small JSON request bodies into typed structs, with clear errors."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from fastapi import Request

from lorry.errors import ApiError

__all__ = [
    "MAX_SMALL_BODY",
    "check_json_type",
    "content_type",
    "decode_body",
    "decode_json",
    "parse_body",
    "pointer_of",
    "read_body",
]

T = TypeVar("T")

#: Bodies of non-bulk requests; bulk jobs stream theirs (lorry.api.routes.bulk).
MAX_SMALL_BODY = 16 << 20
_PATH_RE = re.compile(r" - at `\$([^`]*)`$")


def pointer_of(message: str) -> tuple[str, str]:
    """Split a msgspec message into (text, JSON pointer)."""
    m = _PATH_RE.search(message)
    if m is None:
        return message, ""
    path = m.group(1)
    pointer = re.sub(r"\[(\d+)\]", r"/\1", path).replace(".", "/")
    return message[: m.start()], pointer


async def read_body(request: Request, limit: int, advice: str = "") -> bytes:
    """The whole body, refused (413) as soon as it passes ``limit`` bytes.

    Read as it comes, so that a chunked body, which declares no length,
    cannot make the server hold more than the limit.
    """
    too_large = ApiError.one(
        413, "body_too_large", f"the body is larger than {limit} bytes{advice}"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


async def decode_body(request: Request, into: type[T]) -> T:
    return parse_body(request, await read_body(request, MAX_SMALL_BODY), into)


def parse_body(request: Request, body: bytes, into: type[T]) -> T:
    """Decode a small JSON body that was read already."""
    if not body.strip():
        raise ApiError.invalid("the request has no body", code="empty_body")
    check_json_type(request)
    decoded: T = decode_json(body, into)
    return decoded


def decode_json(
    raw: bytes | msgspec.Raw, into: Any, pointer: str = "", invalid: str = ""
) -> Any:
    """Decode JSON into ``into``; every way it can fail is a 4xx.

    A value of the wrong shape is a 422 at ``pointer`` (or where msgspec
    says) saying ``invalid`` (or what msgspec says); text that is not JSON,
    or nested too deeply to read, is a 400.
    """
    try:
        return msgspec.json.decode(raw, type=into)
    except msgspec.ValidationError as exc:
        text, where = pointer_of(str(exc))
        raise ApiError.invalid(
            invalid or text, pointer=pointer or where or "/"
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError.one(
            400, "invalid_json", f"the body is not JSON: {exc}"
        ) from None
    except RecursionError:
        raise ApiError.one(
            400, "invalid_json", "the body is nested too deeply"
        ) from None


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def check_json_type(request: Request) -> None:
    ctype = content_type(request)
    if ctype not in ("", "application/json", "application/vnd.api+json"):
        raise ApiError.one(
            415, "unsupported_media_type", f"send application/json, not {ctype!r}"
        )
