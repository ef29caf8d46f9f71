"""Fixtures shared by every test tier: a real server on a real socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from lorry.api.app import create_app
from lorry.config import Settings
from lorry.server import open_runtime

ADMIN_TOKEN = "test-admin-token"
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
DATASETS = Path(
    os.environ.get("LORRY_DATASETS")
    or Path(__file__).resolve().parents[2] / "shared" / "datasets"
)


class RunningServer:
    def __init__(self, settings: Settings) -> None:
        self.runtime = open_runtime(settings)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(self.runtime), log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    servers: list[RunningServer] = []

    def make(**overrides: Any) -> RunningServer:
        settings = Settings(
            data_dir=tmp_path / f"data{len(servers)}",
            admin_token=ADMIN_TOKEN,
            **{"worker_mode": "thread", **overrides},
        )
        server = RunningServer(settings)
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
    ) as client:
        yield client


def wait_job(api: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a job until it ends; assert that progress never went back."""
    deadline = time.monotonic() + timeout
    last = -1.0
    while True:
        response = api.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()["data"]
        progress = job["attributes"]["progress"]
        assert progress >= last, f"progress went back from {last} to {progress}"
        last = progress
        if job["attributes"]["status"] in FINAL:
            assert progress == 1
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not end: {job}")
        time.sleep(0.02)


def item_type_body(api_key: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": {
            "type": "item_type",
            "attributes": {
                "api_key": api_key,
                "name": api_key.title(),
                "fields": fields,
            },
        }
    }


PRODUCT_FIELDS: list[dict[str, Any]] = [
    {"api_key": "name", "field_type": "string", "required": True},
    {
        "api_key": "sku",
        "field_type": "string",
        "unique": True,
        "required": True,
        "validators": {"length": {"min": 1, "max": 32}},
    },
    {"api_key": "price", "field_type": "float", "validators": {"range": {"min": 0}}},
    {"api_key": "stock", "field_type": "integer"},
    {"api_key": "active", "field_type": "boolean"},
    {
        "api_key": "status",
        "field_type": "enum",
        "default": "draft",
        "validators": {"enum": ["draft", "active", "archived"]},
    },
    {"api_key": "released", "field_type": "date"},
    {"api_key": "seen_at", "field_type": "datetime"},
    {"api_key": "code", "field_type": "string", "validators": {"pattern": "^[A-Z]"}},
    {"api_key": "extra", "field_type": "json"},
]


@pytest.fixture
def product_type(api: httpx.Client) -> dict[str, Any]:
    response = api.post("/item-types", json=item_type_body("product", PRODUCT_FIELDS))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def bulk_create(api: httpx.Client, items: list[Any], **options: Any) -> dict[str, Any]:
    response = api.post("/items/bulk-create-jobs", json={"data": items, **options})
    assert response.status_code == 202, response.text
    return wait_job(api, response.json()["data"]["id"])
