"""Unit and property tests for lorry.files.json_records: JSON arrays, NDJSON."""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorry.files import MAX_DEPTH, FileError, Record, open_reader
from lorry.files.json_records import JsonArrayReader, NdjsonReader, too_deep

BOM = codecs.BOM_UTF8
BIG = 1 << 20
TOO_DEEP = ("too_deep", f"the record is nested deeper than {MAX_DEPTH} levels")
BREAK = re.compile(r"\r\n|\r|\n")
Failure = tuple[str, int | None, int | None, str]
Outcome = tuple[list[Record], Failure | None]


def read(
    file_format: str,
    chunks: Sequence[bytes],
    *,
    encoding: str | None = None,
    max_item_bytes: int = BIG,
) -> Outcome:
    """Every record of the file fed in ``chunks``, and the FileError, if any."""
    reader = open_reader(file_format, encoding=encoding, max_item_bytes=max_item_bytes)
    assert reader.columns is None
    records: list[Record] = []
    try:
        for chunk in chunks:
            records += reader.feed(chunk)
        records += reader.end()
    except FileError as error:
        return records, (error.code, error.line, error.byte, error.message)
    return records, None


def records(file_format: str, data: bytes, **options: Any) -> list[Record]:
    got, failure = read(file_format, [data], **options)
    assert failure is None, failure
    return got


def failure(file_format: str, chunks: Sequence[bytes], **options: Any) -> Failure:
    outcome = read(file_format, chunks, **options)
    assert outcome[1] is not None, outcome
    return outcome[1]


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def assert_same_reading(got: Outcome, want: Outcome) -> None:
    """Records and error equal; once a FileError is raised, which records
    came before it depends on the feeds, so only the errors are compared."""
    if got[1] is not None or want[1] is not None:
        assert got[1] == want[1]
    else:
        assert got == want


def assert_split_invariant(file_format: str, data: bytes, **options: Any) -> None:
    whole = read(file_format, [data], **options)
    for cut in range(len(data) + 1):
        got = read(file_format, [data[:cut], data[cut:]], **options)
        assert_same_reading(got, whole)
    singles = [data[i : i + 1] for i in range(len(data))]
    assert_same_reading(read(file_format, singles, **options), whole)


def nested(depth: int, inner: str = "1") -> str:
    """``depth`` levels of arrays and objects around ``inner``."""
    text = inner
    for level in range(depth):
        text = f'{{"k": {text}}}' if level % 2 else f"[{text}]"
    return text


# -- JSON arrays: every split --------------------------------------------------

ARRAY_FILES = {
    "objects": (
        b'[{"a": 1, "b": "x, ]} \\" \\\\"},\n {"c": [1, 2, {"d": null}]},'
        b'\n\t{"e": "\xc3\xa9\xf0\x9f\x98\x80"}\n]\n'
    ),
    "bom": BOM + b'[{"a": "[{"}]',
    "bom_only": BOM,
    "empty_array": b" \n[ \n ]\n ",
    "not_objects": b'[1, "s", [1, [2]], null, true, -0.5e3]',
    "empty_elements": b"[1,,2,]",
    "cr_only": b'[{"a":\r1},\r{"b":2}\r]\r',
    "deep": ("[" + nested(MAX_DEPTH) + ",\n" + nested(MAX_DEPTH + 1) + "]").encode(),
    "not_an_array": b'\n{"a": 1}',
    "truncated": b'[{"a": 1},\n{"b": [',
    "truncated_string": b'[{"a": "x\\"',
    "trailing_garbage": b"[{}]\n\n  x",
    "unbalanced": b'[{"a": 1}}]',
    "latin1": '[{"a": "ok"},\n {"a": "José"}]'.encode("latin-1"),
}


@pytest.mark.parametrize("name", sorted(ARRAY_FILES))
def test_array_every_split_reads_like_the_whole_file(name: str) -> None:
    assert_split_invariant("json", ARRAY_FILES[name])


def test_array_every_split_in_utf16() -> None:
    assert_split_invariant("json", '[{"a": "€"},\n{"b": 1}]'.encode("utf-16"))
    assert_split_invariant(
        "json", '[{"a": "€"},\n{"b": 1}]'.encode("utf-16"), encoding="utf-16"
    )


