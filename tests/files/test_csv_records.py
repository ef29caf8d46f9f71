"""Unit and property tests for lorry.files.csv_records (CsvReader)."""

from __future__ import annotations

import bisect
import codecs
import csv
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorry.files import FileError, Record, open_reader
from lorry.files.csv_records import CsvReader, sniff

BOM = codecs.BOM_UTF8
BIG = 1 << 20
Failure = tuple[str, int | None, int | None, str]
Outcome = tuple[list[Record], Failure | None]
Cell = str | None
Row = tuple[int, dict[str, Any], tuple[str, str] | None]


def csv_reader(
    *,
    csv_module: bool = True,
    encoding: str | None = None,
    delimiter: str | None = None,
    max_item_bytes: int = BIG,
) -> CsvReader:
    reader = open_reader(
        "csv", encoding=encoding, delimiter=delimiter, max_item_bytes=max_item_bytes
    )
    assert isinstance(reader, CsvReader)
    reader.use_csv_module = csv_module
    return reader


def read(chunks: Sequence[bytes], **options: Any) -> Outcome:
    """Every record of the file fed in ``chunks``, and the FileError, if any."""
    reader = csv_reader(**options)
    records: list[Record] = []
    try:
        for chunk in chunks:
            records += reader.feed(chunk)
        records += reader.end()
    except FileError as error:
        return records, (error.code, error.line, error.byte, error.message)
    return records, None


def rows(data: bytes, **options: Any) -> list[Row]:
    """The records of ``data`` fed whole, decoded; it must read without error."""
    records, failure = read([data], **options)
    assert failure is None, failure
    return [(line, json.loads(body), error) for line, body, error in records]


def failure(chunks: Sequence[bytes], **options: Any) -> Failure:
    outcome = read(chunks, **options)
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


def assert_split_invariant(data: bytes, **options: Any) -> None:
    """Split at every byte boundary, and byte by byte, in both readings."""
    whole = read([data], **options)
    for csv_module in (True, False):
        options["csv_module"] = csv_module
        assert_same_reading(read([data], **options), whole)
        for cut in range(len(data) + 1):
            assert_same_reading(read([data[:cut], data[cut:]], **options), whole)
        singles = [data[i : i + 1] for i in range(len(data))]
        assert_same_reading(read(singles, **options), whole)


# -- files that read at every split -------------------------------------------

SPLIT_FILES = {
    "lf": b'id,name,note\n1,Ann,"a, b"\n2,,""\n3,"x\ny",z\n',
    "crlf": (
        b'id;text\r\n1;"say\r\n""hi"" there"\r\n\r\n'
        b"2;caf\xc3\xa9 \xe2\x82\xac\r\n3;\xf0\x9f\x98\x80\r\n"
    ),
    "cr_only": b'a\tb\r1\t"x\ry"\r\r2\t3\r""\t""\r',
    "mixed_line_ends": b'a,b\r\n1,2\r3,4\n\r\n"5\r\n",6\r',
    "bom_pipe": BOM + b'a|b\n\xf0\x9f\x98\x80|"q""q"\n|\n',
    "bom_only": BOM,
    "bom_header_only": BOM + b"a,b\r\n",
    "no_final_newline": b'a,b\n1,"2"',
    "blank_and_whitespace_lines": b"\n \n\t\r\na,b\n\n  \n1,2\n \t \n\n",
    "doubled_quotes": b'a,b\n"""",""""""\n"""x""",y""z\n',
    "errors": (b'a,b\n1,2,3\n4\n"x"junk,5\n"ok",6\n7,"never\r\nclosed\n'),
    "quote_then_junk_at_end": b'a,b\n1,"x"y',
    "latin1_as_utf8": "name,city\r\nJosé,Zürich\r\n".encode("latin-1"),
    "bad_byte_late": b'a,b\n1,2\n3,"4\n5"\n6,\xff\n',
    "truncated_character": b"a,b\n1,\xe2\x82",
    "bad_header": b"\r\na,b,a\r\n1,2,3\r\n",
    "header_with_bad_quote": b'"a"b,c\n1,2\n',
}


