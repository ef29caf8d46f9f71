import io
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lorry.cli.mapping import ItemBuilder, coerce, snake_case
from lorry.cli.readers import (
    InputError,
    open_input,
    read_csv,
    read_json_array,
    read_ndjson,
)

FIELDS = [
    {"api_key": "movie_id", "field_type": "integer"},
    {"api_key": "title", "field_type": "string"},
    {"api_key": "rating", "field_type": "float"},
    {"api_key": "seen", "field_type": "boolean"},
    {"api_key": "notes", "field_type": "text"},
]


def _csv(text: str, *, bom: bool = False) -> tuple[list[str], list[dict[str, str]]]:
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    header, rows = read_csv(io.BytesIO(raw))
    return header, list(rows)


def test_csv__bom_is_not_part_of_the_first_column() -> None:
    header, rows = _csv("movieId,title\n1,Toy Story\n", bom=True)

    assert header == ["movieId", "title"]
    assert rows == [{"movieId": "1", "title": "Toy Story"}]


def test_csv__quoted_commas_and_newlines_stay_in_their_cell() -> None:
    text = 'movieId,title,notes\n1,"Heat, the film","line one\nline two"\n2,Up,\n'

    _, rows = _csv(text)

    assert rows == [
        {"movieId": "1", "title": "Heat, the film", "notes": "line one\nline two"},
        {"movieId": "2", "title": "Up"},
    ]


def test_csv__empty_cells_and_blank_lines_are_left_out() -> None:
    _, rows = _csv("a,b,c\n1,,3\n\n,,\n")

    assert rows == [{"a": "1", "c": "3"}, {}]


def test_csv__other_delimiter_and_crlf() -> None:
    header, rows = read_csv(io.BytesIO(b"a;b\r\n1;2\r\n"), delimiter=";")

    assert header == ["a", "b"]
    assert list(rows) == [{"a": "1", "b": "2"}]


def test_csv__invalid_utf8_is_an_input_error() -> None:
    raw = b"a\n" + b"ok\n" * 10_000 + b"\xff\xfe\n"
    _, rows = read_csv(io.BytesIO(raw), name="f.csv")

    with pytest.raises(InputError, match=r"f\.csv, line \d+: not valid CSV"):
        list(rows)
    with pytest.raises(InputError, match="cannot read the CSV header"):
        read_csv(io.BytesIO(b"\xff,a\n"), name="g.csv")


def test_ndjson__values_per_line_blank_lines_skipped_bad_lines_kept_raw() -> None:
    raw = b'\xef\xbb\xbf{"a": 1}\n\n  {"a": 2}  \r\n{not json\n[1]\n'

    values = list(read_ndjson(io.BytesIO(raw)))

    assert values[:2] == [{"a": 1}, {"a": 2}]
    assert isinstance(values[2], msgspec.Raw)
    assert bytes(values[2]) == b"{not json"
    assert values[3] == [1]


@pytest.mark.parametrize("chunk_chars", [1, 2, 3, 7, 64, 1 << 16])
def test_json_array__elements_survive_any_chunk_boundary(chunk_chars: int) -> None:
    elements: list[Any] = [
        {"title": 'a "quoted" ] [ , title', "n": 12345, "x": [1, {"y": None}]},
        {"unicode": "caf\u00e9 \u2603", "float": -1.5e10},
        1234567,
        "text",
        [],
        {},
    ]
    raw = b" \n[ " + b" ,\n ".join(msgspec.json.encode(e) for e in elements) + b" ]\n"

    values = list(read_json_array(io.BytesIO(raw), chunk_chars=chunk_chars))

    assert values == elements


def test_json_array__a_number_cut_by_a_chunk_is_read_whole() -> None:
    raw = b"[1234567, -1.5e10, 89]"

    assert list(read_json_array(io.BytesIO(raw), chunk_chars=3)) == [
        1234567,
        -1.5e10,
        89,
    ]


def test_json_array__with_bom_and_empty() -> None:
    assert list(read_json_array(io.BytesIO(b"\xef\xbb\xbf[]"))) == []
    assert list(read_json_array(io.BytesIO(b'\xef\xbb\xbf[{"a":1}]'))) == [{"a": 1}]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": 1}', "must start with '\\['"),
        (b'[{"a": 1}] trailing', "after the closing"),
        (b'[{"a": 1} {"b": 2}]', "expected ',' or '\\]'"),
        (b'[{"a": 1}, {"b": ', "invalid JSON"),
        (b'[{"a": 1}, {"b": nope}]', "invalid JSON"),
    ],
)
def test_json_array__broken_files_are_input_errors(raw: bytes, message: str) -> None:
    reader = read_json_array(io.BytesIO(raw), name="f.json", chunk_chars=4)

    with pytest.raises(InputError, match=message):
        list(reader)


