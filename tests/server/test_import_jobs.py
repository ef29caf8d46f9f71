"""Import jobs through the HTTP API: real files, as people write them."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import (
    ADMIN_TOKEN,
    PRODUCT_FIELDS,
    bulk_create,
    item_type_body,
    wait_job,
)


def _import(
    api: httpx.Client,
    body: bytes,
    content_type: str = "text/csv",
    expect: int = 202,
    **params: Any,
) -> dict[str, Any]:
    response = api.post(
        "/items/import-jobs",
        content=body,
        params={
            k: v for k, v in {"type": "product", **params}.items() if v is not None
        },
        headers={"Content-Type": content_type},
    )
    assert response.status_code == expect, response.text
    if expect != 202:
        return dict(response.json())
    return wait_job(api, response.json()["data"]["id"])


def _items(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    page = api.get(
        "/items",
        params={"filter[type]": "product", "page[limit]": 500, "order_by": "sku"}
        | params,
    ).json()
    return list(page["data"])


def _fields(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: item.get(k) for k in keys}


def _result(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["attributes"]["result"])


# -- CSV as people write it ------------------------------------------------


def test_excel_csv__bom_semicolons_decimal_comma_and_unknown_columns(
    api: httpx.Client, product_type: Any
) -> None:
    body = (
        "\ufeffSKU;Name;Price;Stock;Colour\r\n"
        "A-1;Chair;1.234,50;7;red\r\n"
        'A-2;"Table; oak";0,99;;blue\r\n'
    ).encode()
    job = _import(api, body, decimal=",", thousands=".")

    assert job["attributes"]["status"] == "completed", job
    assert job["attributes"]["details"]["unknown_columns"] == ["Colour"]
    got = [_fields(i, "sku", "name", "price", "stock") for i in _items(api)]
    assert got == [
        {"sku": "A-1", "name": "Chair", "price": 1234.5, "stock": 7},
        {"sku": "A-2", "name": "Table; oak", "price": 0.99, "stock": None},
    ]


def test_latin1_file__decodes_when_told_and_names_line_and_byte_when_not(
    api: httpx.Client, product_type: Any
) -> None:
    body = "sku,name\nA-1,Crème\nA-2,Façade\n".encode("latin-1")

    error = _import(api, body, expect=422)["errors"][0]
    assert error["code"] == "undecodable"
    assert "line 2" in error["detail"]
    # "sku,name\n" is 9 bytes and "A-1,Cr" 6 more: the "è" is at offset 15.
    assert error["meta"] == {"line": 2, "byte": 15}
    assert _items(api) == []
    assert api.get("/jobs").json()["data"] == []

    job = _import(api, body, encoding="latin-1")
    assert [i["name"] for i in _items(api)] == ["Crème", "Façade"]
    assert job["attributes"]["result"]["successful_items"] == 2


@pytest.mark.parametrize("newline", ["\r\n", "\n", "\r"])
def test_line_ends_quoted_newlines_and_error_lines(
    api: httpx.Client, product_type: Any, newline: str
) -> None:
    rows = [
        "sku,name,price",
        'A-1,"two' + newline + 'lines",1',
        "",
        'A-2,"say ""hi""",-5',
        "A-3,short",
        "A-4,ok,2",
    ]
    job = _import(api, newline.join(rows).encode())

    assert job["attributes"]["status"] == "completed_with_errors"
    errors = _result(job)["errors"]
    assert [(e["index"], e["line"], e["code"]) for e in errors] == [
        (1, 5, errors[0]["code"]),
        (2, 6, "wrong_cell_count"),
    ]
    assert errors[0]["field"] == "price"
    assert errors[0]["column"] == "price"
    assert "line 6" in errors[1]["message"]
    got = [_fields(i, "sku", "name") for i in _items(api)]
    assert got == [
        {"sku": "A-1", "name": "two" + newline + "lines"},
        {"sku": "A-4", "name": "ok"},
    ]
    assert _result(job)["failed_items_data"][0] == {
        "sku": "A-2",
        "name": 'say "hi"',
        "price": "-5",
    }