@pytest.mark.parametrize("name", sorted(SPLIT_FILES))
def test_every_split_reads_like_the_whole_file(name: str) -> None:
    assert_split_invariant(SPLIT_FILES[name])


def test_every_split_with_an_explicit_encoding() -> None:
    data = "a;b\r\nJosé;Zürich\r\n".encode("latin-1")
    assert_split_invariant(data, encoding="latin-1")
    data = 'a;b\r\n€;"x\r\ny"\r\n'.encode("utf-16")
    assert_split_invariant(data, encoding="utf-16")


def big_file(line_end: bytes) -> bytes:
    """Long enough for the csv module to read runs of its lines."""
    body = b"".join(
        b'%d,name %d,caf\xc3\xa9 "quoted, %d"%s' % (i, i, i, line_end)
        for i in range(170)
    )
    return b"id,name,note" + line_end + body


@pytest.mark.parametrize("line_end", [b"\r\n", b"\r", b"\n"])
def test_every_split_of_a_long_file(line_end: bytes) -> None:
    data = big_file(line_end)
    assert len(data) > 5000
    whole = read([data], csv_module=False)
    assert len(whole[0]) == 170
    assert read([data]) == whole
    # Every boundary in the first and the last 1200 bytes: the csv module
    # reads the rest of the file in one run, cut at every kind of place.
    for cut in [*range(1200), *range(len(data) - 1200, len(data) + 1)]:
        assert read([data[:cut], data[cut:]]) == whole, cut


def test_the_csv_module_reads_runs_of_a_long_file() -> None:
    data = big_file(b"\r\n")
    with mock.patch.object(csv, "reader", wraps=csv.reader) as spy:
        fast = read([data[:5000], data[5000:]])
    assert spy.called
    with mock.patch.object(csv, "reader", wraps=csv.reader) as spy:
        slow = read([data[:5000], data[5000:]], csv_module=False)
    assert not spy.called
    assert fast == slow


def test_cr_at_a_feed_boundary_is_one_line_end() -> None:
    data = b"a,b\r\n1,2\r\n3,4\r\n"
    for csv_module in (True, False):
        chunks = [b"a,b\r", b"\n1,2\r", b"\n3,4\r", b"\n"]
        records, error = read(chunks, csv_module=csv_module)
        assert error is None
        assert [line for line, _, _ in records] == [2, 3]
        assert read([data], csv_module=csv_module) == (records, None)


def test_cr_only_file_at_a_feed_boundary() -> None:
    records, error = read([b"a,b\r", b"1,2\r", b"3,4\r"])
    assert error is None
    assert [(line, json.loads(body)) for line, body, _ in records] == [
        (2, {"a": "1", "b": "2"}),
        (3, {"a": "3", "b": "4"}),
    ]


@pytest.mark.parametrize("cut", range(1, 4))
def test_multibyte_character_split_across_feeds(cut: int) -> None:
    data = "a\n€\n".encode()
    at = data.index("€".encode()) + cut
    records, error = read([data[:at], data[at:]])
    assert error is None
    assert [json.loads(body) for _, body, _ in records] == [{"a": "€"}]


def test_doubled_quote_split_across_feeds() -> None:
    data = b'a,b\n"x""y",""\n'
    at = data.index(b'""') + 1
    assert read([data[:at], data[at:]]) == read([data])
    assert rows(data) == [(2, {"a": 'x"y', "b": ""}, None)]


@pytest.mark.parametrize("cut", range(4))
def test_bom_split_across_feeds(cut: int) -> None:
    data = BOM + b"a,b\n1,2\n"
    records, error = read([data[:cut], data[cut:]])
    assert error is None
    assert [json.loads(body) for _, body, _ in records] == [{"a": "1", "b": "2"}]


# -- a table of cells, written and read back ---------------------------------

SPECIAL = st.sampled_from([*',;\t|"\r\n ', "\r\n", '""', "é", "😀", "\x0c"])
TEXT = st.lists(st.one_of(SPECIAL, st.characters(codec="utf-8")), max_size=12).map(
    "".join
)
CELLS = st.one_of(st.none(), st.just(""), TEXT)
#: Cells written without any "": the csv module may read them.
PLAIN_CELLS = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.sampled_from([*",;\t|\r\n ", "\r\n", "é", "😀", "\x0c"]),
            st.characters(codec="utf-8", exclude_characters='"'),
        ),
        min_size=1,
        max_size=12,
    ).map("".join),
)
NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=6)
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
BLANKS = st.sampled_from(["", "", "", " ", "\t", "  \t "])
BREAK = re.compile(r"\r\n|\r|\n")


