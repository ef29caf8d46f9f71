"""Unit tests for lorry.files.text: decoding uploads with positions."""

from __future__ import annotations

import codecs
import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lorry.files import MAX_DEPTH, FileError, open_reader
from lorry.files.text import TextDecoder, count_breaks
from lorry.schema.validator import MAX_JSON_DEPTH

BOM = codecs.BOM_UTF8


def decode_all(
    decoder: TextDecoder, chunks: list[bytes], line_at: int = 1, before: str = ""
) -> str:
    """Decode like a reader that consumes none of the text: all of it is
    ``before``, the pending text that starts on ``line_at``."""
    text = before
    for chunk in chunks:
        text += decoder.decode(chunk, False, line_at, text)
    text += decoder.decode(b"", True, line_at, text)
    return text[len(before) :]


def undecodable(
    chunks: list[bytes], encoding: str | None = None, before: str = ""
) -> FileError:
    decoder = TextDecoder(encoding)
    with pytest.raises(FileError) as caught:
        decode_all(decoder, chunks, before=before)
    assert caught.value.code == "undecodable"
    return caught.value


# -- count_breaks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "breaks"),
    [
        ("", 0),
        ("abc", 0),
        ("a\nb", 1),
        ("a\r\nb", 1),
        ("a\rb", 1),
        ("\r\r", 2),
        ("\n\r", 2),
        ("\r\n\r\n", 2),
        ("\n\n\n", 3),
        ("a\r\n\rb\nc", 3),
        ("\u2028\x85\x0b\x0c", 0),
    ],
)
def test_count_breaks(text: str, breaks: int) -> None:
    assert count_breaks(text) == breaks


@given(st.lists(st.sampled_from(["x", "é", "\r\n", "\r", "\n", " "]), max_size=40))
@settings(max_examples=200, deadline=None)
def test_count_breaks_counts_each_line_end_once(parts: list[str]) -> None:
    text = "".join(parts)
    assert count_breaks(text) == len(re.findall(r"\r\n|\r|\n", text))


# -- FileError --------------------------------------------------------------


def test_file_error_carries_code_message_and_position() -> None:
    error = FileError("undecodable", "line 3, byte 9: bad", line=3, byte=9)
    assert isinstance(error, Exception)
    assert (error.code, error.message, error.line, error.byte) == (
        "undecodable",
        "line 3, byte 9: bad",
        3,
        9,
    )
    assert str(error) == "line 3, byte 9: bad"


def test_file_error_position_is_optional() -> None:
    error = FileError("invalid_option", "nope")
    assert error.line is None
    assert error.byte is None


def test_max_depth_is_a_record_and_the_deepest_json_value_in_it() -> None:
    assert MAX_DEPTH == MAX_JSON_DEPTH + 1


def test_open_reader_refuses_an_unknown_format() -> None:
    with pytest.raises(FileError) as caught:
        open_reader("xml", max_item_bytes=100)
    assert caught.value.code == "invalid_option"
    assert "xml" in caught.value.message


# -- decoding ---------------------------------------------------------------


def test_default_encoding_is_utf8() -> None:
    assert TextDecoder(None).encoding == "utf-8"
    assert TextDecoder("UTF8").encoding == "utf-8"
    assert TextDecoder("latin_1").encoding == "iso8859-1"


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(LookupError):
        TextDecoder("no-such-codec")


def test_bom_is_stripped() -> None:
    assert decode_all(TextDecoder(None), [BOM + b"a,b\n"]) == "a,b\n"


def test_bom_is_stripped_for_an_alias_of_utf8() -> None:
    assert decode_all(TextDecoder("UTF8"), [BOM + b"x"]) == "x"


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_bom_split_across_feeds_is_stripped(cut: int) -> None:
    data = BOM + "é\n".encode()
    assert decode_all(TextDecoder(None), [data[:cut], data[cut:]]) == "é\n"


def test_bom_fed_one_byte_at_a_time_is_stripped() -> None:
    data = BOM + b"ab"
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert decode_all(TextDecoder(None), chunks) == "ab"


def test_only_the_first_bom_is_stripped() -> None:
    text = decode_all(TextDecoder(None), [BOM + BOM + b"a"])
    assert text == "\ufeffa"


def test_a_bom_later_in_the_file_is_kept() -> None:
    assert decode_all(TextDecoder(None), [b"a" + BOM]) == "a\ufeff"


def test_a_file_of_only_a_bom_is_empty() -> None:
    assert decode_all(TextDecoder(None), [BOM]) == ""


@pytest.mark.parametrize("data", [b"", b"a", b"ab", "\u00ef".encode()])
def test_short_files_without_a_bom(data: bytes) -> None:
    assert decode_all(TextDecoder(None), [data]) == data.decode()


def test_a_partial_bom_at_the_end_is_undecodable_at_byte_0() -> None:
    error = undecodable([b"\xef\xbb"])
    assert (error.line, error.byte) == (1, 0)


def test_utf8_sig_strips_its_own_bom() -> None:
    assert decode_all(TextDecoder("utf-8-sig"), [BOM[:1], BOM[1:] + b"z"]) == "z"