def test_json_array__is_read_lazily(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    element = b'{"title": "' + b"x" * 100 + b'"}'
    path.write_bytes(b"[" + b",".join([element] * 20_000) + b"]")

    with open_input(path) as source:
        values = read_json_array(source.stream, chunk_chars=4096)
        first = next(values)
        read_after_first = source.bytes_read
        rest = sum(1 for _ in values)

    assert first == {"title": "x" * 100}
    assert rest == 19_999
    assert read_after_first < source.size / 10


def test_snake_case() -> None:
    assert [
        snake_case(name)
        for name in ["movieId", "ProductID", "Unit Price", "title", "HTTPCode"]
    ] == ["movie_id", "product_id", "unit_price", "title", "http_code"]


def test_builder__maps_columns_and_warns_once_about_dropped_ones() -> None:
    warnings: list[str] = []
    builder = ItemBuilder(
        "movie",
        FIELDS,
        overrides={"name": "title"},
        coerce_text=True,
        warn=warnings.append,
    )

    builder.resolve(["movieId", "name", "title", "imdbId", "item_type", "junk"])
    first = builder.build({"movieId": "1", "name": "Heat", "imdbId": "0113277"})
    second = builder.build({"movieId": "2", "junk": "x", "title": "Up"})

    assert first == {"item_type": "movie", "movie_id": 1, "title": "Heat"}
    assert second == {"item_type": "movie", "movie_id": 2, "title": "Up"}
    assert warnings == ["ignoring columns that 'movie' has no field for: imdbId, junk"]


def test_builder__map_override_beats_a_same_named_field() -> None:
    builder = ItemBuilder("movie", FIELDS, overrides={"title": "notes"})

    assert builder.build({"title": "Heat"}) == {"item_type": "movie", "notes": "Heat"}


def test_builder__new_keys_in_json_records_are_warned_about_as_they_come() -> None:
    warnings: list[str] = []
    builder = ItemBuilder("movie", FIELDS, warn=warnings.append)

    builder.build({"title": "A", "extra": 1})
    builder.build({"title": "B", "extra": 2})
    builder.build({"title": "C", "other": 3})

    assert warnings == [
        "ignoring columns that 'movie' has no field for: extra",
        "ignoring columns that 'movie' has no field for: other",
    ]


def test_builder__json_values_are_not_coerced_and_non_objects_pass() -> None:
    builder = ItemBuilder("movie", FIELDS, coerce_text=False)

    assert builder.build({"movie_id": "7"}) == {"item_type": "movie", "movie_id": "7"}
    assert builder.build([1, 2]) == [1, 2]


@pytest.mark.parametrize(
    ("text", "field_type", "expected"),
    [
        ("42", "integer", 42),
        ("42.0", "integer", 42),
        ("4.5", "integer", "4.5"),
        ("abc", "integer", "abc"),
        ("4.5", "float", 4.5),
        ("nan", "float", "nan"),
        ("1", "boolean", True),
        ("No", "boolean", False),
        ("maybe", "boolean", "maybe"),
        ('{"a": [1]}', "json", {"a": [1]}),
        ("{bad", "json", "{bad"),
        ("0113277", "string", "0113277"),
        ("2020-01-02", "date", "2020-01-02"),
    ],
)
def test_coerce(text: str, field_type: str, expected: Any) -> None:
    assert coerce(text, field_type) == expected


def test_builder__link_values_take_the_target_field_type() -> None:
    fields = [
        {"api_key": "movie", "field_type": "link"},
        {"api_key": "tags", "field_type": "links"},
        {"api_key": "owner", "field_type": "link"},
    ]
    builder = ItemBuilder(
        "rating",
        fields,
        link_value_types={"movie": "integer", "tags": "integer"},
        coerce_text=True,
    )

    assert builder.build({"movie": "12", "tags": "1, 2", "owner": "01ABC"}) == {
        "item_type": "rating",
        "movie": 12,
        "tags": [1, 2],
        "owner": "01ABC",
    }
