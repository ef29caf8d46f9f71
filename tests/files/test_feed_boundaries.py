"""Where the feeds of an upload end changes nothing: a doubled quote, a CRLF
or a record's size split across feeds read as they do in one piece."""

from __future__ import annotations

import pytest

from lorry.files import FileError, Record, open_reader


def feed_all(
    fmt: str, chunks: list[bytes], max_item_bytes: int = 1 << 20
) -> list[Record]:
    reader = open_reader(fmt, max_item_bytes=max_item_bytes)
    out: list[Record] = []
    for chunk in chunks:
        out += reader.feed(chunk)
    return out + reader.end()


def test_csv_doubled_quote_then_line_end_split_in_quoted_cell() -> None:
    whole = feed_all("csv", [b'a\n"x""\ny"\n'])
    assert whole == [(2, b'{"a":"x\\"\\ny"}', None)]
    assert feed_all("csv", [b'a\n"x""\n', b'y"\n']) == whole


def test_csv_unclosed_cell_ending_in_doubled_quote_says_never_closes() -> None:
    [(_, _, error)] = feed_all("csv", [b'a\n"x""\n'])
    assert error == ("malformed_csv", "a quoted cell opened on line 2 never closes")


def test_json_crlf_split_between_cr_and_lf() -> None:
    whole = feed_all("json", [b"[1,\r\n2]"])
    assert whole == [(1, b"1", None), (2, b"2", None)]
    assert feed_all("json", [b"[1,\r", b"\n2]"]) == whole


def test_json_crlf_before_the_array_split() -> None:
    assert feed_all("json", [b"   \r", b"\n[1]"]) == [(2, b"1", None)]


@pytest.mark.parametrize(
    "fmt,data",
    [
        ("csv", b"a\n" + b"x" * 100 + b"\n"),
        ("ndjson", b'"' + b"x" * 100 + b'"\n'),
        ("json", b'["' + b"x" * 100 + b'"]'),
    ],
)
def test_record_too_large_whatever_the_feeds(fmt: str, data: bytes) -> None:
    # max_item_bytes=10 -> limit 40 chars; split feeds raise, one feed does not.
    with pytest.raises(FileError):
        feed_all(fmt, [data[:50], data[50:]], max_item_bytes=10)
    with pytest.raises(FileError):
        feed_all(fmt, [data], max_item_bytes=10)


def test_csv_header_too_large_names_the_header_line() -> None:
    with pytest.raises(FileError) as caught:
        feed_all("csv", [b"\n\n" + b"n" * 50], max_item_bytes=10)
    assert caught.value.line == 3