def test_utf16_with_bom() -> None:
    data = "a;b\r\né;ü\r\n".encode("utf-16")
    assert data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    chunks = [data[i : i + 1] for i in range(len(data))]
    assert decode_all(TextDecoder("utf-16"), chunks) == "a;b\r\né;ü\r\n"


@pytest.mark.parametrize("cut", range(1, 4))
def test_multibyte_character_split_across_feeds(cut: int) -> None:
    data = "€".encode() + b"!"
    assert len("€".encode()) == 3
    assert decode_all(TextDecoder(None), [data[:cut], data[cut:]]) == "€!"


def test_latin1_read_as_latin1() -> None:
    data = "name\nJosé\n".encode("latin-1")
    assert decode_all(TextDecoder("latin-1"), [data]) == "name\nJosé\n"


# -- undecodable bytes: line and byte offset ---------------------------------


def test_undecodable_names_line_and_byte() -> None:
    data = "name,city\nJosé,Zürich\n".encode("latin-1")
    error = undecodable([data])
    assert data[error.byte or 0] == 0xE9
    assert (error.line, error.byte) == (2, 13)
    assert "line 2, byte 13" in error.message
    assert "e9" in error.message
    assert "utf-8" in error.message


def test_undecodable_offset_counts_the_bom() -> None:
    data = BOM + b"a\nb\xff"
    error = undecodable([data])
    assert (error.line, error.byte) == (2, 6)


def test_undecodable_in_a_later_feed() -> None:
    first = b"a,b\r\n1,2\r\n"
    second = b"3,4\n\xe9,5\n"
    error = undecodable([first, second])
    assert (error.line, error.byte) == (4, len(first) + 4)


def test_undecodable_character_started_in_an_earlier_feed() -> None:
    # \xc3 starts a 2-byte character that "(" does not complete.
    error = undecodable([b"ab\n\xc3", b"(x"])
    assert (error.line, error.byte) == (2, 3)


def test_truncated_character_at_the_end_of_the_file() -> None:
    error = undecodable([b"a\nb", b"\xe2\x82"])
    assert (error.line, error.byte) == (2, 3)


def test_undecodable_line_counts_the_text_not_yet_consumed() -> None:
    decoder = TextDecoder(None)
    with pytest.raises(FileError) as caught:
        decoder.decode(b"x\r\ny\xff", False, 7, "pending\rline\n")
    assert caught.value.line == 7 + 2 + 1
    assert caught.value.byte == 4


def test_undecodable_line_joins_a_crlf_across_pending_text() -> None:
    decoder = TextDecoder(None)
    with pytest.raises(FileError) as caught:
        # Four bytes: the first feed is held until a byte-order mark can be told.
        decoder.decode(b"\nz\xff\x00", False, 1, "a\r")
    assert caught.value.line == 2


def test_undecodable_utf16() -> None:
    data = "a\n".encode("utf-16-le") + b"\x00\xd8" + "b".encode("utf-16-le")
    error = undecodable([codecs.BOM_UTF16_LE + data], encoding="utf-16")
    assert (error.line, error.byte) == (2, 6)
    assert "utf-16" in error.message


@given(
    st.text(alphabet="ab\r\né€😀", max_size=30),
    st.text(alphabet="ab\r\né€😀", max_size=30),
    st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xe9"]),
    st.data(),
)
@settings(max_examples=200, deadline=None)
def test_undecodable_position_is_the_same_for_any_split(
    head: str, tail: str, bad: bytes, data: st.DataObject
) -> None:
    data_bytes = head.encode() + bad + tail.encode()
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(data_bytes)), max_size=5), "cuts")
    )
    bounds = [0, *cuts, len(data_bytes)]
    chunks = [data_bytes[a:b] for a, b in itertools.pairwise(bounds)]
    error = undecodable(chunks)
    assert error.byte == len(head.encode())
    assert error.line == 1 + count_breaks(head)


@given(st.text(max_size=60), st.data())
@settings(max_examples=200, deadline=None)
def test_decoding_in_random_splits_gives_the_text(
    text: str, data: st.DataObject
) -> None:
    raw = data.draw(st.sampled_from([b"", BOM]), "bom") + text.encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6), "cuts"))
    bounds = [0, *cuts, len(raw)]
    chunks = [raw[a:b] for a, b in itertools.pairwise(bounds)]
    # Only a leading BOM goes: text that itself starts with U+FEFF keeps it.
    assert decode_all(TextDecoder(None), chunks) == text


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_byte_order_mark_says_the_encoding_when_none_is_given(codec: str) -> None:
    mark = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(
        codec, codecs.BOM_UTF32_LE if codec == "utf-32-le" else codecs.BOM_UTF32_BE
    )
    data = mark + "a,b\r\né,😀\n".encode(codec)
    for size in (1, 3, len(data)):
        decoder = TextDecoder(None)
        parts = [data[i : i + size] for i in range(0, len(data), size)]
        text = "".join(decoder.decode(p, False, 1, "") for p in parts)
        assert text + decoder.decode(b"", True, 1, "") == "a,b\r\né,😀\n"