def write_cell(cell: Cell, delimiter: str) -> str:
    if cell is None:
        return ""
    if cell == "" or any(c in cell for c in (delimiter, '"', "\r", "\n")):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def write_row(row: Sequence[Cell], delimiter: str) -> str:
    line = delimiter.join(write_cell(cell, delimiter) for cell in row)
    if not line.strip():
        # A whitespace-only line is blank: quote its first (whitespace) text.
        at = next(i for i, cell in enumerate(row) if cell is not None)
        line = delimiter.join(
            '"' + cell + '"' if i == at and cell is not None else write_cell(cell, "")
            for i, cell in enumerate(row)
        )
    return line


def write_csv(
    header: Sequence[str],
    table: Sequence[Sequence[Cell]],
    delimiter: str,
    ends: Sequence[str],
    blanks: Sequence[str],
    final_end: bool,
) -> tuple[str, list[int]]:
    """The CSV text, and the physical line where each row of ``table`` starts."""
    text = ""
    starts: list[int] = []
    for number, row in enumerate([header, *table]):
        if number:
            text += ends[number % len(ends)]
            blank = blanks[number % len(blanks)]
            if blank:
                text += blank + ends[(number + 1) % len(ends)]
            starts.append(len(text))
        text += write_row(row, delimiter)
    if final_end:
        text += ends[0]
    breaks = [found.start() for found in BREAK.finditer(text)]
    return text, [1 + bisect.bisect_left(breaks, at) for at in starts]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[Cell]], str]:
    header = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = len(header)
    cells = draw(st.sampled_from([CELLS, PLAIN_CELLS, PLAIN_CELLS]))
    table = draw(st.lists(st.lists(cells, min_size=width, max_size=width)))
    for row in table:
        if all(cell is None for cell in row) and (width == 1 or delimiter == "\t"):
            row[0] = ""  # else the row is a blank line, which is skipped
    return header, table, delimiter


@given(
    tables(),
    st.lists(LINE_ENDS, min_size=1, max_size=4),
    st.lists(BLANKS, min_size=1, max_size=4),
    st.booleans(),
    st.booleans(),
    st.sampled_from([True, False]),
    st.booleans(),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_written_table_reads_back(
    written: tuple[list[str], list[list[Cell]], str],
    ends: list[str],
    blanks: list[str],
    final_end: bool,
    bom: bool,
    long: bool,
    say_delimiter: bool,
    data: st.DataObject,
) -> None:
    header, table, delimiter = written
    text, starts = write_csv(header, table, delimiter, ends, blanks, final_end)
    while long and table and len(text) < 5000:
        # Long enough for the csv module to read runs of lines.
        table = table * 2
        text, starts = write_csv(header, table, delimiter, ends, blanks, final_end)
    raw = (BOM if bom else b"") + text.encode()
    options: dict[str, Any] = {}
    if say_delimiter or len(header) == 1:
        options["delimiter"] = delimiter
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8), "cuts")
    feeds = [[raw], split(raw, cuts)]
    want = [
        (line, dict(zip(header, row, strict=True)))
        for line, row in zip(starts, table, strict=True)
    ]
    readings = []
    for csv_module in (True, False):
        for chunks in feeds:
            reader = csv_reader(csv_module=csv_module, **options)
            records: list[Record] = []
            for chunk in chunks:
                records += reader.feed(chunk)
            records += reader.end()
            assert reader.columns == header
            readings.append(records)
    records = readings[0]
    assert [error for _, _, error in records] == [None] * len(records)
    got = [(line, json.loads(body)) for line, body, _ in records]
    assert got == want
    assert all(list(cells) == header for _, cells in got)
    for reading in readings[1:]:
        assert reading == records


