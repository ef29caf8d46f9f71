import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import Result

Lorry = Callable[..., Result]


def _with_upload(server: Any, count: int = 4) -> None:
    server.uploads.append([{"item_type": "movie"}] * count)


def test_list__passes_filters_and_prints_a_table(server: Any, lorry: Lorry) -> None:
    _with_upload(server)

    result = lorry(
        "jobs", "list", "--status", "completed,failed", "--kind", "bulk_create"
    )

    assert result.exit_code == 0, result.output
    assert server.last.url.path == "/jobs"
    assert server.last.url.params.multi_items() == [
        ("filter[status]", "completed,failed"),
        ("filter[kind]", "bulk_create"),
        ("page[limit]", "30"),
    ]
    assert "01JOB" in result.stdout
    assert "01OLD" in result.stdout
    assert "2 of 9 jobs" in result.stderr


def test_list__json(server: Any, lorry: Lorry) -> None:
    _with_upload(server)

    result = lorry("jobs", "list", "--json")

    assert [job["id"] for job in json.loads(result.stdout)] == ["01JOB", "01OLD"]


def test_show__json_and_human(server: Any, lorry: Lorry) -> None:
    _with_upload(server)
    server.polls_before_end = 0

    as_json = lorry("jobs", "show", "01JOB", "--json")
    human = lorry("jobs", "show", "01JOB")

    assert json.loads(as_json.stdout)["attributes"]["status"] == "completed"
    assert human.exit_code == 0
    assert "completed" in human.stdout
    assert "processed 4" in human.stdout


def test_show__missing_job_exits_1(server: Any, lorry: Lorry) -> None:
    result = lorry("jobs", "show", "01NOPE")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: no route GET /jobs/01NOPE")


@pytest.mark.parametrize(
    ("status", "exit_code"),
    [
        ("completed", 0),
        ("completed_with_errors", 3),
        ("failed", 1),
        ("cancelled", 1),
    ],
)
def test_wait__exit_code_follows_the_final_status(
    server: Any, lorry: Lorry, status: str, exit_code: int
) -> None:
    _with_upload(server)
    server.final_status = status
    server.polls_before_end = 2

    result = lorry("jobs", "wait", "01JOB")

    assert result.exit_code == exit_code
    assert f"job 01JOB {status}" in result.stderr
    polls = [r for r in server.requests if r.url.path == "/jobs/01JOB"]
    # One find draws the bar, one poll still sees in_progress, one sees the end.
    assert len(polls) == 3


def test_wait__timeout_exits_1_and_leaves_the_job_running(
    server: Any, lorry: Lorry
) -> None:
    _with_upload(server)
    server.polls_before_end = 10_000

    result = lorry("jobs", "wait", "01JOB", "--timeout", "0.1")

    assert result.exit_code == 1
    assert "job 01JOB is still in_progress after 0.1 s" in result.stderr
    assert {r.method for r in server.requests} == {"GET"}


def test_cancel__prints_the_counts_and_exits_0(server: Any, lorry: Lorry) -> None:
    _with_upload(server, 10)
    server.final_status = "cancelled"
    server.unprocessed = 4

    result = lorry("jobs", "cancel", "01JOB", "--json")

    assert result.exit_code == 0, result.output
    assert (server.last.method, server.last.url.path) == ("POST", "/jobs/01JOB/cancel")
    assert "job 01JOB cancelled" in result.stderr
    assert "never run 4" in result.stderr
    assert json.loads(result.stdout)["attributes"]["status"] == "cancelled"


def test_cancel__a_finished_job_exits_1(server: Any, lorry: Lorry) -> None:
    _with_upload(server)
    server.final_status = "completed"

    result = lorry("jobs", "cancel", "01JOB")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: job 01JOB has already ended (completed)")


def test_cancel__without_a_token_exits_2(server: Any, lorry: Lorry) -> None:
    result = lorry("jobs", "cancel", "01JOB", env={"LORRY_TOKEN": ""})

    assert result.exit_code == 2
    assert server.requests == []