def test_array_multibyte_character_split_across_feeds() -> None:
    data = '[{"a": "€"}]'.encode()
    at = data.index("€".encode())
    for cut in range(at, at + 4):
        assert read("json", [data[:cut], data[cut:]]) == (
            [(1, '{"a": "€"}'.encode(), None)],
            None,
        )


# -- JSON arrays: elements -----------------------------------------------------


def test_array_elements_are_cut_without_decoding() -> None:
    data = b'[ {"a": 1} , {"b": [1, {"c": "]"}]}\n,\n\n  {"d" : "x\\"y"}\t]'
    assert records("json", data) == [
        (1, b'{"a": 1}', None),
        (1, b'{"b": [1, {"c": "]"}]}', None),
        (4, b'{"d" : "x\\"y"}', None),
    ]


def test_array_element_lines_count_multiline_elements() -> None:
    data = b'[\n{\n"a": 1\n},\r\n{"b":\r2},\n\n{}]'
    assert [line for line, _, _ in records("json", data)] == [2, 5, 8]


def test_array_elements_need_not_be_objects() -> None:
    # The reader stages each element as written; the job decides what to
    # make of one that is not an object.
    data = b'[1, "s", [1, 2], null, true, {"a": 1}]'
    assert [text for _, text, _ in records("json", data)] == [
        b"1",
        b'"s"',
        b"[1, 2]",
        b"null",
        b"true",
        b'{"a": 1}',
    ]


def test_array_bad_elements_fail_alone() -> None:
    # Nothing is decoded here: NaN, a missing comma or an empty element (a
    # doubled or trailing comma) is staged as written and fails in the job.
    data = b'[{"a": NaN}, {"a": 1} {"b": 2}, , {"c": 3},]'
    assert records("json", data) == [
        (1, b'{"a": NaN}', None),
        (1, b'{"a": 1} {"b": 2}', None),
        (1, b"", None),
        (1, b'{"c": 3}', None),
        (1, b"", None),
    ]


@pytest.mark.parametrize("data", [b"[]", b" [ ] ", b"\n\r\n[\n]\n", BOM + b"[]"])
def test_empty_array_gives_no_records(data: bytes) -> None:
    assert records("json", data) == []


def test_array_records_are_returned_as_they_complete() -> None:
    reader = JsonArrayReader(encoding=None, max_record_chars=100)
    assert reader.feed(b'[{"a": 1}') == []
    assert reader.feed(b", 2") == [(1, b'{"a": 1}', None)]
    assert reader.feed(b"3\n") == []
    assert reader.feed(b"]") == [(1, b"23", None)]
    assert reader.end() == []


# -- JSON arrays: depth ----------------------------------------------------------


def test_array_element_at_the_depth_limit() -> None:
    data = ("[" + nested(MAX_DEPTH) + "]").encode()
    assert records("json", data) == [(1, nested(MAX_DEPTH).encode(), None)]


def test_array_element_too_deep_fails_alone() -> None:
    deep = nested(MAX_DEPTH + 1)
    data = ("[\n" + deep + ",\n{}]").encode()
    assert records("json", data) == [(2, deep.encode(), TOO_DEEP), (3, b"{}", None)]


def test_array_depth_does_not_count_brackets_in_strings() -> None:
    inner = json.dumps("[{" * 100 + '\\"[')
    data = ("[" + nested(MAX_DEPTH, inner) + "]").encode()
    assert records("json", data)[0][2] is None


def test_array_very_deep_element_does_not_recurse() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    data = ("[" + deep + "]").encode()
    chunks = [data[i : i + 7000] for i in range(0, len(data), 7000)]
    assert read("json", chunks) == ([(1, deep.encode(), TOO_DEEP)], None)


