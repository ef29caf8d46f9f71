"""Export jobs through the HTTP API: files, snapshots and signed links."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lorry.clock import now_us
from lorry.config import Settings
from lorry.jobs import signing
from lorry.store import snapshot
from tests.conftest import (
    ADMIN_TOKEN,
    RunningServer,
    bulk_create,
    item_type_body,
    wait_job,
)


def _export(api: httpx.Client, expect: int = 202, **body: Any) -> dict[str, Any]:
    response = api.post("/items/export-jobs", json=body)
    assert response.status_code == expect, response.text
    if expect != 202:
        return dict(response.json())
    job = wait_job(api, response.json()["data"]["id"])
    assert job["attributes"]["status"] == "completed", job
    return job


def _download(server: RunningServer, job: dict[str, Any]) -> bytes:
    # No token: the signature is the credential.
    response = httpx.get(server.url + job["attributes"]["result"]["url"])
    assert response.status_code == 200, response.text
    return response.content


def _records(body: bytes, file_format: str) -> list[dict[str, Any]]:
    if file_format == "json":
        return list(json.loads(body))
    if file_format == "ndjson":
        return [json.loads(line) for line in body.splitlines()]
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def _all_items(api: httpx.Client, item_type: str = "product") -> list[dict[str, Any]]:
    page = api.get(
        "/items",
        params={"filter[type]": item_type, "page[limit]": 500, "order_by": "sku"},
    ).json()
    return list(page["data"])


def _products(n: int) -> list[dict[str, Any]]:
    return [
        {
            "item_type": "product",
            "name": f"Product {i}",
            "sku": f"SKU-{i:05d}",
            "price": i + 0.5,
            "stock": i,
            "active": i % 2 == 0,
            "extra": {"n": i, "tags": ["a", "b"]},
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("file_format", ["json", "ndjson", "csv"])
def test_export__each_format_holds_every_item_and_its_checksum(
    server: RunningServer, api: httpx.Client, product_type: Any, file_format: str
) -> None:
    bulk_create(api, _products(30))

    job = _export(api, filter={"type": "product"}, format=file_format)

    result = job["attributes"]["result"]
    body = _download(server, job)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["size"] == len(body)
    assert result["item_count"] == 30
    assert result["format"] == file_format
    assert result["expires_at"] > job["attributes"]["finished_at"]
    records = _records(body, file_format)
    stored = {i["id"]: i for i in _all_items(api)}
    assert sorted(r["id"] for r in records) == sorted(stored)
    if file_format == "csv":
        assert body.count(b"\r\n") == 31
        assert body.startswith(b"id,item_type,created_at,updated_at,name,sku,")
        row = next(r for r in records if r["sku"] == "SKU-00003")
        assert row["stock"] == "3" and row["active"] == "false"
        assert json.loads(row["extra"]) == {"n": 3, "tags": ["a", "b"]}
    else:
        assert all(r == stored[r["id"]] for r in records)


def test_export__empty_selection_is_a_valid_empty_file(
    server: RunningServer, api: httpx.Client, product_type: Any
) -> None:
    for file_format, expected in [("json", []), ("ndjson", []), ("csv", [])]:
        job = _export(api, filter={"type": "product"}, format=file_format)
        assert _records(_download(server, job), file_format) == expected
        assert job["attributes"]["result"]["item_count"] == 0


def test_export__fields_order_by_and_filter(
    server: RunningServer, api: httpx.Client, product_type: Any
) -> None:
    bulk_create(api, _products(10))

    job = _export(
        api,
        filter={"type": "product", "fields": {"stock": {"gte": 5}}},
        format="ndjson",
        fields=["sku", "stock"],
        order_by="-stock",
    )

    records = _records(_download(server, job), "ndjson")
    assert [r["stock"] for r in records] == [9, 8, 7, 6, 5]
    assert set(records[0]) == {
        "id",
        "item_type",
        "sku",
        "stock",
        "created_at",
        "updated_at",
        "meta",
    }
    job = _export(
        api,
        filter={"type": "product"},
        format="csv",
        fields=["stock", "sku"],
        order_by="stock",
    )
    lines = _download(server, job).decode().split("\r\n")
    assert lines[0] == "id,item_type,created_at,updated_at,sku,stock"
    assert [line.split(",")[-1] for line in lines[1:-1]] == [str(i) for i in range(10)]


def test_export__bad_options_are_422_with_a_pointer(
    api: httpx.Client, product_type: Any
) -> None:
    cases = [
        ({"format": "xml"}, "/format"),
        ({"bom": True}, "/bom"),
        ({"colour": "red"}, "/colour"),
        ({"include_relationships": 99}, "/include_relationships"),
        ({"url_ttl": 0}, "/url_ttl"),
        ({"fields": ["nope"]}, "/fields/0"),
        ({"format": "csv", "delimiter": "x"}, "/delimiter"),
    ]
    for body, pointer in cases:
        error = _export(api, expect=422, **body)["errors"][0]
        assert error["code"] == "invalid_option", body
        assert error["source"] == {"pointer": pointer}, body
    error = _export(api, expect=400, filter={"type": "nope"})["errors"][0]
    assert error["code"] == "invalid_filter"


# -- linked items ----------------------------------------------------------


def _link(key: str, field_type: str, target: str) -> dict[str, Any]:
    return {
        "api_key": key,
        "field_type": field_type,
        "validators": {"item_types": [target]},
    }


@pytest.fixture
def library(api: httpx.Client) -> dict[str, str]:
    """Two authors who are each other's friend, a third that neither knows,
    and books: a cycle, a chain, and an item linked twice."""
    person = [
        {"api_key": "name", "field_type": "string"},
        _link("friend", "link", "author"),
    ]
    book = [
        {"api_key": "title", "field_type": "string"},
        _link("authors", "links", "author"),
        _link("sequel_of", "link", "book"),
    ]
    for key, fields in (("author", person), ("book", book)):
        response = api.post("/item-types", json=item_type_body(key, fields))
        assert response.status_code == 201, response.text

    def create(item: dict[str, Any]) -> str:
        response = api.post("/items", json={"data": item})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])

    ids: dict[str, str] = {}
    ids["ann"] = create({"item_type": "author", "name": "Ann"})
    ids["bob"] = create({"item_type": "author", "name": "Bob", "friend": ids["ann"]})
    api.patch(f"/items/{ids['ann']}", json={"data": {"friend": ids["bob"]}})
    ids["cy"] = create({"item_type": "author", "name": "Cy"})
    ids["dee"] = create({"item_type": "author", "name": "Dee", "friend": ids["cy"]})
    ids["b1"] = create({"item_type": "book", "title": "One", "authors": [ids["ann"]]})
    ids["b2"] = create(
        {
            "item_type": "book",
            "title": "Two",
            "authors": [ids["ann"], ids["dee"]],
            "sequel_of": ids["b1"],
        }
    )
    ids["b3"] = create({"item_type": "book", "title": "Three", "sequel_of": ids["b2"]})
    return ids


def _order(server: RunningServer, job: dict[str, Any]) -> list[str]:
    return [r["id"] for r in _records(_download(server, job), "ndjson")]


def test_include_relationships__depth_limits_what_is_included(
    server: RunningServer, api: httpx.Client, library: dict[str, str]
) -> None:
    name = {v: k for k, v in library.items()}
    only_three = {"type": "book", "ids": [library["b3"]]}

    plain = _export(api, filter=only_three, format="ndjson")
    one = _export(api, filter=only_three, format="ndjson", include_relationships=True)
    two = _export(api, filter=only_three, format="ndjson", include_relationships=2)
    deep = _export(api, filter=only_three, format="ndjson", include_relationships=10)

    assert [name[i] for i in _order(server, plain)] == ["b3"]
    assert [name[i] for i in _order(server, one)] == ["b2", "b3"]
    assert set(map(name.get, _order(server, two))) == {"b1", "b2", "b3", "ann", "dee"}
    every = {"b1", "b2", "b3", "ann", "bob", "cy", "dee"}
    deep_order = [name[i] for i in _order(server, deep)]
    assert sorted(deep_order) == sorted(every)  # each once, cycle and all
    assert deep["attributes"]["result"]["item_count"] == 7


def test_include_relationships__targets_come_before_the_items_linking_them(
    server: RunningServer, api: httpx.Client, library: dict[str, str]
) -> None:
    name = {v: k for k, v in library.items()}
    job = _export(
        api, filter={"type": "book"}, format="ndjson", include_relationships=2
    )

    order = [name[i] for i in _order(server, job)]

    assert sorted(order) == sorted(library)
    at = order.index
    assert at("b1") < at("b2") < at("b3")
    assert at("ann") < at("b1") and at("dee") < at("b2")
    assert at("cy") < at("dee")  # a chain outside the cycle is ordered too


def test_include_relationships__ranking_stops_on_a_cycle(
    server: RunningServer,
    api: httpx.Client,
    library: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshot, "MAX_RANK_ROUNDS", 3)
    job = _export(api, filter={"type": "author"}, include_relationships=1)
    assert job["attributes"]["result"]["item_count"] == 4


# -- one snapshot ----------------------------------------------------------


def test_export__reads_one_snapshot_while_writers_go_on(
    server: RunningServer,
    api: httpx.Client,
    product_type: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bulk_create(api, _products(3000))
    before = {i["id"]: i for i in _page_all(api)}
    doomed = sorted(before)[-100:]  # read last: deleted before they are
    changed = sorted(before)[-200:-100]
    written: list[str] = []
    batches = snapshot.ExportSet.batches

    def batches_with_writes(
        self: snapshot.ExportSet, size: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        for n, rows in enumerate(batches(self, 500)):
            if n == 1:
                # Writers are not held up by the export: each of these
                # commits while its read transaction is open.
                with httpx.Client(
                    base_url=server.url,
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=10,
                ) as writer:
                    for item_id in doomed:
                        assert writer.delete(f"/items/{item_id}").status_code == 204
                    for item_id in changed:
                        response = writer.patch(
                            f"/items/{item_id}", json={"data": {"name": "changed"}}
                        )
                        assert response.status_code == 200, response.text
                    for i in range(50):
                        item = {"item_type": "product", "name": "new", "sku": f"N{i}"}
                        response = writer.post("/items", json={"data": item})
                        assert response.status_code == 201, response.text
                        written.append(response.json()["data"]["id"])
            yield rows

    monkeypatch.setattr(snapshot.ExportSet, "batches", batches_with_writes)
    job = _export(api, filter={"type": "product"}, format="ndjson")

    records = _records(_download(server, job), "ndjson")
    assert len(written) == 50
    assert len(records) == 3000 == job["attributes"]["result"]["item_count"]
    assert {r["id"]: r for r in records} == before


def _page_all(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = api.get(
            "/items",
            params={
                "filter[type]": "product",
                "page[limit]": 500,
                "page[offset]": len(found),
            },
        ).json()["data"]
        found.extend(page)
        if len(page) < 500:
            return found


# -- signed links ------------------------------------------------------------


def test_download_link__tampered_expired_and_gone(
    server: RunningServer, api: httpx.Client, product_type: Any
) -> None:
    bulk_create(api, _products(3))
    job = _export(api, format="ndjson", url_ttl=1)
    url = server.url + job["attributes"]["result"]["url"]
    assert httpx.get(url).status_code == 200
    probe = httpx.head(url)
    assert probe.status_code == 200 and probe.content == b""
    assert probe.headers["content-length"] == str(job["attributes"]["result"]["size"])

    head, _dot, signature = url.rpartition(".")
    forged = head + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    response = httpx.get(forged)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "invalid_signature"
    other = _export(api, format="json")
    other_token = other["attributes"]["result"]["url"].rpartition(".")[2]
    assert httpx.get(head + "." + other_token).status_code == 403

    time.sleep(1.1)
    response = httpx.get(url)
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "url_expired"

    fresh = api.post(f"/jobs/{job['id']}/export-url", json={"url_ttl": 60})
    assert fresh.status_code == 200, fresh.text
    link = fresh.json()["data"]
    assert link["url"] != job["attributes"]["result"]["url"]
    assert link["expires_at"] > job["attributes"]["result"]["expires_at"]
    assert httpx.get(server.url + link["url"]).status_code == 200

    assert api.delete(f"/jobs/{job['id']}").status_code == 204
    response = httpx.get(server.url + link["url"])
    assert response.status_code == 404
    assert response.json()["errors"][0]["status"] == "404"
    assert api.post(f"/jobs/{job['id']}/export-url").status_code == 404


def test_download_link__file_gone_is_404_and_resign_needs_a_token(
    server: RunningServer, api: httpx.Client, product_type: Any
) -> None:
    job = _export(api, format="csv", bom=True)
    body = _download(server, job)
    assert body.startswith(b"\xef\xbb\xbfid,item_type,")

    assert httpx.post(f"{server.url}/jobs/{job['id']}/export-url").status_code == 401
    exports = server.runtime.settings.exports_dir
    (exports / f"{job['id']}.csv").unlink()
    response = httpx.get(server.url + job["attributes"]["result"]["url"])
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "export_file_gone"


def test_signing_secret__kept_in_the_data_dir_unless_configured(
    tmp_path: Path,
) -> None:
    first = signing.ensure_secret(tmp_path)
    signing._cache.clear()  # as a restarted process finds it

    assert signing.ensure_secret(tmp_path) == first
    assert (tmp_path / signing.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    configured = Settings(data_dir=tmp_path, export_secret="s" * 40)
    assert signing.server_secret(configured) == b"s" * 40
    token = signing.sign(first, "job", now_us() + 10_000_000)
    assert signing.verify(first, token) == "job"
    with pytest.raises(signing.InvalidLink):
        signing.verify(b"s" * 40, token)


# -- a file read back ----------------------------------------------------------

_NOTE_FIELDS: list[dict[str, Any]] = [
    {"api_key": "title", "field_type": "string"},
    {"api_key": "body", "field_type": "text"},
    {"api_key": "rank", "field_type": "integer"},
    {"api_key": "score", "field_type": "float"},
    {"api_key": "done", "field_type": "boolean"},
    {"api_key": "due", "field_type": "date"},
    {"api_key": "seen_at", "field_type": "datetime"},
    {"api_key": "data", "field_type": "json"},
    {"api_key": "state", "field_type": "enum", "validators": {"enum": ["a", "b"]}},
    {"api_key": "see", "field_type": "links", "validators": {"item_types": ["note"]}},
]
_AWKWARD: list[dict[str, Any]] = [
    {"title": "Crème brûlée ☕ 日本", "body": "Ünïcode", "rank": 0},
    {"title": 'He said "hi", then left', "score": 1.25, "state": "a"},
    {"title": "line one\nline two\r\nthree", "rank": -7, "body": "\n"},
    {"title": "a,b,,c", "body": "", "score": 1e-7, "done": False},
    {"title": " padded ", "body": None, "done": True},
    {"title": "", "data": {"k": ["x", None, 1.5]}, "state": "b"},
    {"title": "big", "rank": 2**53, "score": 12345678.875, "data": ""},
    {"title": '""', "data": [1, "two", {"3": 3}], "due": "2024-02-29"},
    {"title": "tab\there;|", "seen_at": "2024-01-02T03:04:05.123456Z", "data": 0},
    {"title": "=1+2", "data": None, "see": []},
]


@pytest.mark.parametrize("file_format", ["csv", "json", "ndjson"])
def test_export_then_import__into_an_empty_server_gives_the_same_items(
    make_server: Any, file_format: str
) -> None:
    source, target = make_server(), make_server()
    clients = [
        httpx.Client(
            base_url=s.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=60,
        )
        for s in (source, target)
    ]
    for client in clients:
        body = item_type_body("note", _NOTE_FIELDS)
        assert client.post("/item-types", json=body).status_code == 201
    created = bulk_create(clients[0], [{"item_type": "note", **i} for i in _AWKWARD])
    assert created["attributes"]["status"] == "completed", created["attributes"][
        "result"
    ]["errors"]

    job = _export(clients[0], format=file_format)
    body = _download(source, job)
    content_type = {
        "csv": "text/csv",
        "json": "application/json",
        "ndjson": "application/x-ndjson",
    }[file_format]
    response = clients[1].post(
        "/items/import-jobs",
        content=body,
        params={"type": "note", "format": file_format},
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    imported = wait_job(clients[1], response.json()["data"]["id"])

    assert imported["attributes"]["status"] == "completed", imported
    before = [_without_meta(i) for i in _notes(clients[0])]
    after = [_without_meta(i) for i in _notes(clients[1])]
    assert after == before
    assert before[3]["body"] == "" and before[4]["body"] is None
    for client in clients:
        client.close()


def _notes(api: httpx.Client) -> list[dict[str, Any]]:
    page = api.get("/items", params={"filter[type]": "note", "page[limit]": 500})
    return list(page.json()["data"])


def _without_meta(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != "meta"}


def test_export_with_relationships_then_import__links_resolve_in_file_order(
    make_server: Any,
) -> None:
    source, target = make_server(), make_server()
    clients = [
        httpx.Client(
            base_url=s.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=60,
        )
        for s in (source, target)
    ]
    for client in clients:
        body = item_type_body("note", _NOTE_FIELDS)
        assert client.post("/item-types", json=body).status_code == 201
    first = clients[0].post("/items", json={"data": {"item_type": "note"}}).json()
    second = (
        clients[0]
        .post(
            "/items", json={"data": {"item_type": "note", "see": [first["data"]["id"]]}}
        )
        .json()
    )
    clients[0].post(
        "/items", json={"data": {"item_type": "note", "see": [second["data"]["id"]]}}
    )

    job = _export(clients[0], format="ndjson", include_relationships=True)
    response = clients[1].post(
        "/items/import-jobs",
        content=_download(source, job),
        params={"format": "ndjson"},
        headers={"Content-Type": "application/x-ndjson"},
    )
    imported = wait_job(clients[1], response.json()["data"]["id"])

    assert imported["attributes"]["status"] == "completed", imported["attributes"][
        "result"
    ]["errors"]
    assert [_without_meta(i) for i in _notes(clients[1])] == [
        _without_meta(i) for i in _notes(clients[0])
    ]
    for client in clients:
        client.close()
