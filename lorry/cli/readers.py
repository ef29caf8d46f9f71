"""Streaming readers for the files ``lorry import`` takes: CSV, JSON arrays and
NDJSON. None of them holds the whole file in memory."""

import csv
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

__all__ = [
    "InputError",
    "InputFile",
    "open_input",
    "read_csv",
    "read_json_array",
    "read_ndjson",
]

_BOM = b"\xef\xbb\xbf"
_WHITESPACE = " \t\r\n"
#: An array element still unfinished at this size is taken as broken JSON,
#: rather than reading the rest of the file into memory looking for its end.
MAX_ELEMENT_CHARS = 64 << 20


class InputError(Exception):
    """The input file cannot be read as the format it claims to be."""


class _CountingReader(io.RawIOBase):
    """Counts the bytes read, which tells how far through the file we are."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        self.bytes_read += count
        return count


class InputFile:
    """An open input file that knows its size and how much has been read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self._file = path.open("rb")
        self._counter = _CountingReader(self._file)
        self.stream: BinaryIO = io.BufferedReader(self._counter)

    @property
    def bytes_read(self) -> int:
        return self._counter.bytes_read

    def close(self) -> None:
        self.stream.close()
        self._file.close()


@contextmanager
def open_input(path: Path) -> Iterator[InputFile]:
    source = InputFile(path)
    try:
        yield source
    finally:
        source.close()


def read_csv(
    stream: BinaryIO, *, delimiter: str = ",", name: str = "input"
) -> tuple[list[str], Iterator[dict[str, str]]]:
    """Read the header row now; the rows, as ``{column: cell}``, lazily.

    The file is UTF-8 with or without a byte-order mark. Empty cells are left
    out of the rows, so that they read as null rather than as ``""``.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    try:
        header = [column.strip() for column in next(reader, [])]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{name}: cannot read the CSV header: {exc}") from exc

    def rows() -> Iterator[dict[str, str]]:
        try:
            for row in reader:
                if row:
                    yield {
                        column: cell
                        for column, cell in zip(header, row, strict=False)
                        if cell != ""
                    }
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(
                f"{name}, line {reader.line_num}: not valid CSV: {exc}"
            ) from exc

    return header, rows()


def read_ndjson(stream: BinaryIO, *, name: str = "input") -> Iterator[Any]:
    """Yield the value of every non-blank line.

    A line that is not valid JSON is passed on untouched as ``msgspec.Raw``,
    so that the server reports it as an ``invalid_json`` item at its index
    instead of the whole import failing.
    """
    decoder = msgspec.json.Decoder()
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        line = line.strip()
        if not line:
            continue
        try:
            yield decoder.decode(line)
        except msgspec.DecodeError:
            yield msgspec.Raw(line)


def read_json_array(
    stream: BinaryIO, *, name: str = "input", chunk_chars: int = 1 << 16
) -> Iterator[Any]:
    """Yield the elements of a top-level JSON array one at a time.

    msgspec cannot decode part of a document, so this streams with the
    standard library's C scanner instead: ``raw_decode`` one element from a
    buffer, reading more of the file when the element is cut off.
    """
    return _JsonArrayReader(stream, name, chunk_chars).elements()


class _JsonArrayReader:
    def __init__(self, stream: BinaryIO, name: str, chunk_chars: int) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8-sig")
        self._name = name
        self._chunk = chunk_chars
        self._decoder = json.JSONDecoder()
        self._buffer = ""
        self._pos = 0
        self._consumed = 0
        self._eof = False

    def elements(self) -> Iterator[Any]:
        if self._next_char() != "[":
            raise self._error("a JSON array file must start with '['")
        self._pos += 1
        if self._next_char() == "]":
            self._pos += 1
        else:
            while True:
                yield self._value()
                char = self._next_char()
                self._pos += 1
                if char == "]":
                    break
                if char != ",":
                    raise self._error("expected ',' or ']' after an array element")
        if self._next_char() != "":
            raise self._error("unexpected data after the closing ']'")

    def _fill(self, at_least: int) -> None:
        try:
            more = self._text.read(max(self._chunk, at_least))
        except UnicodeDecodeError as exc:
            raise self._error(f"not UTF-8: {exc}") from exc
        self._eof = not more
        self._consumed += self._pos
        self._buffer = self._buffer[self._pos :] + more
        self._pos = 0

    def _next_char(self) -> str:
        """Skip whitespace; return the next character, or "" at the end."""
        while True:
            while (
                self._pos < len(self._buffer) and self._buffer[self._pos] in _WHITESPACE
            ):
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if self._eof:
                return ""
            self._fill(0)

    def _value(self) -> Any:
        self._next_char()
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                too_large = len(self._buffer) - self._pos > MAX_ELEMENT_CHARS
                if self._eof or too_large:
                    raise self._error(f"invalid JSON: {exc.msg}") from exc
                # Read at least as much again, so that an element spanning
                # many chunks costs linear time, not quadratic.
                self._fill(len(self._buffer))
                continue
            # A number that ends exactly at the buffer's end may go on in
            # the next chunk.
            if end == len(self._buffer) and not self._eof:
                self._fill(len(self._buffer))
                continue
            self._pos = end
            return value

    def _error(self, message: str) -> InputError:
        return InputError(
            f"{self._name}, near character {self._consumed + self._pos}: {message}"
        )