# -- JSON arrays: bad files ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "detail"),
    [
        (b'{"a": 1}', 1, "a JSON file to import must be one array [...]"),
        (b'\n\n  "x"', 3, "a JSON file to import must be one array [...]"),
        (b"", 1, "the file ends before the array's closing ']'"),
        (BOM, 1, "the file ends before the array's closing ']'"),
        (b"  \n ", 2, "the file ends before the array's closing ']'"),
        (b"[", 1, "the file ends before the array's closing ']'"),
        (b'[{"a": 1},\n\n', 3, "the file ends before the array's closing ']'"),
        (b'[{"a": 1}\n', 2, "the file ends before the array's closing ']'"),
        (b'[{"a": [1, 2', 1, "the file ends before the array's closing ']'"),
        (b'[\n{"a": "x', 2, "a string never closes"),
        (b'[{"a": "x\\"}]', 1, "a string never closes"),
        (b"[1]\n\nx", 3, "there is more after the array's closing ']'"),
        (b"[1],[2]", 1, "there is more after the array's closing ']'"),
        (b"[] []", 1, "there is more after the array's closing ']'"),
        (b'[{"a": 1}}]', 1, "unbalanced '}' in element 0"),
        (b"[1,\n\n2]]", 3, "there is more after the array's closing ']'"),
        (b"[1, 2}]", 1, "unbalanced '}' in element 1"),
    ],
)
def test_bad_array_file(data: bytes, line: int, detail: str) -> None:
    assert failure("json", [data]) == (
        "invalid_json",
        line,
        None,
        f"line {line}: {detail}",
    )


def test_truncated_array_gives_its_elements_before_failing() -> None:
    reader = open_reader("json", max_item_bytes=BIG)
    assert reader.feed(b'[{"a": 1}, {"b": 2}') == [(1, b'{"a": 1}', None)]
    with pytest.raises(FileError) as caught:
        reader.end()
    assert caught.value.code == "invalid_json"


def test_array_element_too_large() -> None:
    data = b'[{"a": 1},\n\n{"b": "' + b"x" * 100 + b'"}]'
    chunks = [data[i : i + 8] for i in range(0, len(data), 8)]
    code, line, byte, message = failure("json", chunks, max_item_bytes=10)
    assert (code, line, byte) == ("record_too_large", 3, None)
    assert message == "line 3: element 1 goes on for more than 40 characters"


def test_array_megabyte_element_across_many_feeds() -> None:
    value = ('x "quoted" [{é}] \\ \n' * 60_000)[:1_000_000]
    element = json.dumps({"big": value, "n": [1, 2]}, ensure_ascii=False)
    data = f'[{{"a": 1}},\n{element},\n{{"z": 0}}]'.encode()
    chunks = [data[i : i + 16384] for i in range(0, len(data), 16384)]
    assert len(chunks) > 60
    assert read("json", chunks) == (
        [(1, b'{"a": 1}', None), (2, element.encode(), None), (3, b'{"z": 0}', None)],
        None,
    )


# -- JSON arrays: encodings ------------------------------------------------------


def test_array_latin1_read_as_utf8() -> None:
    data = '[{"a": "ok"},\n {"a": "José"}]'.encode("latin-1")
    at = data.index(b"\xe9")
    for chunks in ([data], [data[:at], data[at:]], [data[: at + 1], data[at + 1 :]]):
        code, line, byte, message = failure("json", chunks)
        assert (code, line, byte) == ("undecodable", 2, at)
        assert message.startswith(f"line 2, byte {at}: the bytes e9 ")


def test_array_latin1_read_as_latin1() -> None:
    data = '[{"a": "José"}]'.encode("latin-1")
    assert records("json", data, encoding="latin-1") == [
        (1, '{"a": "José"}'.encode(), None)
    ]


def test_array_utf16_with_bom() -> None:
    data = '[{"a": "€"},\r\n{"b": 1}]'.encode("utf-16")
    assert records("json", data, encoding="utf-16") == [
        (1, '{"a": "€"}'.encode(), None),
        (2, b'{"b": 1}', None),
    ]


# -- JSON arrays: properties -----------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(
        alphabet=st.one_of(
            st.sampled_from('"\\[]{},\n\r\té'), st.characters(codec="utf-8")
        )
    ),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=5), children, max_size=4),
    ),
    max_leaves=12,
)
#: Whitespace around the array's brackets and commas.
SPACE = st.text(alphabet=" \t\n\r", max_size=3)


@st.composite
def arrays(draw: st.DrawFn, space: st.SearchStrategy[str]) -> tuple[str, list[str]]:
    """An array's text and its elements' texts."""
    values = draw(st.lists(JSON_VALUES, max_size=6))
    ascii_only = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" , ", " :\n")]))
    texts = [
        json.dumps(v, ensure_ascii=ascii_only, separators=separators) for v in values
    ]
    parts = [draw(space), "[", draw(space)]
    for number, text in enumerate(texts):
        if number:
            parts += [draw(space), ",", draw(space)]
        parts.append(text)
    parts += [draw(space), "]", draw(space)]
    return "".join(parts), texts


