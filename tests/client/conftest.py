"""Fixtures for client tests: canned JSON:API answers and a recording transport."""

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from lorry import AsyncClient, Client

Handler = Callable[[httpx.Request], httpx.Response]

BASE_URL = "http://lorry.test"
TOKEN = "s3cret-token"


def job_resource(
    job_id: str = "01JOB",
    *,
    status: str = "queued",
    progress: float = 0.0,
    kind: str = "bulk_create",
    details: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": job_id,
        "type": "job",
        "attributes": {
            "kind": kind,
            "status": status,
            "progress": progress,
            "details": details or {"phase": "queued"},
            "options": {},
            "result": result,
            "error": error,
            "created_at": "2026-12-03T10:00:00.000000Z",
            "started_at": None,
            "finished_at": None,
            "expires_at": "2026-12-10T10:00:00.000000Z",
        },
        "links": {"self": f"/jobs/{job_id}"},
    }


def item_type_resource(api_key: str = "product") -> dict[str, Any]:
    return {
        "id": "01TYPE",
        "type": "item_type",
        "attributes": {
            "api_key": api_key,
            "name": api_key.title(),
            "fields": [{"api_key": "sku", "field_type": "string", "unique": True}],
            "created_at": "2026-12-03T10:00:00.000000Z",
            "updated_at": "2026-12-03T10:00:00.000000Z",
        },
    }


class Recorder:
    """A MockTransport handler that keeps every request, with its body read."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self._handler(request)

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture(autouse=True)
def _no_lorry_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LORRY_URL", raising=False)
    monkeypatch.delenv("LORRY_TOKEN", raising=False)


@pytest.fixture
def client_for() -> Iterator[Callable[[Handler], tuple[Client, Recorder]]]:
    """Build a sync client whose every request goes to ``handler``."""
    clients: list[Client] = []

    def make(handler: Handler) -> tuple[Client, Recorder]:
        recorder = Recorder(handler)
        client = Client(BASE_URL, token=TOKEN, transport=httpx.MockTransport(recorder))
        clients.append(client)
        return client, recorder

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def async_client_for() -> Callable[[Handler], tuple[AsyncClient, Recorder]]:
    """Build an async client; the test closes it inside its own event loop."""

    def make(handler: Handler) -> tuple[AsyncClient, Recorder]:
        recorder = Recorder(handler)
        transport = httpx.MockTransport(recorder)
        return AsyncClient(BASE_URL, token=TOKEN, transport=transport), recorder

    return make


@pytest.fixture
def job() -> Callable[..., dict[str, Any]]:
    return job_resource


@pytest.fixture
def item_type() -> Callable[..., dict[str, Any]]:
    return item_type_resource