def test_header_problems_are_422_and_store_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    for header in ("sku,name,sku", "sku,,name"):
        error = _import(api, f"{header}\nA,B,C\n".encode(), expect=422)["errors"][0]
        assert error["code"] == "bad_header", error
        assert "line 1" in error["detail"]
    assert api.get("/jobs").json()["data"] == []


def test_unknown_columns_rejected_on_request(
    api: httpx.Client, product_type: Any
) -> None:
    body = b"sku,name,colour\nA,B,red\n"
    error = _import(api, body, expect=422, unknown_columns="reject")["errors"][0]
    assert error["code"] == "unknown_columns"
    assert "colour" in error["detail"]

    job = _import(api, body, unknown_columns="reject", **{"mapping[colour]": ""})
    assert job["attributes"]["status"] == "completed"


def test_mapping_empty_cells_and_quoted_empty_strings(
    api: httpx.Client, product_type: Any
) -> None:
    body = b'Article No,Title,code,stock\nA-1,"",,\nA-2,Named,,3\nA-3,Quoted,"",4\n'
    job = _import(api, body, **{"mapping[Article No]": "sku", "mapping[Title]": "name"})

    # A quoted empty cell is an empty string, which code's pattern (^[A-Z])
    # refuses; an empty cell is null, which it lets through.
    errors = _result(job)["errors"]
    assert [(e["line"], e["field"], e["column"]) for e in errors] == [
        (4, "code", "code")
    ]
    got = [_fields(i, "sku", "name", "code", "stock") for i in _items(api)]
    assert got == [
        {"sku": "A-1", "name": "", "code": None, "stock": None},
        {"sku": "A-2", "name": "Named", "code": None, "stock": 3},
    ]


def test_tab_and_pipe_files_are_sniffed(api: httpx.Client, product_type: Any) -> None:
    _import(api, b"sku\tname\tprice\nT-1\tTab\t1.5\n")
    _import(api, b"sku|name|price\nP-1|Pipe|2\n")
    got = [_fields(i, "sku", "price") for i in _items(api)]
    assert got == [{"sku": "P-1", "price": 2.0}, {"sku": "T-1", "price": 1.5}]


# -- JSON as people write it -----------------------------------------------


def test_json_array__types_come_from_the_fields_not_from_guessing(
    api: httpx.Client, product_type: Any
) -> None:
    body = (
        b'[\n {"sku": "007", "name": 12, "price": "3.5", "stock": "12"},\n'
        b' {"sku": "J-2", "name": "x", "price": NaN},\n'
        b' {"sku": "J-3", "name": "y", "stock": "twelve"}\n]'
    )
    job = _import(api, body, "application/json")

    errors = _result(job)["errors"]
    assert [(e["index"], e["line"], e["field"]) for e in errors] == [
        (1, 3, "price"),
        (2, 4, "stock"),
    ]
    items = _items(api)
    assert len(items) == 1
    # "007" stays a string (sku is a string field); "12" becomes 12.
    assert _fields(items[0], "sku", "price", "stock") == {
        "sku": "007",
        "price": 3.5,
        "stock": 12,
    }
    assert items[0]["name"] in ("12", 12) and job["attributes"]["result"]


def test_nan_infinity_and_out_of_range_numbers_fail_naming_the_field(
    api: httpx.Client,
) -> None:
    fields = [
        {"api_key": "sku", "field_type": "string"},
        {"api_key": "weight", "field_type": "float"},
        {"api_key": "data", "field_type": "json"},
    ]
    assert api.post("/item-types", json=item_type_body("product", fields)).is_success
    body = (
        b'[{"sku": "a", "weight": NaN}, {"sku": "b", "weight": -Infinity},\n'
        b' {"sku": "c", "weight": "Infinity"}, {"sku": "d", "weight": 1e999},\n'
        b' {"sku": 1e999, "weight": 1.5}, {"sku": "f", "data": {"x": NaN}}]'
    )
    job = _import(api, body, "application/json")

    errors = _result(job)["errors"]
    assert [(e["index"], e["line"], e["field"]) for e in errors] == [
        (0, 1, "weight"),
        (1, 1, "weight"),
        (2, 2, "weight"),
        (3, 2, "weight"),
        (5, 3, None),  # inside a json field: the record is not JSON
    ]
    assert all("finite" in e["message"] or "range" in e["message"] for e in errors[:4])
    # A number for a string field is read as the text the file wrote.
    assert [(i["sku"], i["weight"]) for i in _items(api)] == [("1e999", 1.5)]

    csv_job = _import(api, b"sku,weight\ng,NaN\nh,inf\ni,2.5\n")
    assert [e["line"] for e in _result(csv_job)["errors"]] == [2, 3]