ALPHABET = list('a,;"\r\n\t| é')
ARBITRARY = st.one_of(
    st.text(alphabet=ALPHABET, max_size=120),
    # Few quotes, so that long runs of lines may go to the csv module.
    st.lists(st.sampled_from([c for c in ALPHABET if c != '"'] * 8 + ['"']))
    .map("".join)
    .filter(lambda t: '""' not in t),
)
HEADERS = st.sampled_from(["", "a,b\n", "a;b;c\r\n", "a\tb\r", "x|y|z\n", "a\n"])


@given(
    HEADERS,
    ARBITRARY,
    st.booleans(),
    st.sampled_from([BIG, BIG, 30]),
    st.sampled_from([None, None, ",", "\t"]),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_both_readings_agree_on_arbitrary_text(
    header: str,
    body: str,
    long: bool,
    max_item_bytes: int,
    delimiter: str | None,
    data: st.DataObject,
) -> None:
    # Long, the csv module may read runs of its lines.
    times = 5000 // max(1, len(body)) + 1 if long else 1
    raw = (header + body * times).encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=8), "cuts")
    options: dict[str, Any] = {"max_item_bytes": max_item_bytes}
    options["delimiter"] = delimiter
    chunked = split(raw, cuts)
    fast = read(chunked, **options)
    slow = read(chunked, csv_module=False, **options)
    assert fast == slow
    if max_item_bytes == BIG:
        # Without a size limit the feeds cannot matter.
        assert_same_reading(fast, read([raw], **options))
        assert_same_reading(slow, read([raw], csv_module=False, **options))


# -- cells ---------------------------------------------------------------------


def test_empty_cell_is_null_and_quoted_empty_cell_is_empty_string() -> None:
    assert rows(b'a,b,c\n,"",x\n') == [(2, {"a": None, "b": "", "c": "x"}, None)]


def test_cells_keep_their_spaces() -> None:
    assert rows(b'a,b\n x , " y "\n') == [(2, {"a": " x ", "b": ' " y "'}, None)]


def test_quoted_cells_hold_delimiters_quotes_and_line_ends() -> None:
    data = b'a,b,c\n"1,2","say ""hi""","x\r\ny\rz\nw"\n3,4,5\n'
    assert rows(data) == [
        (2, {"a": "1,2", "b": 'say "hi"', "c": "x\r\ny\rz\nw"}, None),
        (6, {"a": "3", "b": "4", "c": "5"}, None),
    ]


def test_a_quote_inside_a_bare_cell_is_kept() -> None:
    assert rows(b'a,b\nx"y,z"\n') == [(2, {"a": 'x"y', "b": 'z"'}, None)]


def test_lines_are_physical_lines() -> None:
    data = b'a\r\n\r\n"1\r\n\r\n"\r\n\n\r2\r\n'
    assert rows(data) == [(3, {"a": "1\r\n\r\n"}, None), (8, {"a": "2"}, None)]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_line_ends(line_end: bytes) -> None:
    data = line_end.join([b"a,b", b"1,2", b"", b'"3', b'",4', b""])
    assert rows(data) == [
        (2, {"a": "1", "b": "2"}, None),
        (4, {"a": "3" + line_end.decode(), "b": "4"}, None),
    ]


def test_blank_and_whitespace_only_lines_are_skipped() -> None:
    data = b"\n  \n\t\na,b\n\n \t \n1,2\r\n\r\n   \r\n3,4\n\n"
    assert rows(data) == [
        (7, {"a": "1", "b": "2"}, None),
        (10, {"a": "3", "b": "4"}, None),
    ]


def test_a_line_of_delimiters_is_a_record_of_nulls() -> None:
    assert rows(b"a,b\n,\n") == [(2, {"a": None, "b": None}, None)]


def test_a_line_of_tabs_is_blank_with_a_tab_delimiter() -> None:
    # Whitespace-only, so skipped like a blank line; quote a cell to keep it.
    assert rows(b'a\tb\n\t\n""\t\n') == [(3, {"a": "", "b": None}, None)]


def test_a_quoted_blank_cell_is_not_a_blank_line() -> None:
    assert rows(b'a\n" "\n""\n') == [(2, {"a": " "}, None), (3, {"a": ""}, None)]


def test_header_only_file_gives_no_records() -> None:
    reader = csv_reader()
    assert reader.columns is None
    assert reader.feed(b"id,name\r\n") == []
    assert reader.columns == ["id", "name"]
    assert reader.end() == []