def expected_array(text: str, texts: list[str]) -> list[Record]:
    want: list[Record] = []
    at = 0
    for element in texts:
        at = text.index(element, at)
        want.append((1 + len(BREAK.findall(text[:at])), element.encode(), None))
        at += len(element)
    return want


@given(arrays(SPACE), st.booleans(), st.data())
@settings(max_examples=200, deadline=None)
def test_array_in_random_splits(
    array: tuple[str, list[str]], bom: bool, data: st.DataObject
) -> None:
    text, texts = array
    raw = (BOM if bom else b"") + text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8), "cuts")
    want = expected_array(text, texts)
    assert read("json", [raw]) == (want, None)
    assert read("json", split(raw, cuts)) == (want, None)


@given(arrays(st.text(alphabet=" \t\n\r", max_size=3)))
@settings(max_examples=200, deadline=None)
def test_array_fed_whole_with_any_line_ends(array: tuple[str, list[str]]) -> None:
    text, texts = array
    assert read("json", [text.encode()]) == (expected_array(text, texts), None)


@given(JSON_VALUES, st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_too_deep_agrees_with_the_nesting(value: Any, extra: int) -> None:
    text = json.dumps(value)
    depth, deepest = 0, 0
    for token in re.sub(r'"(?:[^"\\]|\\.)*"', '""', text):
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    wrapped = (
        "[" * (MAX_DEPTH - deepest + extra) + text + "]" * (MAX_DEPTH - deepest + extra)
    )
    assert too_deep(wrapped) is (extra > 0)
    array = records("json", ("[" + wrapped + "]").encode())
    assert array == [(1, wrapped.encode(), TOO_DEEP if extra else None)]
    lines = records("ndjson", (wrapped + "\n").encode())
    assert lines == [(1, wrapped.encode(), TOO_DEEP if extra else None)]


# -- too_deep -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("{}", False),
        (nested(MAX_DEPTH), False),
        (nested(MAX_DEPTH + 1), True),
        ("[" * (MAX_DEPTH + 1), True),
        ("[]" * 1000, False),
        (json.dumps(["[" * 100]), False),
        (json.dumps({"a": '\\"' + "{" * 100}), False),
        ('"never closes [[[[' + "[" * 100, False),
    ],
)
def test_too_deep(text: str, deep: bool) -> None:
    assert too_deep(text) is deep


# -- NDJSON ---------------------------------------------------------------------

NDJSON_FILES = {
    "lines": b'{"a": 1}\n\n  \t\n{"b": "x\\ny"}\r\n{"c": [1]}\n',
    "crlf": b'{"a": 1}\r\n\r\n{"b": "\xc3\xa9\xf0\x9f\x98\x80"}\r\n',
    "no_final_newline": b'{"a": 1}\n{"b": 2}',
    "bom": BOM + b'{"a": 1}\n',
    "bom_only": BOM,
    "blank": b"\n \n\r\n\t\n",
    "not_json": b'{"a": 1}\nnot json\n[1, 2]\n"s"\n',
    "deep": (nested(MAX_DEPTH) + "\n" + nested(MAX_DEPTH + 1)).encode(),
    "latin1": '{"a": "ok"}\n{"a": "José"}\n'.encode("latin-1"),
}


@pytest.mark.parametrize("name", sorted(NDJSON_FILES))
def test_ndjson_every_split_reads_like_the_whole_file(name: str) -> None:
    assert_split_invariant("ndjson", NDJSON_FILES[name])


def test_ndjson_lines() -> None:
    data = b'{"a": 1}\n\n  \t\n  {"b": "x\\ny"} \r\n{"c": [1]}'
    assert records("ndjson", data) == [
        (1, b'{"a": 1}', None),
        (4, b'{"b": "x\\ny"}', None),
        (5, b'{"c": [1]}', None),
    ]


@pytest.mark.parametrize("data", [b"", BOM, b"\n\n", b" \r\n\t\n "])
def test_ndjson_without_records(data: bytes) -> None:
    assert records("ndjson", data) == []


