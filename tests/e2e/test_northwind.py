"""Acceptance: Northwind suppliers, categories and products imported with the
Python client, products linked to both by their source ids; the products
exported with their relationships and imported into a fresh server give the
same items, in every format.

Reads ../shared/datasets/northwind; without it the test is skipped and says
so.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lorry.client import Client
from tests.conftest import ADMIN_TOKEN, DATASETS, RunningServer

NORTHWIND = DATASETS / "northwind"

pytestmark = [
    pytest.mark.dataset,
    pytest.mark.skipif(
        not (NORTHWIND / "products.csv").exists(),
        reason=f"the Northwind dataset is absent (looked in {NORTHWIND})",
    ),
]


def _strings(*keys: str) -> list[dict[str, Any]]:
    return [{"api_key": k, "field_type": "string"} for k in keys]


def _link(key: str, target: str) -> dict[str, Any]:
    return {
        "api_key": key,
        "field_type": "link",
        "required": True,
        "validators": {"item_types": [target]},
    }


TYPES: dict[str, list[dict[str, Any]]] = {
    "supplier": [
        {"api_key": "supplier_id", "field_type": "integer", "unique": True},
        {"api_key": "company_name", "field_type": "string", "required": True},
        *_strings(
            "contact_name",
            "contact_title",
            "address",
            "city",
            "region",
            "postal_code",
            "country",
            "phone",
            "fax",
            "home_page",
        ),
    ],
    "category": [
        {"api_key": "category_id", "field_type": "integer", "unique": True},
        {"api_key": "category_name", "field_type": "string", "required": True},
        {"api_key": "description", "field_type": "text"},
        {"api_key": "picture", "field_type": "string"},
    ],
    "product": [
        {"api_key": "product_id", "field_type": "integer", "unique": True},
        {"api_key": "product_name", "field_type": "string", "required": True},
        _link("supplier", "supplier"),
        _link("category", "category"),
        {"api_key": "quantity_per_unit", "field_type": "string"},
        {"api_key": "unit_price", "field_type": "float"},
        {"api_key": "units_in_stock", "field_type": "integer"},
        {"api_key": "units_on_order", "field_type": "integer"},
        {"api_key": "reorder_level", "field_type": "integer"},
        {"api_key": "discontinued", "field_type": "boolean"},
    ],
}


def _rows(name: str) -> list[dict[str, str]]:
    with open(NORTHWIND / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _client(server: RunningServer) -> Client:
    client = Client(server.url, token=ADMIN_TOKEN, timeout=60)
    for key, fields in TYPES.items():
        client.item_types.create(api_key=key, name=key.title(), fields=fields)
    return client


def _everything(client: Client) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in TYPES:
        page = client.items.list(
            filter={"type": key}, order_by="id", page={"limit": 500}
        )
        out.extend({k: v for k, v in item.items() if k != "meta"} for item in page)
    return out


def _load(client: Client) -> None:
    for name, key in (("suppliers.csv", "supplier"), ("categories.csv", "category")):
        job = client.jobs.wait(client.items.import_job(NORTHWIND / name, type=key))
        assert job.attributes.status == "completed", job.attributes.result
    job = client.items.import_job(
        NORTHWIND / "products.csv",
        type="product",
        mapping={"SupplierID": "supplier", "CategoryID": "category"},
        link_by={"supplier": "supplier_id", "category": "category_id"},
    )
    job = client.jobs.wait(job)
    assert job.attributes.status == "completed", job.attributes.result


def _check_loaded(items: list[dict[str, Any]]) -> None:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_type.setdefault(item["item_type"], []).append(item)
    suppliers = {s["supplier_id"]: s for s in by_type["supplier"]}
    categories = {c["category_id"]: c for c in by_type["category"]}
    assert (len(suppliers), len(categories), len(by_type["product"])) == (29, 8, 77)
    for row in _rows("suppliers.csv"):
        got = suppliers[int(row["SupplierID"])]
        assert got["company_name"] == row["CompanyName"]
        assert got["address"] == row["Address"]
        assert got["postal_code"] == row["PostalCode"]  # leading zeros kept
        assert got["region"] == (row["Region"] or None)
        assert got["home_page"] == (row["HomePage"] or None)
    for row in _rows("categories.csv"):
        assert categories[int(row["CategoryID"])]["description"] == row["Description"]
    products = {p["product_id"]: p for p in by_type["product"]}
    for row in _rows("products.csv"):
        got = products[int(row["ProductID"])]
        assert got["supplier"] == suppliers[int(row["SupplierID"])]["id"]
        assert got["category"] == categories[int(row["CategoryID"])]["id"]
        assert got["unit_price"] == float(row["UnitPrice"])
        assert got["discontinued"] is (row["Discontinued"] == "1")
        assert got["quantity_per_unit"] == row["QuantityPerUnit"]


@pytest.mark.parametrize("file_format", ["ndjson", "json", "csv"])
def test_northwind_loads_exports_and_comes_back_the_same(
    make_server: Callable[..., RunningServer], tmp_path: Path, file_format: str
) -> None:
    source, fresh = _client(make_server()), _client(make_server())
    _load(source)
    before = _everything(source)
    _check_loaded(before)

    job = source.items.export_job(
        filter={"type": "product"}, format=file_format, include_relationships=True
    )
    job = source.jobs.wait(job)
    assert job.attributes.status == "completed"
    assert job.attributes.result is not None
    assert job.attributes.result.item_count == 29 + 8 + 77
    path = source.exports.download(job, tmp_path / f"products.{file_format}")

    # Every column of the file is some type's field: none is unknown, even
    # where a row of one type leaves the columns of the others empty.
    back = fresh.jobs.wait(fresh.items.import_job(path, unknown_columns="reject"))
    assert back.attributes.status == "completed", back.attributes.result
    assert back.attributes.details.unknown_columns == []
    assert _everything(fresh) == before
    source.close()
    fresh.close()