def test_ndjson__lines_named_and_deep_nesting_bounded(
    api: httpx.Client, product_type: Any
) -> None:
    deep = b'{"sku": "N-3", "name": "deep", "extra": ' + b"[" * 100 + b"]" * 100 + b"}"
    body = (
        b'{"sku": "N-1", "name": "one"}\r\n'
        b"\n"
        b"not json\n" + deep + b"\n"
        b'{"sku": "N-4", "name": "four"}'
    )
    job = _import(api, body, "application/x-ndjson")

    errors = _result(job)["errors"]
    assert [(e["index"], e["line"]) for e in errors] == [(1, 3), (2, 4)]
    assert errors[0]["code"] == "invalid_json"
    assert [i["sku"] for i in _items(api)] == ["N-1", "N-4"]


def test_format_from_parameter_or_content_type(
    api: httpx.Client, product_type: Any
) -> None:
    error = _import(api, b"sku\nX\n", "application/octet-stream", expect=415)
    assert error["errors"][0]["code"] == "unsupported_media_type"
    job = _import(api, b"sku,name\nX,Y\n", "application/octet-stream", format="csv")
    assert job["attributes"]["status"] == "completed"


# -- What an import does ---------------------------------------------------


def test_upsert_by__updates_holders_creates_the_rest_counts_both(
    api: httpx.Client, product_type: Any
) -> None:
    bulk_create(
        api,
        [
            {"item_type": "product", "sku": "U-1", "name": "old", "stock": 1},
            {"item_type": "product", "sku": "U-2", "name": "keep", "stock": 2},
        ],
    )
    body = b"sku,name\nU-1,new\nU-3,fresh\nU-3,fresher\n"
    job = _import(api, body, upsert_by="sku", chunk_size=2)

    result = _result(job)
    assert job["attributes"]["status"] == "completed", result
    assert (result["created_items"], result["updated_items"]) == (1, 2)
    got = [_fields(i, "sku", "name", "stock") for i in _items(api)]
    assert got == [
        {"sku": "U-1", "name": "new", "stock": 1},
        {"sku": "U-2", "name": "keep", "stock": 2},
        {"sku": "U-3", "name": "fresher", "stock": None},
    ]


def test_upsert_by_must_be_a_unique_field(api: httpx.Client, product_type: Any) -> None:
    error = _import(api, b"sku\nA\n", expect=422, upsert_by="name")["errors"][0]
    assert error["source"] == {"parameter": "upsert_by"}


def test_skip_duplicates_and_not_unique_errors_name_the_line(
    api: httpx.Client, product_type: Any
) -> None:
    body = b"sku,name\nD-1,a\nD-1,b\nD-2,c\n"
    job = _import(api, body)
    errors = _result(job)["errors"]
    assert [(e["line"], e["code"], e["column"]) for e in errors] == [
        (3, "not_unique", "sku")
    ]
    job = _import(api, body, skip_duplicates="true")
    assert _result(job)["skipped_items"] == 3


def test_links_resolved_by_a_unique_field_of_the_target(api: httpx.Client) -> None:
    supplier = [{"api_key": "code", "field_type": "integer", "unique": True}]
    assert api.post("/item-types", json=item_type_body("supplier", supplier)).is_success
    fields = [
        {"api_key": "sku", "field_type": "string", "unique": True},
        {
            "api_key": "supplier",
            "field_type": "link",
            "validators": {"item_types": ["supplier"]},
        },
    ]
    assert api.post("/item-types", json=item_type_body("product", fields)).is_success
    _import(api, b"code\n1\n2\n", type="supplier")

    job = _import(
        api,
        b"sku,supplierID\nL-1,2\nL-2,9\n",
        **{"mapping[supplierID]": "supplier", "link_by[supplier]": "code"},
    )

    errors = _result(job)["errors"]
    assert [(e["line"], e["field"], e["column"]) for e in errors] == [
        (3, "supplier", "supplierID")
    ]
    suppliers = {
        i["code"]: i["id"]
        for i in api.get("/items", params={"filter[type]": "supplier"}).json()["data"]
    }
    assert [i["supplier"] for i in _items(api)] == [suppliers[2]]


