import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lorry import Client
from lorry.client import (
    ApiError,
    AuthenticationError,
    BadRequest,
    Conflict,
    InvalidResponse,
    LorryError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    UnprocessableEntity,
)


def _error_body(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {
                "status": str(status),
                "code": code,
                "title": "Title",
                "detail": detail,
                "source": {"pointer": "/data/attributes/sku"},
            }
        ]
    }


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequest),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (413, PayloadTooLarge),
        (422, UnprocessableEntity),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
        (418, ApiError),
    ],
)
def test_error_answers_raise_typed_errors(
    client_for: Callable[..., tuple[Client, Any]],
    status: int,
    error_class: type[ApiError],
) -> None:
    body = _error_body(status, "some_code", f"detail of {status}")
    client, _ = client_for(lambda request: httpx.Response(status, json=body))

    with pytest.raises(error_class) as caught:
        client.items.find("01A")

    error = caught.value
    assert type(error) is error_class
    assert isinstance(error, LorryError)
    assert error.status_code == status
    assert str(error) == f"detail of {status}"
    assert error.code == "some_code"
    assert error.errors[0].source is not None
    assert error.errors[0].source.pointer == "/data/attributes/sku"


def test_conflict_carries_the_stale_version_code(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    body = _error_body(409, "stale_version", "item 01A is at version 3")
    client, _ = client_for(lambda request: httpx.Response(409, json=body))

    with pytest.raises(Conflict) as caught:
        client.items.update("01A", {"price": 1}, version=2)

    assert caught.value.code == "stale_version"


def test_rate_limited_reads_retry_after(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    client, _ = client_for(
        lambda request: httpx.Response(
            429,
            json=_error_body(429, "rate_limited", "slow"),
            headers={"Retry-After": "7"},
        )
    )

    with pytest.raises(RateLimited) as caught:
        client.jobs.find("01JOB")

    assert caught.value.retry_after == 7.0


def test_non_json_502_is_still_a_typed_server_error(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    client, _ = client_for(
        lambda request: httpx.Response(502, text="<html>Bad Gateway</html>")
    )

    with pytest.raises(ServerError) as caught:
        client.jobs.find("01JOB")

    assert caught.value.status_code == 502
    assert caught.value.errors == []
    assert str(caught.value) == "HTTP 502: <html>Bad Gateway</html>"


def test_connection_error_becomes_transport_error(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client, _ = client_for(refuse)

    with pytest.raises(TransportError) as caught:
        client.item_types.list()

    assert str(caught.value) == (
        "cannot reach server at http://lorry.test: [Errno 111] Connection refused"
    )
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_read_timeout_becomes_transport_error(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client, _ = client_for(slow)

    with pytest.raises(TransportError, match=r"request to http://lorry\.test failed"):
        client.jobs.find("01JOB")


def test_a_2xx_body_of_the_wrong_shape_is_invalid_response(
    client_for: Callable[..., tuple[Client, Any]],
) -> None:
    client, _ = client_for(lambda request: httpx.Response(200, json={"nope": 1}))

    with pytest.raises(InvalidResponse):
        client.jobs.find("01JOB")


def test_token_and_url_default_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LORRY_URL", "http://from-env:9000/")
    monkeypatch.setenv("LORRY_TOKEN", "env-token")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "meta": {"total_count": 0}})

    with Client(transport=httpx.MockTransport(handler)) as client:
        client.item_types.list()

    assert str(seen[0].url) == "http://from-env:9000/item-types"
    assert seen[0].headers["Authorization"] == "Bearer env-token"


def test_no_token_means_no_authorization_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "meta": {"total_count": 0}})

    with Client("http://lorry.test", transport=httpx.MockTransport(handler)) as client:
        client.item_types.list()

    assert "Authorization" not in seen[0].headers


def test_one_debug_line_per_request_and_never_the_token(
    client_for: Callable[..., tuple[Client, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = client_for(
        lambda request: httpx.Response(200, json={"data": [], "meta": {}})
    )

    with caplog.at_level(logging.DEBUG, logger="lorry"):
        client.item_types.list()
        client.item_types.list()

    lorry_records = [r for r in caplog.records if r.name.startswith("lorry")]
    assert len(lorry_records) == 2
    assert all(r.levelno == logging.DEBUG for r in lorry_records)
    assert "GET http://lorry.test/item-types -> 200" in lorry_records[0].getMessage()
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