def test_header_without_line_end() -> None:
    reader = csv_reader()
    assert reader.feed(b"id;name") == []
    assert reader.columns is None
    assert reader.end() == []
    assert reader.columns == ["id", "name"]


@pytest.mark.parametrize("data", [b"", BOM, b"\n\r\n  \n", BOM + b"\r\n\t\r\n"])
def test_a_file_without_a_header_gives_no_records(data: bytes) -> None:
    reader = csv_reader()
    assert reader.feed(data) == []
    assert reader.end() == []
    assert reader.columns is None


def test_header_names_are_stripped_and_may_be_quoted() -> None:
    reader = csv_reader()
    reader.feed(b' id ,"a,b","x\ny", "c\n')
    # A quote after a space is part of a bare cell.
    assert reader.columns == ["id", "a,b", "x\ny", '"c']


def test_records_are_returned_as_they_complete() -> None:
    reader = csv_reader()
    assert reader.feed(b"a,b\n1,2\n3,") == [(2, b'{"a":"1","b":"2"}', None)]
    assert reader.feed(b"4") == []
    assert reader.feed(b"\r") == []
    assert reader.feed(b"\n5") == [(3, b'{"a":"3","b":"4"}', None)]
    assert reader.end() == [
        (4, b'{"a":"5"}', ("wrong_cell_count", "line 4 has 1 cells; the header has 2"))
    ]


# -- delimiters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("a,b,c", ","),
        ("a;b;c", ";"),
        ("a\tb", "\t"),
        ("a|b|c", "|"),
        ("a", ","),
        ("", ","),
        ("a,b;c", ","),
        ("a;b,c;d", ";"),
        ("a|b\tc|d", "|"),
        ('"x,y,z";b', ";"),
        ('"a;b";"c;d",e,f', ","),
    ],
)
def test_sniff(line: str, delimiter: str) -> None:
    assert sniff(line) == delimiter


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header(delimiter: str) -> None:
    others = "".join(c for c in ",;\t|" if c != delimiter)
    data = delimiter.join(["a", "b"]) + "\n1" + delimiter + others + "\n"
    assert rows(data.encode()) == [(2, {"a": "1", "b": others}, None)]


def test_delimiter_is_sniffed_from_the_first_line_with_content() -> None:
    # A tie between ";" and a tab goes to ";"; the names are stripped.
    assert rows(b"\n \n\ta;b\n1;2\n") == [(4, {"a": "1", "b": "2"}, None)]


def test_an_explicit_delimiter_is_not_sniffed() -> None:
    assert rows(b"a,b;c\n1,2;3\n", delimiter=";") == [
        (2, {"a,b": "1,2", "c": "3"}, None)
    ]
    assert rows(b"a,b\n1,2\n", delimiter="\t") == [(2, {"a,b": "1,2"}, None)]


# -- bad rows ------------------------------------------------------------------


def test_too_many_and_too_few_cells() -> None:
    data = b"a,b\n1,2,3\n\n4\n5,6\n7,\n,,\n"
    assert rows(data) == [
        (
            2,
            {"a": "1", "b": "2"},
            ("wrong_cell_count", "line 2 has 3 cells; the header has 2"),
        ),
        (4, {"a": "4"}, ("wrong_cell_count", "line 4 has 1 cells; the header has 2")),
        (5, {"a": "5", "b": "6"}, None),
        (6, {"a": "7", "b": None}, None),
        (
            7,
            {"a": None, "b": None},
            ("wrong_cell_count", "line 7 has 3 cells; the header has 2"),
        ),
    ]


def test_wrong_cell_count_after_a_multiline_cell_names_its_start() -> None:
    assert rows(b'a,b\n"x\ny"\n1,2\n') == [
        (
            2,
            {"a": "x\ny"},
            ("wrong_cell_count", "line 2 has 1 cells; the header has 2"),
        ),
        (4, {"a": "1", "b": "2"}, None),
    ]


def test_quote_followed_by_junk() -> None:
    assert rows(b'a,b\n"x"y,2\n3,4\n') == [
        (
            2,
            {},
            (
                "malformed_csv",
                "line 2: a quoted cell must be followed by the delimiter or the "
                "end of the line",
            ),
        ),
        (3, {"a": "3", "b": "4"}, None),
    ]