def test_dry_run_checks_against_the_store_and_writes_nothing(
    api: httpx.Client, product_type: Any
) -> None:
    bulk_create(api, [{"item_type": "product", "sku": "R-1", "name": "x"}])
    before = _items(api)
    body = b"sku,name,price\nR-1,dup,1\nR-2,new,2\nR-3,bad,-1\n"

    job = _import(api, body, dry_run="true")

    result = _result(job)
    assert job["attributes"]["status"] == "completed_with_errors"
    assert result["successful_items"] == 1
    assert [(e["line"], e["code"]) for e in result["errors"]] == [
        (2, "not_unique"),
        (4, result["errors"][1]["code"]),
    ]
    assert result["data"] == []
    assert _items(api) == before


def test_an_export_shaped_file_keeps_ids_and_timestamps(
    api: httpx.Client, product_type: Any
) -> None:
    made = bulk_create(api, [{"item_type": "product", "sku": "E-1", "name": "x"}])
    item = made["attributes"]["result"]["data"][0]
    api.delete(f"/items/{item['id']}")
    body = (
        "id,item_type,created_at,updated_at,sku,name\n"
        f"{item['id']},product,{item['created_at']},{item['updated_at']},E-1,x\n"
        "not-an-id,product,,,E-2,y\n"
    ).encode()

    job = _import(api, body)

    errors = _result(job)["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(3, "id")]
    back = api.get(f"/items/{item['id']}").json()["data"]
    assert _fields(back, "sku", "created_at", "updated_at") == _fields(
        item, "sku", "created_at", "updated_at"
    )


def test_links_to_items_of_the_same_file_hold_and_fail_with_them(
    api: httpx.Client,
) -> None:
    supplier = [{"api_key": "code", "field_type": "integer", "unique": True}]
    assert api.post("/item-types", json=item_type_body("supplier", supplier)).is_success
    fields = [
        {"api_key": "sku", "field_type": "string", "unique": True},
        {
            "api_key": "supplier",
            "field_type": "link",
            "validators": {"item_types": ["supplier"]},
        },
    ]
    assert api.post("/item-types", json=item_type_body("product", fields)).is_success
    taken = _import(api, b"code\n3\n", type="supplier")
    assert taken["attributes"]["status"] == "completed"
    ids = [f"01J0000000000000000000000{n}" for n in range(4)]
    lines = [
        {"id": ids[0], "item_type": "supplier", "code": 1},
        {"id": ids[1], "item_type": "supplier", "code": "not a number"},
        {"id": ids[2], "item_type": "supplier", "code": 3},  # code taken
        {"item_type": "product", "sku": "P-0", "supplier": ids[0]},
        {"item_type": "product", "sku": "P-1", "supplier": ids[1]},
        {"item_type": "product", "sku": "P-2", "supplier": ids[2]},
    ]
    body = "\n".join(json.dumps(x) for x in lines).encode()

    job = _import(api, body, "application/x-ndjson", type=None)

    errors = {e["index"]: e["code"] for e in _result(job)["errors"]}
    assert errors == {
        1: errors[1],
        2: "not_unique",
        4: "link_not_found",
        5: "link_not_found",
    }
    assert [(i["sku"], i["supplier"]) for i in _items(api)] == [("P-0", ids[0])]
    assert api.get(f"/items/{ids[0]}").json()["data"]["code"] == 1
    for gone in ids[1:3]:
        assert api.get(f"/items/{gone}").status_code == 404


def test_long_cells__kept_up_to_the_item_limit_then_failing_alone_then_refused(
    make_server: Any,
) -> None:
    server = make_server(max_item_bytes=10_000)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=server.url, headers=headers) as api:
        fields = [*PRODUCT_FIELDS, {"api_key": "description", "field_type": "text"}]
        api.post("/item-types", json=item_type_body("product", fields))
        fine = "é,\n" * 1_500  # quoted, with line breaks: 6,000 bytes of JSON
        body = f'sku,name,description\nA,a,"{fine}"\nB,b,{"x" * 12_000}\nC,c,ok\n'

        job = _import(api, body.encode())

        errors = _result(job)["errors"]
        assert [(e["index"], e["line"], e["code"]) for e in errors] == [
            (1, 1_503, "item_too_large")
        ]
        assert "'description' alone holds 12002" in errors[0]["message"]
        assert [i["sku"] for i in _items(api)] == ["A", "C"]
        assert _items(api)[0]["description"] == fine

        # Past four times the item limit the file is refused whole.
        refused = _import(api, b"sku,name\nZ," + b"y" * 50_000 + b"\n", expect=422)
        assert refused["errors"][0]["code"] == "record_too_large"
        assert refused["errors"][0]["meta"] == {"line": 2}
        assert len(_items(api)) == 2


