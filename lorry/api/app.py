"""The FastAPI application: routes, error handling, and the server's life."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lorry.api.deps import require
from lorry.api.responses import JSONResponse, error_response
from lorry.api.routes import (
    bulk,
    exports,
    health,
    imports,
    item_types,
    items,
    jobs,
    migrations,
)
from lorry.errors import ApiError, ErrorItem
from lorry.server import Runtime

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    code = codes.get(exc.status_code, "http_error")
    return error_response(ApiError.one(exc.status_code, code, detail), exc.headers)


def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where, rest = (loc[0], loc[1:]) if loc else ("body", [])
        detail = f"{'.'.join(rest) or where}: {err.get('msg', 'invalid')}"
        if where == "body":
            errors.append(ErrorItem.invalid(detail, pointer="/" + "/".join(rest)))
        else:
            item = ErrorItem.make(400, "invalid_parameter", detail)
            item.source = {"parameter": ".".join(rest) or where}
            errors.append(item)
    status = 422 if any(e.status == "422" for e in errors) else 400
    return error_response(ApiError(status, errors))


class _CatchAll:
    """Answer an unexpected error with a JSON:API 500, and keep the connection.

    Starlette's own last-resort handler re-raises after answering, and the
    server then drops the keep-alive connection the client is about to reuse.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.info(
                "client went away during %s %s",
                scope["method"],
                scope["path"],
                extra={"action": "client_disconnected"},
            )
        except Exception:
            log.exception(
                "unexpected error on %s %s",
                scope["method"],
                scope["path"],
                extra={"action": "request_error"},
            )
            if not started:
                response = error_response(
                    ApiError.one(
                        500, "internal_error", "the server failed; see its log"
                    )
                )
                await response(scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start_workers()
        yield
        runtime.close()

    app = FastAPI(
        title="Lorry",
        summary="Content API with asynchronous bulk jobs",
        version="0.1.0",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        # Served below behind a token, like every endpoint but /healthz.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(HTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_middleware(_CatchAll)
    for module in (health, item_types, items, bulk, imports, exports, migrations, jobs):
        app.include_router(module.router)

    @app.get("/openapi.json", include_in_schema=False, dependencies=[require("reader")])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    return app