def test_quote_followed_by_junk_on_a_later_line_of_the_record() -> None:
    records = rows(b'a,b\r\n1,"x\r\ny" ,2\r\n3,4\r\n')
    assert records[0][0] == 2
    assert records[0][2] is not None
    assert records[0][2][0] == "malformed_csv"
    assert records[0][2][1].startswith("line 3: ")
    assert records[1] == (4, {"a": "3", "b": "4"}, None)


def test_quote_followed_by_junk_at_the_end_of_the_file() -> None:
    records = rows(b'a,b\n1,"x"y')
    assert [(line, error and error[0]) for line, _, error in records] == [
        (2, "malformed_csv")
    ]


def test_unclosed_quote_at_the_end_of_the_file() -> None:
    assert rows(b'a,b\n1,2\n3,"never\nclosed,\n4,5\n') == [
        (2, {"a": "1", "b": "2"}, None),
        (
            3,
            {},
            ("malformed_csv", "a quoted cell opened on line 3 never closes"),
        ),
    ]


def test_unclosed_quote_opened_on_a_later_line_of_the_record() -> None:
    records = rows(b'a,b\n"1\n2","3\n4')
    assert records == [
        (2, {}, ("malformed_csv", "a quoted cell opened on line 3 never closes"))
    ]


# -- bad headers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "detail"),
    [
        (b"a,,c\n1,2,3\n", 1, "column 2 of the header has no name"),
        (b"a, \t,c\n", 1, "column 2 of the header has no name"),
        (b'a,""\n', 1, "column 2 of the header has no name"),
        (b"a,b,\n", 1, "column 3 of the header has no name"),
        (b",a\n", 1, "column 1 of the header has no name"),
        (b"\n\r\na,b,a\n", 3, "the header names 'a' twice (columns 1 and 3)"),
        (b"a, a\n", 1, "the header names 'a' twice (columns 1 and 2)"),
        (b'"b",b\n', 1, "the header names 'b' twice (columns 1 and 2)"),
    ],
)
def test_bad_header(data: bytes, line: int, detail: str) -> None:
    code, at, byte, message = failure([data])
    assert (code, at, byte) == ("bad_header", line, None)
    assert message == f"line {line}: {detail}"


def test_header_with_a_quote_followed_by_junk() -> None:
    code, line, _, message = failure([b'"a"b,c\n1,2\n'])
    assert (code, line) == ("bad_header", 1)
    assert message.startswith("the header: line 1: a quoted cell must be followed")


def test_header_with_an_unclosed_quote() -> None:
    code, line, _, message = failure([b'\na,"b\n1,2\n'])
    assert (code, line) == ("bad_header", 2)
    assert message == "the header: a quoted cell opened on line 2 never closes"


# -- encodings -------------------------------------------------------------------

LATIN1 = "name,city\r\nAnn,Oslo\r\nJosé,Zürich\r\n".encode("latin-1")


def test_latin1_file_read_as_utf8_is_undecodable() -> None:
    code, line, byte, message = failure([LATIN1])
    assert (code, line) == ("undecodable", 3)
    assert byte == LATIN1.index(b"\xe9")
    assert message.startswith(f"line 3, byte {byte}: the bytes e9 ")


def test_undecodable_byte_in_a_later_feed() -> None:
    at = LATIN1.index(b"\xe9")
    for cut in (1, 12, 20, at - 1, at, at + 1):
        assert failure([LATIN1[:cut], LATIN1[cut:]])[:3] == ("undecodable", 3, at)


def test_undecodable_byte_in_a_long_file() -> None:
    data = big_file(b"\n") + b"1,\xff,3\n"
    for chunks in ([data], split(data, [4097, 8000, len(data) - 3])):
        assert failure(chunks)[:3] == ("undecodable", 172, data.index(b"\xff"))


def test_undecodable_inside_a_multiline_quoted_cell() -> None:
    data = b'a,b\n1,"x\r\ny\rz\xff"\n'
    assert failure([data])[:3] == ("undecodable", 4, data.index(b"\xff"))