def test_lone_surrogates_fail_alone_and_the_job_still_renders(
    api: httpx.Client, product_type: Any
) -> None:
    body = (
        b'[{"sku": "S-1", "name": "a", "\\udc00": "x"},'
        b' {"sku": "S-2", "name": "\\ud800", "price": NaN},'
        b' {"sku": "S-3", "name": "\\ud83d\\ude00"}]'
    )
    job = _import(api, body, "application/json")

    errors = _result(job)["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(0, "\\udc00"), (1, "name")]
    assert all("surrogate" in e["message"] for e in errors)
    assert [i["name"] for i in _items(api)] == ["\U0001f600"]
    assert api.get("/jobs").status_code == 200


def test_encodings_that_are_not_text_are_422_and_byte_order_marks_say_utf16(
    api: httpx.Client, product_type: Any
) -> None:
    for codec in ("rot13", "base64", "zlib"):
        error = _import(api, b"sku,name\nX,y\n", encoding=codec, expect=422)
        assert error["errors"][0]["source"] == {"parameter": "encoding"}, codec
    for codec in ("utf-16", "utf-32"):
        body = f"sku,name\n{codec},Façade\n".encode(codec)
        assert _import(api, body)["attributes"]["status"] == "completed"
    assert [(i["sku"], i["name"]) for i in _items(api)] == [
        ("utf-16", "Façade"),
        ("utf-32", "Façade"),
    ]


def test_two_columns_for_one_field_are_refused_not_silently_merged(
    api: httpx.Client, product_type: Any
) -> None:
    error = _import(api, b"sku,SKU,name\nD1,D2,x\n", expect=422)["errors"][0]
    assert error["code"] == "ambiguous_columns"
    assert "'sku' and 'SKU'" in error["detail"]
    mapped = _import(api, b"sku,name\nA,b\n", expect=422, **{"mapping[name]": "sku"})
    assert mapped["errors"][0]["code"] == "ambiguous_columns"

    job = _import(
        api,
        b'{"sku": "J-1", "name": "x", "Name": "y"}\n{"sku": "J-2", "name": "z"}\n',
        "application/x-ndjson",
    )
    errors = _result(job)["errors"]
    assert [(e["index"], e["code"]) for e in errors] == [(0, "ambiguous_columns")]
    assert [i["sku"] for i in _items(api)] == ["J-2"]


def test_a_json_value_as_deep_as_an_item_may_hold_imports_back(
    api: httpx.Client, product_type: Any
) -> None:
    deepest = 0
    for _ in range(63):
        deepest = [deepest]
    made = bulk_create(api, [{"item_type": "product", "sku": "D", "name": "d"}])
    item = made["attributes"]["result"]["data"][0]
    patched = api.patch(f"/items/{item['id']}", json={"data": {"extra": deepest}})
    assert patched.status_code == 200, patched.text
    api.delete(f"/items/{item['id']}")
    line = json.dumps(
        {"item_type": "product", "sku": "D", "name": "d", "extra": deepest}
    )

    job = _import(api, line.encode(), "application/x-ndjson")

    assert job["attributes"]["status"] == "completed", _result(job)["errors"]
    assert _items(api)[0]["extra"] == deepest
