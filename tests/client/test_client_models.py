import datetime
import subprocess
import sys

import msgspec
import pytest

import lorry
import lorry.client
from lorry.client import FINAL_STATUSES, Job, Page
from lorry.client._query import encode_order_by, encode_param


def test_job_decoding_ignores_unknown_keys_and_fills_defaults() -> None:
    raw = b"""{"id": "01JOB", "type": "job", "surprise": 1, "attributes": {
        "kind": "bulk_create", "status": "failed", "new_key": [1, 2],
        "details": {"phase": "finished", "brand_new": true},
        "error": {"code": "input_unreadable", "message": "bad body"}}}"""

    job = msgspec.json.decode(raw, type=Job)

    assert job.attributes.status == "failed"
    assert job.attributes.progress == 0.0
    assert job.attributes.details.phase == "finished"
    assert job.attributes.details.processed is None
    assert job.attributes.result is None
    assert job.attributes.error is not None
    assert job.attributes.error.code == "input_unreadable"
    assert job.is_finished


@pytest.mark.parametrize(
    ("status", "finished"),
    [
        ("queued", False),
        ("in_progress", False),
        ("completed", True),
        ("completed_with_errors", True),
        ("failed", True),
        ("cancelled", True),
    ],
)
def test_is_finished(status: str, finished: bool) -> None:
    job = msgspec.convert(
        {"id": "x", "attributes": {"kind": "bulk_create", "status": status}}, Job
    )
    assert job.is_finished is finished
    assert (status in FINAL_STATUSES) is finished


def test_page_is_a_list_with_paging_facts() -> None:
    page = Page([1, 2], total_count=10, next_offset=2)

    assert page == [1, 2]
    assert (page.total_count, page.next_offset) == (10, 2)


def test_encode_param__nesting_lists_and_scalars() -> None:
    assert encode_param(
        "filter",
        {
            "type": ["product", "category"],
            "ids": ("01A", "01B"),
            "fields": {
                "published": {"eq": False},
                "created_at": {"gte": datetime.date(2020, 1, 2)},
                "title": {"in": ["x, y", 3]},
                "price": {"gt": 10, "lt": None},
            },
        },
    ) == [
        ("filter[type]", "product,category"),
        ("filter[ids]", "01A,01B"),
        ("filter[fields][published][eq]", "false"),
        ("filter[fields][created_at][gte]", "2020-01-02"),
        ("filter[fields][title][in]", '["x, y",3]'),
        ("filter[fields][price][gt]", "10"),
    ]
    assert encode_param("page", None) == []
    assert encode_order_by(["-price", "name"]) == [("order_by", "-price,name")]


def test_public_names_are_listed_sorted_and_exist() -> None:
    names = lorry.client.__all__
    assert names == sorted(names, key=lambda name: (not name.isupper(), name))
    assert all(hasattr(lorry.client, name) for name in names)
    assert lorry.__all__ == ["AsyncClient", "Client", "__version__"]
    assert lorry.__version__ == "0.1.0"


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    code = (
        "import sys, lorry, lorry.client; "
        "print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'fastapi', 'sqlalchemy', 'starlette', 'uvicorn'} "
        "or m.startswith(('lorry.api', 'lorry.store', 'lorry.jobs'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
