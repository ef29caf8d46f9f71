"""Fixtures for CLI tests: an in-memory fake of the HTTP API behind the CLI's
client factory, and a runner that invokes ``lorry`` commands in-process."""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from lorry.cli import app, common
from lorry.client import Client

TOKEN = "cli-token"
URL = "http://lorry.test"


def _errors(status: int, code: str, detail: str) -> httpx.Response:
    body = {"errors": [{"status": str(status), "code": code, "detail": detail}]}
    return httpx.Response(status, json=body)


def _job(job_id: str, status: str, progress: float, **extra: Any) -> dict[str, Any]:
    attributes = {"kind": "bulk_create", "status": status, "progress": progress}
    return {"id": job_id, "type": "job", "attributes": {**attributes, **extra}}


class FakeServer:
    """Just enough of the API for the CLI: item types, bulk create, jobs."""

    def __init__(self) -> None:
        self.item_types: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.uploads: list[list[Any]] = []
        self.clients: list[tuple[str, str | None]] = []
        self.final_status = "completed"
        self.item_errors: list[dict[str, Any]] = []
        self.job_error: dict[str, Any] | None = None
        self.polls_before_end = 1
        self.unprocessed = 0

    def add_type(self, api_key: str, *fields: dict[str, Any]) -> None:
        self.item_types[api_key] = {
            "id": f"T-{api_key}",
            "type": "item_type",
            "attributes": {"api_key": api_key, "name": api_key, "fields": list(fields)},
        }

    def job_state(self, finished: bool) -> dict[str, Any]:
        total = len(self.uploads[-1]) if self.uploads else 0
        if not finished:
            details = {"phase": "running", "total": total, "processed": total // 2}
            return _job("01JOB", "in_progress", 0.5, details=details)
        failed = len(self.item_errors)
        result = {
            "processed_items": total,
            "successful_items": total - failed,
            "failed_items": failed,
            "skipped_items": 0,
            "unprocessed_items": self.unprocessed,
            "errors": self.item_errors,
        }
        return _job(
            "01JOB",
            self.final_status,
            1.0,
            details={"phase": "finished", "total": total, "processed": total},
            result=None if self.job_error else result,
            error=self.job_error,
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _errors(401, "unauthenticated", "missing or invalid API token")
        method, path = request.method, request.url.path
        if (method, path) == ("GET", "/item-types"):
            data = list(self.item_types.values())
            return httpx.Response(200, json={"data": data, "meta": {"total_count": 1}})
        if (method, path) == ("POST", "/item-types"):
            attributes = json.loads(request.content)["data"]["attributes"]
            self.add_type(attributes["api_key"], *attributes["fields"])
            return httpx.Response(
                201, json={"data": self.item_types[attributes["api_key"]]}
            )
        if method == "GET" and path.startswith("/item-types/"):
            found = self.item_types.get(path.rsplit("/", 1)[1])
            if found is None:
                return _errors(404, "not_found", "no such item type")
            return httpx.Response(200, json={"data": found})
        if (method, path) == ("POST", "/items/bulk-create-jobs"):
            lines = request.content.splitlines()
            self.uploads.append([json.loads(line) for line in lines])
            return httpx.Response(202, json={"data": _job("01JOB", "queued", 0.0)})
        if (method, path) == ("GET", "/jobs"):
            data = [self.job_state(True), _job("01OLD", "failed", 1.0)]
            return httpx.Response(200, json={"data": data, "meta": {"total_count": 9}})
        if method == "POST" and path == "/jobs/01JOB/cancel":
            if self.final_status != "cancelled":
                detail = f"job 01JOB has already ended ({self.final_status})"
                return _errors(409, "job_finished", detail)
            return httpx.Response(200, json={"data": self.job_state(True)})
        if method == "GET" and path == "/jobs/01JOB":
            self.polls_before_end -= 1
            finished = self.polls_before_end < 0
            return httpx.Response(200, json={"data": self.job_state(finished)})
        return _errors(404, "not_found", f"no route {method} {path}")

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.delenv("LORRY_URL", raising=False)
    monkeypatch.delenv("LORRY_TOKEN", raising=False)

    def make_client(url: str, token: str | None) -> Client:
        fake.clients.append((url, token))
        return Client(url, token=token, transport=httpx.MockTransport(fake.handle))

    monkeypatch.setattr(common, "make_client", make_client)
    return fake


@pytest.fixture
def lorry() -> Callable[..., Result]:
    """Run ``lorry ARGS`` with the fake server's URL and token in the env."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        environment = {"LORRY_URL": URL, "LORRY_TOKEN": TOKEN, **(env or {})}
        return runner.invoke(app, list(args), env=environment)

    return run
