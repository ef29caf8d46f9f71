"""The files of export jobs: NDJSON, JSON and CSV, written from stored rows.

Items are written flat, as ``GET /items`` shows them (lorry.store.items
``render``), so that an import of the file recreates them. The hot path
(NDJSON and JSON of whole items) splices the JSON text stored in
``items.data`` between the system keys instead of decoding and encoding
every item; keep :func:`_spliced` in step with ``render``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import msgspec

from lorry.clock import to_iso
from lorry.schema.fields import ItemTypeDef
from lorry.store import items as item_store

__all__ = [
    "CONTENT_TYPES",
    "EXTENSIONS",
    "FORMATS",
    "FileWriter",
    "csv_cell",
    "csv_columns",
    "make_writer",
]

FORMATS = ("json", "ndjson", "csv")
EXTENSIONS = {"json": "json", "ndjson": "ndjson", "csv": "csv"}
CONTENT_TYPES = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
_SYSTEM_COLUMNS = ("id", "item_type", "created_at", "updated_at")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode

Row = tuple[Any, ...]


class _Stamps:
    """ISO text of timestamps; rows written together often share one."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._text = b""

    def __call__(self, us: int) -> bytes:
        if us != self._last:
            self._last = us
            self._text = (to_iso(us) or "").encode()
        return self._text


class _RowView(msgspec.Struct, array_like=True):
    """A row with the attribute names ``render`` reads."""

    id: str
    item_type_pk: int
    data: bytes
    version: int
    created_at: int
    updated_at: int
    created_by_job: str | None
    updated_by_job: str | None


def _job_text(job_id: str | None) -> bytes:
    return b"null" if job_id is None else b'"' + job_id.encode() + b'"'


class _ItemJson:
    """Encodes a row as the flat item JSON of the API."""

    def __init__(self, types: dict[int, ItemTypeDef], fields: list[str] | None):
        self.type_keys = {pk: t.api_key for pk, t in types.items()}
        self.keys_json = {pk: _encode(key) for pk, key in self.type_keys.items()}
        # Stored data starts with the type's tag, as msgspec writes it.
        self.prefixes = {pk: b'{"item_type":' + k for pk, k in self.keys_json.items()}
        self.wanted = (
            None
            if fields is None
            else {
                pk: [f.api_key for f in t.fields if f.api_key in fields]
                for pk, t in types.items()
            }
        )
        self.stamp = _Stamps()

    def __call__(self, row: Row) -> bytes:
        if self.wanted is None:
            spliced = self._spliced(row)
            if spliced is not None:
                return spliced
        item = item_store.render(_RowView(*row), self.type_keys)
        if self.wanted is not None:
            keep = self.wanted[row[1]]
            item = {
                k: v
                for k, v in item.items()
                if k in keep or k in _SYSTEM_COLUMNS or k == "meta"
            }
        return _encode(item)

    def _spliced(self, row: Row) -> bytes | None:
        item_id, type_pk, data, version, created, updated, by, changed_by = row
        prefix = self.prefixes[type_pk]
        if not data.startswith(prefix) or len(data) <= len(prefix):
            return None
        rest = data[len(prefix) : -1]
        if rest and rest[:1] != b",":
            return None
        stamp = self.stamp
        return b"".join(
            (
                b'{"id":"',
                item_id.encode(),
                b'","item_type":',
                self.keys_json[type_pk],
                rest,
                b',"created_at":"',
                stamp(created),
                b'","updated_at":"',
                stamp(updated),
                b'","meta":{"version":',
                str(version).encode(),
                b',"created_by_job":',
                _job_text(by),
                b',"updated_by_job":',
                _job_text(changed_by),
                b"}}",
            )
        )


def csv_cell(value: Any, field_type: str | None = None, delimiter: str = ",") -> str:
    """One CSV cell, so that null (empty, unquoted) and "" (quoted) differ.

    Python's csv module writes both as an empty cell. Text is quoted only
    when it must be: it holds the delimiter, a quote, CR or LF, or starts
    or ends with a space (which readers may trim); quotes are doubled.
    """
    if value is None:
        return ""
    if field_type in ("json", "links"):
        text = _encode(value).decode()
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, float):
        # repr is the shortest text that reads back as the same float.
        return repr(value) if math.isfinite(value) else ""
    elif isinstance(value, str):
        text = value
    else:
        text = _encode(value).decode()
    if text == "":
        return '""'
    if (
        delimiter in text
        or '"' in text
        or "\r" in text
        or "\n" in text
        or text[0] == " "
        or text[-1] == " "
    ):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_columns(types: list[ItemTypeDef], fields: list[str] | None) -> list[str]:
    """The field columns: the union over the types, in type then field order."""
    columns: list[str] = []
    seen: set[str] = set()
    for t in types:
        for f in t.fields:
            if f.api_key not in seen and (fields is None or f.api_key in fields):
                seen.add(f.api_key)
                columns.append(f.api_key)
    return columns


class FileWriter:
    """Turns batches of rows into the bytes of one export file."""

    def __init__(
        self,
        start: bytes,
        encode: Callable[[Row], bytes],
        separator: bytes,
        end: bytes,
        first_separator: bytes = b"",
        empty_end: bytes = b"",
    ) -> None:
        self.start = start
        self._end = end
        self._empty_end = empty_end
        self._encode = encode
        self._separator = separator
        self._first_separator = first_separator
        self._first = True

    def batch(self, rows: list[Row]) -> bytes:
        body = self._separator.join(map(self._encode, rows))
        if self._first:
            self._first = False
            return self._first_separator + body
        return self._separator + body

    def finish(self) -> bytes:
        """The bytes that close the file."""
        return self._empty_end if self._first else self._end


def _csv_writer(
    types: dict[int, ItemTypeDef],
    columns: list[str],
    delimiter: str,
    bom: bool,
) -> FileWriter:
    type_keys = {pk: t.api_key for pk, t in types.items()}
    field_types = {
        pk: {f.api_key: f.field_type for f in t.fields} for pk, t in types.items()
    }
    stamp = _Stamps()

    def encode(row: Row) -> bytes:
        item_id, type_pk, data, _v, created, updated, _by, _changed = row
        values = _decode(data)
        known = field_types[type_pk]
        cells = [
            csv_cell(item_id, None, delimiter),
            csv_cell(type_keys[type_pk], None, delimiter),
            stamp(created).decode(),
            stamp(updated).decode(),
        ]
        cells.extend(
            csv_cell(values.get(c), known.get(c), delimiter) if c in known else ""
            for c in columns
        )
        return delimiter.join(cells).encode()

    header = delimiter.join(
        csv_cell(c, None, delimiter) for c in (*_SYSTEM_COLUMNS, *columns)
    )
    start = (b"\xef\xbb\xbf" if bom else b"") + header.encode()
    return FileWriter(
        start, encode, b"\r\n", b"\r\n", first_separator=b"\r\n", empty_end=b"\r\n"
    )


def make_writer(
    file_format: str,
    types: list[ItemTypeDef],
    fields: list[str] | None,
    *,
    delimiter: str = ",",
    bom: bool = False,
) -> FileWriter:
    by_pk = {t.pk: t for t in types}
    if file_format == "csv":
        return _csv_writer(by_pk, csv_columns(types, fields), delimiter, bom)
    encode = _ItemJson(by_pk, fields)
    if file_format == "ndjson":
        return FileWriter(b"", encode, b"\n", b"\n")
    return FileWriter(b"[", encode, b",\n", b"\n]\n", b"\n", b"]\n")
