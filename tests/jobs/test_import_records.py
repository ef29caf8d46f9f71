"""Records of import files becoming items, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from lorry.jobs.import_records import Converted, RecordPlan, snake_case
from lorry.schema.fields import FieldDef, ItemTypeDef
from lorry.schema.validator import ItemFailure


def _type(**fields: str) -> ItemTypeDef:
    defs = [FieldDef(api_key=k, field_type=t) for k, t in fields.items()]
    return ItemTypeDef(
        pk=1,
        id="T",
        api_key="thing",
        name="Thing",
        fields=defs,
        created_at=0,
        updated_at=0,
    )


THING = _type(
    sku="string",
    price="float",
    stock="integer",
    tags="links",
    extra="json",
    on="boolean",
)


def _plan(**options: Any) -> RecordPlan:
    return RecordPlan([THING], {"type": "thing", **options})


def _item(plan: RecordPlan, record: dict[str, Any]) -> dict[str, Any]:
    converted = plan.convert(record)
    assert isinstance(converted, Converted), converted
    return converted.item


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("movieId", "movie_id"),
        ("ProductID", "product_id"),
        ("Unit Price", "unit_price"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_csv_text_is_read_by_field_type() -> None:
    plan = _plan(format="csv")
    item = _item(
        plan,
        {
            "SKU": "007",
            "price": "",
            "stock": None,
            "tags": '["a", "b"]',
            "extra": '{"k": [1, 2]}',
            "on": "",
        },
    )
    assert item == {
        "item_type": "thing",
        "sku": "007",
        "price": None,
        "stock": None,
        "tags": ["a", "b"],
        "extra": {"k": [1, 2]},
        "on": None,
    }
    assert _item(plan, {"tags": "x, y,,z"})["tags"] == ["x", "y", "z"]


def test_bad_json_text_names_the_field() -> None:
    failure = _plan(format="csv").convert({"extra": "{nope"})
    assert isinstance(failure, ItemFailure)
    assert (failure.code, failure.field) == ("invalid_value", "extra")


@pytest.mark.parametrize(
    ("options", "text", "number"),
    [
        ({"decimal": ",", "thousands": "."}, "1.234,5", "1234.5"),
        ({"decimal": ".", "thousands": ","}, "1,234.5", "1234.5"),
        ({"decimal": ",", "thousands": " "}, "1\u00a0234,5", "1234.5"),
        ({"decimal": ",", "thousands": ""}, " 0,25 ", "0.25"),
    ],
)
def test_number_formats(options: dict[str, str], text: str, number: str) -> None:
    assert _item(_plan(format="csv", **options), {"price": text})["price"] == number


def test_json_values_are_not_touched_and_strings_stay_for_the_validator() -> None:
    plan = _plan(format="json")
    item = _item(plan, {"sku": 7, "stock": "12", "tags": "a,b", "extra": "text"})
    # Only a number for a text field is read as text; the rest is left to
    # the validator, which reads "12" as the integer field's 12.
    assert item == {
        "item_type": "thing",
        "sku": "7",
        "stock": "12",
        "tags": "a,b",
        "extra": "text",
    }


def test_mapping_unknown_columns_and_system_columns() -> None:
    plan = _plan(format="csv", mapping={"Article": "sku", "Legacy": ""})
    converted = plan.convert(
        {
            "id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "item_type": "thing",
            "created_at": "",
            "Article": "A",
            "Legacy": "x",
            "Colour": "red",
            "meta": None,
        }
    )
    assert isinstance(converted, Converted)
    assert converted.item == {"item_type": "thing", "sku": "A"}
    assert converted.item_id == "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert plan.unknown == ["Colour"]
    assert plan.field_columns()["sku"] == "Article"


def test_reject_unknown_and_unknown_types() -> None:
    failure = _plan(unknown_columns="reject").convert({"Colour": "red"})
    assert isinstance(failure, ItemFailure) and failure.code == "unknown_field"
    plan = RecordPlan([THING], {})
    missing = plan.convert({"sku": "A"})
    assert isinstance(missing, ItemFailure) and missing.field == "item_type"
    other = plan.convert({"item_type": "nope"})
    assert isinstance(other, ItemFailure) and other.code == "unknown_item_type"


def test_rows_of_several_types_leave_the_others_columns_empty() -> None:
    other = ItemTypeDef(
        pk=2,
        id="U",
        api_key="maker",
        name="Maker",
        fields=[FieldDef(api_key="company_name", field_type="string")],
        created_at=0,
        updated_at=0,
    )
    plan = RecordPlan([THING, other], {"format": "csv", "unknown_columns": "reject"})
    row = {"item_type": "thing", "sku": "A", "CompanyName": None, "company_name": ""}

    converted = plan.convert(row)

    assert isinstance(converted, Converted) and converted.item == {
        "item_type": "thing",
        "sku": "A",
    }
    assert plan.unknown == []
    failed = plan.convert({**row, "company_name": "Acme"})
    assert isinstance(failed, ItemFailure)
    assert (failed.code, failed.field) == ("invalid_value", "company_name")
    assert "another item type" in failed.message
    # Without an item_type column the file is of one type: strangers are named.
    single = RecordPlan([THING, other], {"type": "thing", "format": "csv"})
    single.convert({"sku": "A", "company_name": None})
    assert single.unknown == ["company_name"]
