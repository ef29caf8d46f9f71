"""Request dependencies: the runtime, and the token behind the request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from lorry.errors import ApiError
from lorry.server import Runtime
from lorry.store import tokens
from lorry.store.tokens import Token

__all__ = ["CurrentToken", "RuntimeDep", "current_token", "get_runtime"]

_ROLE_RANK = {"reader": 0, "editor": 1, "admin": 2}


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def current_token(request: Request, runtime: RuntimeDep) -> Token:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError.one(
            401,
            "not_authenticated",
            "send an API token as 'Authorization: Bearer <token>'",
        )
    with runtime.db.read() as conn:
        token = tokens.authenticate(conn, secret.strip())
    if token is None:
        raise ApiError.one(401, "invalid_token", "the API token is unknown or revoked")
    return token


CurrentToken = Annotated[Token, Depends(current_token)]


def require(role: str) -> Any:
    def check(token: CurrentToken) -> Token:
        if _ROLE_RANK[token.role] < _ROLE_RANK[role]:
            raise ApiError.one(
                403, "forbidden", f"this needs a token with the {role} role"
            )
        return token

    return Depends(check)
