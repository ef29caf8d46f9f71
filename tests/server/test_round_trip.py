"""Round trip, proven by example generation: any items exported to CSV, JSON
or NDJSON and imported into an empty server come back the same, ids and
timestamps included, unicode, quotes, line breaks, empty strings, nulls and
numbers included.

Set LORRY_ROUND_TRIPS to run more examples than the default.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import (
    ADMIN_TOKEN,
    RunningServer,
    bulk_create,
    item_type_body,
    wait_job,
)

FIELDS = [
    {"api_key": "s", "field_type": "string"},
    {"api_key": "t", "field_type": "text"},
    {"api_key": "i", "field_type": "integer"},
    {"api_key": "f", "field_type": "float"},
    {"api_key": "b", "field_type": "boolean"},
    {"api_key": "d", "field_type": "datetime"},
    {"api_key": "j", "field_type": "json"},
]
_CONTENT_TYPES = {
    "csv": "text/csv",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
}
_AWKWARD = [
    "",
    " ",
    "007",
    "null",
    "NULL",
    '"',
    '""',
    "=1+2",
    "a,b;c|d\te",
    "\r\n",
    "\r",
]

texts = st.one_of(
    st.sampled_from(_AWKWARD),
    st.text(
        st.characters(
            codec="utf-8",
            exclude_categories=["Cs"],
            exclude_characters="\x00",  # refused at creation (SQLite's JSON)
        ),
        max_size=24,
    ),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3)
    ),
    max_leaves=8,
)
items = st.fixed_dictionaries(
    {},
    optional={
        "s": st.none() | texts,
        "t": st.none() | texts,
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        "f": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "b": st.none() | st.booleans(),
        "d": st.none()
        | st.datetimes(
            min_value=dt.datetime(1, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=st.just(dt.UTC),
        ).map(lambda d: d.isoformat()),
        "j": json_values,
    },
)


def _listing(api: httpx.Client, type_key: str) -> list[dict[str, Any]]:
    page = api.get(
        "/items",
        params={"filter[type]": type_key, "page[limit]": 500, "order_by": "id"},
    ).json()
    return [{k: v for k, v in i.items() if k != "meta"} for i in page["data"]]


def test_export_then_import_gives_the_same_items(
    make_server: Callable[..., RunningServer],
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
    names = (f"t{n}" for n in itertools.count())

    @settings(
        max_examples=int(os.environ.get("LORRY_ROUND_TRIPS", "40")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        batch=st.lists(items, min_size=1, max_size=6),
        file_format=st.sampled_from(sorted(_CONTENT_TYPES)),
        bom=st.booleans(),
    )
    def round_trip(batch: list[dict[str, Any]], file_format: str, bom: bool) -> None:
        type_key = next(names)
        for client in clients:
            response = client.post("/item-types", json=item_type_body(type_key, FIELDS))
            assert response.status_code == 201, response.text
        made = bulk_create(clients[0], [{"item_type": type_key, **i} for i in batch])
        assert made["attributes"]["status"] == "completed", made["attributes"]["result"]

        body: dict[str, Any] = {"filter": {"type": type_key}, "format": file_format}
        if file_format == "csv":
            body["bom"] = bom
        response = clients[0].post("/items/export-jobs", json=body)
        assert response.status_code == 202, response.text
        job = wait_job(clients[0], response.json()["data"]["id"])
        assert job["attributes"]["status"] == "completed", job
        download = httpx.get(source.url + job["attributes"]["result"]["url"])
        assert download.status_code == 200

        response = clients[1].post(
            "/items/import-jobs",
            content=download.content,
            params={"type": type_key},
            headers={"Content-Type": _CONTENT_TYPES[file_format]},
        )
        assert response.status_code == 202, response.text
        back = wait_job(clients[1], response.json()["data"]["id"])
        assert back["attributes"]["status"] == "completed", back["attributes"]["result"]
        assert _listing(clients[1], type_key) == _listing(clients[0], type_key)

    try:
        round_trip()
    finally:
        for client in clients:
            client.close()
