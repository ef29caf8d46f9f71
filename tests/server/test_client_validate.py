"""``item_types.validate`` checks items locally; the server's dry run fails
the same items for the kinds of problem both can see."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from lorry import AsyncClient, Client
from tests.conftest import ADMIN_TOKEN, PRODUCT_FIELDS


def _product(i: int, **extra: Any) -> dict[str, Any]:
    return {"item_type": "product", "name": f"P{i}", "sku": f"S-{i}", **extra}


_ITEMS: list[Any] = [
    _product(0, price="12.5", stock="3", active="yes", seen_at="2024-01-02"),
    {"item_type": "product", "name": "x"},  # 1: sku missing
    _product(2, price="cheap"),  # 2: wrong type
    _product(3, price=-5),  # 3: out of range
    _product(4, status="gone"),  # 4: not an enum value
    _product(5, code="lower"),  # 5: pattern
    _product(6, colour="red"),  # 6: unknown field
    {"item_type": "nothing", "name": "x", "sku": "Z"},  # 7: unknown type
    "not an object",  # 8
    _product(9, sku="X" * 40),  # 9: too long
    _product(10, seen_at="yesterday", released="2024-02-30"),  # 10: two bad
    _product(11, stock=1.5),  # 11: not whole
    _product(12, active="maybe"),  # 12: not a boolean
    _product(13, created_at="2020-01-01T00:00:00Z", extra={"a": [1]}),
]
_EXPECTED = [
    (1, "sku", "required"),
    (2, "price", "invalid_type"),
    (3, "price", "invalid_value"),
    (4, "status", "invalid_value"),
    (5, "code", "invalid_value"),
    (6, "colour", "unknown_field"),
    (7, "item_type", "unknown_item_type"),
    (8, None, "invalid_item"),
    (9, "sku", "invalid_value"),
    (10, "released", "invalid_type"),
    (10, "seen_at", "invalid_type"),
    (11, "stock", "invalid_type"),
    (12, "active", "invalid_type"),
]


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, token=ADMIN_TOKEN) as client:
        client.item_types.create(
            api_key="product", name="Product", fields=PRODUCT_FIELDS
        )
        yield client


def test_validate__finds_each_problem_without_sending_the_items(
    client: Client,
) -> None:
    issues = client.item_types.validate(_ITEMS)

    assert sorted((i.index, i.field, i.code) for i in issues) == _EXPECTED
    assert all(issue.message for issue in issues)
    assert list(client.items.iter()) == []


def test_validate__agrees_with_a_dry_run_on_which_items_fail(client: Client) -> None:
    local = {issue.index for issue in client.item_types.validate(_ITEMS)}

    job = client.jobs.wait(
        client.items.bulk_create_job(_ITEMS, dry_run=True), timeout=60
    )

    remote = {error.index for error in client.jobs.iter_errors(job)}
    assert remote == local
    assert list(client.items.iter()) == []


def test_validate__cannot_see_the_store(client: Client) -> None:
    client.items.create(_product(0))
    items = [_product(0), _product(1), _product(1)]

    assert client.item_types.validate(items) == []
    job = client.jobs.wait(client.items.bulk_create_job(items, dry_run=True))
    assert [e.index for e in client.jobs.iter_errors(job)] == [0, 2]


def test_validate__with_an_item_type_for_items_that_leave_it_out(
    server: Any, client: Client
) -> None:
    items = [{"name": "a", "sku": "A"}, {"name": "b"}, _product(2, item_type="x")]

    async def run() -> list[tuple[int, str | None, str]]:
        async with AsyncClient(server.url, token=ADMIN_TOKEN) as aclient:
            issues = await aclient.item_types.validate(items, item_type="product")
        return [(i.index, i.field, i.code) for i in issues]

    assert asyncio.run(run()) == [
        (1, "sku", "required"),
        (2, "item_type", "unknown_item_type"),
    ]
