"""Migration jobs through the HTTP API: items of one type become another's."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import bulk_create, item_type_body, wait_job

ARTICLE_FIELDS: list[dict[str, Any]] = [
    {"api_key": "title", "field_type": "string", "required": True},
    {"api_key": "body", "field_type": "text"},
    {"api_key": "legacy", "field_type": "string"},
    {"api_key": "views", "field_type": "integer"},
    {
        "api_key": "status",
        "field_type": "enum",
        "validators": {"enum": ["draft", "published"]},
    },
    {
        "api_key": "related",
        "field_type": "links",
        "validators": {"item_types": ["article", "post"]},
    },
]
POST_FIELDS: list[dict[str, Any]] = [
    {
        "api_key": "headline",
        "field_type": "string",
        "required": True,
        "validators": {"length": {"max": 12}},
    },
    {"api_key": "body", "field_type": "text"},
    {"api_key": "views", "field_type": "integer"},
    {"api_key": "kind", "field_type": "string", "default": "post"},
    {"api_key": "score", "field_type": "float"},
    {
        "api_key": "related",
        "field_type": "links",
        "validators": {"item_types": ["post"]},
    },
]
REVIEW_FIELDS: list[dict[str, Any]] = [
    {"api_key": "note", "field_type": "string"},
    {
        "api_key": "subject",
        "field_type": "link",
        "validators": {"item_types": ["article", "post"]},
    },
]


@pytest.fixture
def types(api: httpx.Client) -> None:
    for key, fields in (
        ("post", POST_FIELDS),
        ("article", ARTICLE_FIELDS),
        ("review", REVIEW_FIELDS),
    ):
        response = api.post("/item-types", json=item_type_body(key, fields))
        assert response.status_code == 201, response.text


def _articles(api: httpx.Client, n: int, **extra: Any) -> list[str]:
    items = [
        {"item_type": "article", "title": f"A{i}", "legacy": f"L{i}", "views": i}
        | extra
        for i in range(n)
    ]
    job = bulk_create(api, items)
    return [d["id"] for d in job["attributes"]["result"]["data"]]


def _migrate(api: httpx.Client, expect: int = 202, **body: Any) -> dict[str, Any]:
    body = {"from": "article", "to": "post", **body}
    response = api.post("/items/migrate-jobs", json=body)
    assert response.status_code == expect, response.text
    if expect != 202:
        return dict(response.json())
    assert response.json()["data"]["attributes"]["kind"] == "migrate"
    return wait_job(api, response.json()["data"]["id"])


def _all(api: httpx.Client, type_key: str) -> list[dict[str, Any]]:
    page = api.get(
        "/items",
        params={"filter[type]": type_key, "page[limit]": 500, "order_by": "id"},
    )
    return list(page.json()["data"])


def _result(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["attributes"]["result"])


def test_rename_drop_and_constant__a_copy_keeps_the_sources(
    api: httpx.Client, types: None
) -> None:
    sources = _articles(api, 3)
    job = _migrate(
        api,
        mapping={"title": "headline", "legacy": None},
        constants={"score": 4.5},
    )

    assert job["attributes"]["status"] == "completed", job
    result = _result(job)
    assert (result["successful_items"], result["created_items"]) == (3, 3)
    details = job["attributes"]["details"]
    assert details["field_map"] == {
        "title": "headline",
        "body": "body",
        "legacy": None,
        "views": "views",
        "status": None,
        "related": "related",
    }
    posts = {p["meta"]["source_id"]: p for p in result["data"]}
    assert sorted(posts) == sorted(sources)
    first = posts[sources[0]]
    assert first["item_type"] == "post"
    assert first["id"] not in sources
    assert (first["headline"], first["views"], first["score"]) == ("A0", 0, 4.5)
    assert first["kind"] == "post"  # not fed: the field's default
    assert "legacy" not in first and "title" not in first
    assert len(_all(api, "post")) == 3
    assert len(_all(api, "article")) == 3
    # The content keeps its creation time.
    original = api.get(f"/items/{sources[0]}").json()["data"]
    assert first["created_at"] == original["created_at"]


def test_filter_selects_the_items_to_migrate(api: httpx.Client, types: None) -> None:
    _articles(api, 4, status="draft")
    published = _articles(api, 2, status="published")
    job = _migrate(
        api,
        mapping={"title": "headline"},
        filter={"fields": {"status": {"eq": "published"}}},
    )

    assert job["attributes"]["details"]["total"] == 2
    assert sorted(d["meta"]["source_id"] for d in _result(job)["data"]) == sorted(
        published
    )
    assert len(_all(api, "post")) == 2


def test_move__links_anywhere_follow_the_moved_items(
    api: httpx.Client, types: None
) -> None:
    sources = _articles(api, 5)
    reviews = bulk_create(
        api,
        [
            {"item_type": "review", "note": f"r{i}", "subject": sources[i]}
            for i in range(5)
        ],
    )
    review_ids = [d["id"] for d in _result(reviews)["data"]]
    job = _migrate(api, mapping={"title": "headline"}, delete_source=True, chunk_size=2)

    assert job["attributes"]["status"] == "completed", job
    new_of = {d["meta"]["source_id"]: d["id"] for d in _result(job)["data"]}
    assert _all(api, "article") == []
    for i, review_id in enumerate(review_ids):
        review = api.get(f"/items/{review_id}").json()["data"]
        assert review["subject"] == new_of[sources[i]]
        assert review["meta"]["version"] == 2
        assert review["meta"]["updated_by_job"] == job["id"]
    for source_id in sources:
        assert api.get(f"/items/{source_id}").status_code == 404


def test_move__refused_while_a_link_field_cannot_hold_the_target_type(
    api: httpx.Client, types: None
) -> None:
    note_fields = [
        {"api_key": "about", "field_type": "link",
         "validators": {"item_types": ["article"]}},
    ]  # fmt: skip
    assert api.post("/item-types", json=item_type_body("note", note_fields)).is_success
    _articles(api, 1)

    error = _migrate(
        api, expect=422, mapping={"title": "headline"}, delete_source=True
    )["errors"][0]

    assert error["code"] == "link_field_blocks_move"
    assert error["source"] == {"pointer": "/delete_source"}
    assert "note.about" in error["detail"]


def test_copy__links_among_the_copies_point_at_the_copies(
    api: httpx.Client, types: None
) -> None:
    a = _articles(api, 4)
    # Links run forwards and backwards across chunks of 2, and to self.
    links = {0: [a[3], a[1]], 1: [a[0]], 2: [a[2]], 3: [a[0], a[2]]}
    changes = [{"id": a[i], "attributes": {"related": ids}} for i, ids in links.items()]
    response = api.post("/items/bulk-update-jobs", json={"data": changes})
    wait_job(api, response.json()["data"]["id"])
    review = bulk_create(api, [{"item_type": "review", "subject": a[1]}])
    review_id = _result(review)["data"][0]["id"]

    job = _migrate(api, mapping={"title": "headline"}, chunk_size=2)

    assert job["attributes"]["status"] == "completed", job
    copy_of = {d["meta"]["source_id"]: d["id"] for d in _result(job)["data"]}
    for i, ids in links.items():
        copy = api.get(f"/items/{copy_of[a[i]]}").json()["data"]
        assert copy["related"] == [copy_of[x] for x in ids]
        original = api.get(f"/items/{a[i]}").json()["data"]
        assert original["related"] == ids
    assert api.get(f"/items/{review_id}").json()["data"]["subject"] == a[1]


def test_dry_run__writes_nothing_and_reports_counts_and_a_sample(
    api: httpx.Client, types: None
) -> None:
    sources = _articles(api, 6)
    api.patch(f"/items/{sources[4]}", json={"data": {"title": "far too long a title"}})

    job = _migrate(
        api,
        mapping={"title": "headline"},
        constants={"kind": "news"},
        delete_source=True,
        dry_run=True,
        chunk_size=4,
    )

    attrs = job["attributes"]
    assert attrs["status"] == "completed_with_errors", job
    details = attrs["details"]
    assert (details["would_create"], details["would_fail"]) == (5, 1)
    sample = details["sample"]
    assert len(sample) == 5
    assert [s["meta"]["source_id"] for s in sample] == [
        s for s in sources if s != sources[4]
    ]
    assert sample[0]["headline"] == "A0"
    assert sample[0]["kind"] == "news"
    assert sample[0]["id"] is None
    assert attrs["result"]["data"] == []
    assert attrs["result"]["errors"][0]["id"] == sources[4]
    assert _all(api, "post") == []
    assert len(_all(api, "article")) == 6


def test_items_that_fail_the_target_schema_are_reported_one_by_one(
    api: httpx.Client, types: None
) -> None:
    sources = _articles(api, 4)
    api.patch(f"/items/{sources[1]}", json={"data": {"title": "much too long here"}})
    api.patch(f"/items/{sources[3]}", json={"data": {"views": 7}})

    job = _migrate(api, mapping={"title": "headline"}, delete_source=True, chunk_size=2)

    attrs = job["attributes"]
    assert attrs["status"] == "completed_with_errors"
    result = attrs["result"]
    assert (result["successful_items"], result["failed_items"]) == (3, 1)
    error = result["errors"][0]
    assert (error["index"], error["id"], error["field"]) == (1, sources[1], "headline")
    assert error["code"] == "invalid_value"
    # The item as it would have been written, ready to fix.
    failed = result["failed_items_data"][0]
    assert failed["item_type"] == "post"
    assert failed["headline"] == "much too long here"
    # A failed item is not deleted, even by a move.
    remaining = _all(api, "article")
    assert [r["id"] for r in remaining] == [sources[1]]


@pytest.mark.parametrize(
    ("body", "pointer", "code"),
    [
        ({"from": "nope"}, "/from", "unknown_item_type"),
        ({"to": "nope"}, "/to", "unknown_item_type"),
        ({"mapping": {"title": "missing"}}, "/mapping/title", "unknown_field"),
        ({"mapping": {"nothing": "headline"}}, "/mapping/nothing", "unknown_field"),
        (
            {"mapping": {"title": "headline"}, "constants": {"views": "many"}},
            "/constants/views",
            "invalid_value",
        ),
        (
            {"mapping": {"title": "headline"}, "constants": {"colour": "red"}},
            "/constants/colour",
            "unknown_field",
        ),
        ({}, "/mapping", "unfilled_field"),
        ({"mapping": {"title": "headline"}, "extra": 1}, "/extra", "invalid_option"),
        (
            {"mapping": {"title": "headline", "legacy": "body"}},
            "/mapping/legacy",
            "invalid_option",
        ),
    ],
    ids=[
        "unknown-from",
        "unknown-to",
        "unknown-target-field",
        "unknown-source-field",
        "bad-constant",
        "constant-for-no-field",
        "required-field-unfed",
        "unknown-option",
        "mapped-onto-a-field-carried-by-name",
    ],
)
def test_bad_requests_are_422_naming_the_field(
    api: httpx.Client, types: None, body: dict[str, Any], pointer: str, code: str
) -> None:
    _articles(api, 1)
    error = _migrate(api, expect=422, **body)["errors"][0]
    assert error["source"] == {"pointer": pointer}, error
    assert error["code"] == code, error


def test_nothing_selected_is_422(api: httpx.Client, types: None) -> None:
    error = _migrate(api, expect=422, mapping={"title": "headline"})["errors"][0]
    assert error["code"] == "empty_job"
    assert error["source"] == {"pointer": "/filter"}