def test_undecodable_after_a_bom_counts_the_bom() -> None:
    data = BOM + b"a\n\xc0\n"
    assert failure([data])[:3] == ("undecodable", 2, 5)


def test_latin1_file_read_as_latin1() -> None:
    assert rows(LATIN1, encoding="latin-1") == [
        (2, {"name": "Ann", "city": "Oslo"}, None),
        (3, {"name": "José", "city": "Zürich"}, None),
    ]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16(encoding: str) -> None:
    text = 'a;b\r\n€;"x\r\ny"\r\n'
    data = text.encode(encoding)
    if encoding == "utf-16":
        assert data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    assert rows(data, encoding=encoding) == [(2, {"a": "€", "b": "x\r\ny"}, None)]


def test_utf8_sig() -> None:
    assert rows(BOM + b"a\n1\n", encoding="utf-8-sig") == [(2, {"a": "1"}, None)]


def test_unknown_encoding() -> None:
    with pytest.raises(LookupError):
        csv_reader(encoding="no-such-codec")


# -- sizes ----------------------------------------------------------------------


def test_record_too_large() -> None:
    data = b'a,b\n1,2\n3,"' + b"x" * 100 + b'"\n'
    chunks = [data[i : i + 8] for i in range(0, len(data), 8)]
    code, line, byte, message = failure(chunks, max_item_bytes=10)
    assert (code, line, byte) == ("record_too_large", 3, None)
    assert message.startswith("line 3: a record goes on for more than 40 characters")


def test_record_too_large_on_a_later_line() -> None:
    data = b'a\n1\n\n"\r\n' + b"y\r\n" * 100
    chunks = [data[i : i + 5] for i in range(0, len(data), 5)]
    assert failure(chunks, max_item_bytes=10)[:2] == ("record_too_large", 4)


def test_header_too_large() -> None:
    chunks = [b"name" * 3] * 5
    assert failure(chunks, max_item_bytes=10)[:2] == ("record_too_large", 1)


def test_record_at_the_limit_is_read() -> None:
    # The limit is four times the item limit, in characters.
    reader = csv_reader(max_item_bytes=10)
    reader.feed(b"a\n")
    assert reader.feed("é".encode() * 40) == []
    assert reader.feed(b"\n") == [(2, ('{"a":"' + "é" * 40 + '"}').encode(), None)]
    reader = csv_reader(max_item_bytes=10)
    reader.feed(b"a\n")
    with pytest.raises(FileError) as caught:
        reader.feed(b"x" * 41)
    assert (caught.value.code, caught.value.line) == ("record_too_large", 2)


@pytest.mark.parametrize("csv_module", [True, False])
def test_a_megabyte_quoted_cell_across_many_feeds(csv_module: bool) -> None:
    cell = "line\r\n" * 10_000 + ('part, "quoted" é|' * 60_000)[:940_000]
    data = b"a,b\r\n1,2\r\n" + write_cell(cell, ",").encode() + b",x\r\n3,4\r\n"
    chunks = [data[i : i + 16384] for i in range(0, len(data), 16384)]
    assert len(chunks) > 60
    assert read(chunks, csv_module=csv_module) == read([data])
    assert rows(data) == [
        (2, {"a": "1", "b": "2"}, None),
        (3, {"a": cell, "b": "x"}, None),
        (4 + cell.count("\r\n"), {"a": "3", "b": "4"}, None),
    ]


@pytest.mark.parametrize("csv_module", [True, False])
def test_a_megabyte_bare_cell_across_many_feeds(csv_module: bool) -> None:
    cell = "abcdéfgh" * 125_000
    data = ("a,b\n" + "1,2\n" * 1000 + cell + ",x\n" + "3,4\n" * 1000).encode()
    chunks = [data[i : i + 10_000] for i in range(0, len(data), 10_000)]
    records, error = read(chunks, csv_module=csv_module)
    assert error is None
    assert len(records) == 2001
    assert records[1000] == (1002, ('{"a":"' + cell + '","b":"x"}').encode(), None)
    assert (records[0], records[-1]) == (
        (2, b'{"a":"1","b":"2"}', None),
        (2002, b'{"a":"3","b":"4"}', None),
    )