def test_ndjson_invalid_json_is_staged_with_its_line() -> None:
    # Lines are not decoded here: the job fails a bad line alone, at its line.
    data = b'{"a": 1}\n\n{"a": \n[1, 2]\n"s"\n{"b": NaN}\n'
    assert records("ndjson", data) == [
        (1, b'{"a": 1}', None),
        (3, b'{"a":', None),
        (4, b"[1, 2]", None),
        (5, b'"s"', None),
        (6, b'{"b": NaN}', None),
    ]


def test_ndjson_too_deep_fails_alone() -> None:
    deep = nested(MAX_DEPTH + 1)
    data = (nested(MAX_DEPTH) + "\n\n" + deep + "\n{}\n").encode()
    assert records("ndjson", data) == [
        (1, nested(MAX_DEPTH).encode(), None),
        (3, deep.encode(), TOO_DEEP),
        (4, b"{}", None),
    ]


def test_ndjson_line_too_large() -> None:
    data = b'{"a": 1}\n\n{"b": "' + b"y" * 100 + b'"}\n'
    chunks = [data[i : i + 8] for i in range(0, len(data), 8)]
    code, line, byte, message = failure("ndjson", chunks, max_item_bytes=10)
    assert (code, line, byte) == ("record_too_large", 3, None)
    assert message == "line 3 goes on for more than 40 characters"


def test_ndjson_megabyte_line_across_many_feeds() -> None:
    line = json.dumps({"big": "é [x] " * 170_000})
    data = f'{{"a": 1}}\n{line}\n{{"z": 0}}'.encode()
    chunks = [data[i : i + 16384] for i in range(0, len(data), 16384)]
    assert len(chunks) > 60
    assert read("ndjson", chunks) == (
        [(1, b'{"a": 1}', None), (2, line.encode(), None), (3, b'{"z": 0}', None)],
        None,
    )


def test_ndjson_latin1_read_as_utf8() -> None:
    data = '{"a": "ok"}\r\n{"a": "José"}\n'.encode("latin-1")
    at = data.index(b"\xe9")
    for cut in (0, 5, at, at + 1):
        assert failure("ndjson", [data[:cut], data[cut:]])[:3] == (
            "undecodable",
            2,
            at,
        )


def test_ndjson_latin1_read_as_latin1() -> None:
    data = '{"a": "José"}\n'.encode("latin-1")
    assert records("ndjson", data, encoding="latin-1") == [
        (1, '{"a": "José"}'.encode(), None)
    ]


def test_ndjson_utf16() -> None:
    data = '{"a": "€"}\r\n\r\n{"b": 1}\r\n'.encode("utf-16")
    assert records("ndjson", data, encoding="utf-16") == [
        (1, '{"a": "€"}'.encode(), None),
        (3, b'{"b": 1}', None),
    ]


def test_ndjson_records_are_returned_as_they_complete() -> None:
    reader = NdjsonReader(encoding=None, max_record_chars=100)
    assert reader.feed(b'{"a": 1}') == []
    assert reader.feed(b"\r") == []
    assert reader.feed(b'\n{"b"') == [(1, b'{"a": 1}', None)]
    assert reader.end() == [(2, b'{"b"', None)]


OBJECTS = st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4)


@given(
    st.lists(
        st.tuples(
            OBJECTS,
            st.sampled_from(["\n", "\r\n"]),
            st.sampled_from(["", "", " ", "\t", " \r"]),
            st.lists(st.sampled_from(["", " ", "\t", "\r"]), max_size=2),
        ),
        max_size=8,
    ),
    st.booleans(),
    st.booleans(),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_ndjson_in_random_splits(
    lines: list[tuple[dict[str, Any], str, str, list[str]]],
    final_end: bool,
    bom: bool,
    data: st.DataObject,
) -> None:
    text = ""
    want: list[Record] = []
    line = 1
    for number, (value, end, pad, blanks) in enumerate(lines):
        for blank in blanks:
            text += blank + "\n"
            line += 1
        body = json.dumps(value, ensure_ascii=number % 2 == 0)
        want.append((line, body.encode(), None))
        text += pad + body + pad
        if final_end or number < len(lines) - 1:
            text += end
        line += 1
    raw = (BOM if bom else b"") + text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8), "cuts")
    assert read("ndjson", [raw]) == (want, None)
    assert read("ndjson", split(raw, cuts)) == (want, None)
