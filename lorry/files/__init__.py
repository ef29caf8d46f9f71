"""Reading import files as they are uploaded: CSV, JSON arrays and NDJSON.

Each reader is fed the body's bytes as they arrive and returns the records
completed so far, each with the physical line where it starts; none holds
more of the file than one record.
"""

from __future__ import annotations

from typing import Protocol

from lorry.files.csv_records import CsvReader, Record
from lorry.files.json_records import JsonArrayReader, NdjsonReader
from lorry.files.text import MAX_DEPTH, FileError

__all__ = ["MAX_DEPTH", "FileError", "Record", "RecordReader", "open_reader"]

#: A record may be this many times the item limit before the file is refused
#: whole; up to that it is staged, and fails alone as too large.
_SLACK = 4


class RecordReader(Protocol):
    #: A CSV file's header, once read; None for JSON.
    columns: list[str] | None

    def feed(self, data: bytes) -> list[Record]: ...

    def end(self) -> list[Record]: ...


def open_reader(
    file_format: str,
    *,
    encoding: str | None = None,
    delimiter: str | None = None,
    max_item_bytes: int,
) -> RecordReader:
    limit = max_item_bytes * _SLACK
    if file_format == "csv":
        return CsvReader(encoding=encoding, delimiter=delimiter, max_record_chars=limit)
    if file_format == "ndjson":
        return NdjsonReader(encoding=encoding, max_record_chars=limit)
    if file_format == "json":
        return JsonArrayReader(encoding=encoding, max_record_chars=limit)
    raise FileError("invalid_option", f"no reader for format {file_format!r}")
