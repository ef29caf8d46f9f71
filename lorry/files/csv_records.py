"""CSV records, cut out of an upload as its bytes arrive.

An import must tell an empty cell (null) from a quoted empty one (``""``, an
empty string), which Python 3.11's csv module cannot, and must name the
physical line where each record starts. So the csv module reads, at C speed,
each run of complete lines where it cannot be wrong: no quoted empty cell in
the text and nothing it refuses in strict mode. Everything else, and every error, goes
through the reading written here, which is the reference for both.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import msgspec

from lorry.files.text import FileError, TextDecoder, count_breaks

__all__ = ["CsvReader", "Record"]

#: (line where the record starts, the record as a JSON object, error or None)
Record = tuple[int, bytes, tuple[str, str] | None]

_CANDIDATES = (",", ";", "\t", "|")
_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_QUOTED_RUNS = re.compile(r'"[^"]*"')
_LINE_END = re.compile(r"\r\n|\r|\n")
_encode = msgspec.json.encode


class _Incomplete(Exception):
    """The record goes on past the bytes received so far."""


class _NotForCsv(Exception):
    """A run of lines the csv module might read differently from ours."""


def sniff(line: str) -> str:
    """The delimiter of a header line: the candidate that appears most often
    outside quotes (a comma when none does)."""
    bare = _QUOTED_RUNS.sub("", line)
    counts = [bare.count(c) for c in _CANDIDATES]
    best = max(counts)
    return _CANDIDATES[counts.index(best)] if best else ","


class CsvReader:
    """Feed it bytes; it returns the records completed so far."""

    def __init__(
        self, *, encoding: str | None, delimiter: str | None, max_record_chars: int
    ) -> None:
        self._text = TextDecoder(encoding)
        self._delimiter = delimiter
        self._max = max_record_chars
        self._buf = ""
        #: The physical line where ``_buf`` starts.
        self._line = 1
        self.columns: list[str] | None = None
        self._row_type: type[msgspec.Struct] | None = None
        self._scan: re.Pattern[str] | None = None
        self._bare: re.Pattern[str] | None = None
        #: Until this position of ``_buf`` records are read one by one.
        self._slow_until = 0
        #: Off in tests that compare both readings.
        self.use_csv_module = True
        if delimiter is not None:
            self._use(delimiter)

    def _use(self, delimiter: str) -> None:
        self._delimiter = delimiter
        d = re.escape(delimiter)
        self._scan = re.compile(r'["\r\n]')
        self._bare = re.compile(rf"[^{d}\r\n]*")

    def feed(self, data: bytes) -> list[Record]:
        return self._parse(data, final=False)

    def end(self) -> list[Record]:
        return self._parse(b"", final=True)

    def _parse(self, data: bytes, final: bool) -> list[Record]:
        self._buf += self._text.decode(data, final, self._line, self._buf)
        records: list[Record] = []
        pos = 0
        while pos < len(self._buf):
            if self._delimiter is None:
                pos, known = self._sniff(pos, final)
                if not known:
                    break
            if (
                self.use_csv_module
                and self.columns is not None
                and pos >= self._slow_until
            ):
                block = self._block(pos, final)
                if block is not None:
                    records += block[0]
                    pos = block[1]
                    continue
            try:
                cells, error, end, breaks = self._record(pos, final)
            except _Incomplete:
                break
            line = self._line
            if end - pos > self._max and self._length(pos, end) > self._max:
                raise self._too_large(line)
            self._line += breaks
            pos = end
            if cells is None and error is None:
                continue  # a blank line
            if self.columns is None:
                self._header(cells or [], error, line)
            else:
                records.append(self._make(line, cells or [], error))
        self._buf = self._buf[pos:]
        self._slow_until = max(0, self._slow_until - pos)
        # What is left is the start of one record (and maybe the CR of its
        # line end): the record, once whole, is no shorter, so where the
        # feeds happen to end changes nothing.
        left = len(self._buf) - self._buf.endswith("\r")
        if left > self._max:
            raise self._too_large(self._line)
        return records

    def _length(self, pos: int, end: int) -> int:
        """The length of the record from ``pos`` to ``end``, its line end
        left out."""
        buf = self._buf
        if buf.startswith("\r\n", end - 2) and end - 2 >= pos:
            return end - 2 - pos
        if end > pos and buf[end - 1] in "\r\n":
            return end - 1 - pos
        return end - pos

    def _too_large(self, line: int) -> FileError:
        return FileError(
            "record_too_large",
            f"line {line}: a record goes on for more than {self._max} "
            "characters (an unclosed quote?)",
            line=line,
        )

    def _sniff(self, pos: int, final: bool) -> tuple[int, bool]:
        """Skip blank lines and pick the delimiter from the first line with
        any content: the position reached, and whether it is known."""
        buf = self._buf
        while True:
            match = _LINE_END.search(buf, pos)
            if match is None and not final:
                return pos, False
            line = buf[pos : match.start() if match else len(buf)]
            if line.strip() or match is None:
                self._use(self._delimiter or sniff(line))
                return pos, True
            if match.group() == "\r" and match.end() == len(buf) and not final:
                return pos, False  # its LF may be in the next feed
            pos = match.end()
            self._line += 1

    def _block(self, pos: int, final: bool) -> tuple[list[Record], int] | None:
        """Read the complete lines from ``pos`` with the csv module, or say
        (None) that they are to be read one by one, up to ``_slow_until``."""
        buf = self._buf
        cut = self._block_end(pos, final)
        if cut - pos < 4096:
            self._slow_until = cut
            return None
        region = buf[pos:cut]
        if len(region) > self._max:
            # A record may be too large: the slow reading measures each.
            self._slow_until = cut
            return None
        if region.count('"') % 2 or self._has_empty_quoted(region):
            self._slow_until = cut
            return None
        try:
            records = self._csv_records(region)
        except (_NotForCsv, csv.Error):
            self._slow_until = cut
            return None
        self._line += count_breaks(region)
        return records, cut

    def _has_empty_quoted(self, region: str) -> bool:
        """Whether the text holds what looks like a quoted empty cell: ``""``
        between delimiters or line ends. (Inside a quoted cell the same text
        is a doubled quote; the run is then read the slow way, which is
        right either way.)"""
        bounds = (self._delimiter, "\r", "\n")
        at = region.find('""')
        last = len(region) - 2
        while at != -1:
            before = at == 0 or region[at - 1] in bounds
            if before and (at == last or region[at + 2] in bounds):
                return True
            at = region.find('""', at + 1)
        return False

    def _block_end(self, pos: int, final: bool) -> int:
        """Just past the last line break that surely ends a line."""
        buf = self._buf
        if final:
            return len(buf)
        at = max(buf.rfind("\n", pos), buf.rfind("\r", pos))
        if at == len(buf) - 1 and buf[at] == "\r":
            # It may be the CR of a CRLF whose LF has not arrived.
            at = max(buf.rfind("\n", pos, at), buf.rfind("\r", pos, at))
        return at + 1 if at >= pos else pos

    def _csv_records(self, region: str) -> list[Record]:
        assert self._delimiter is not None
        delimiter = self._delimiter
        spaced = delimiter.isspace()
        rows = csv.reader(
            io.StringIO(region, newline=""), delimiter=delimiter, strict=True
        )
        records: list[Record] = []
        make = self._make
        columns = self.columns
        assert columns is not None
        width = len(columns)
        encode = _encode
        row_type = self._row_type
        base = self._line
        start = 0
        for row in rows:
            line = base + start
            start = rows.line_num
            if not row:
                continue  # a blank line
            if not row[0].strip() and (len(row) == 1 or spaced):
                # Blank, or a quoted blank cell? Only the raw line can tell.
                if not "".join(row).strip():
                    raise _NotForCsv
            if len(row) == width and row_type is not None:
                # Cells are text; an empty one is null (no quoted empty cell
                # comes this way), and null is what the encoding then says.
                raw = encode(row_type(*row)).replace(b':""', b":null")
                records.append((line, raw, None))
            else:
                records.append(make(line, [c or None for c in row], None))
        return records

    def _record(
        self, pos: int, final: bool
    ) -> tuple[list[str | None] | None, str | None, int, int]:
        """Read the record at ``pos``: (cells, error, end, line breaks)."""
        assert self._scan is not None and self._delimiter is not None
        buf = self._buf
        found = self._scan.search(buf, pos)
        if found is None or found.group() != '"':
            eol = len(buf) if found is None else found.start()
            if found is None and not final:
                raise _Incomplete
            end, breaks = self._line_end(eol, final)
            line = buf[pos:eol]
            if not line.strip():
                return None, None, end, breaks
            cells = [c or None for c in line.split(self._delimiter)]
            return cells, None, end, breaks
        return self._quoted_record(pos, final)

    def _line_end(self, at: int, final: bool) -> tuple[int, int]:
        """Where the line break at ``at`` ends, and how many breaks (0 or 1)."""
        buf = self._buf
        if at >= len(buf):
            return at, 0
        if buf[at] == "\r":
            if at + 1 == len(buf) and not final:
                raise _Incomplete  # a CR whose LF has not arrived yet
            return (at + 2, 1) if buf.startswith("\n", at + 1) else (at + 1, 1)
        return at + 1, 1

    def _quoted_record(
        self, pos: int, final: bool
    ) -> tuple[list[str | None] | None, str | None, int, int]:
        assert self._bare is not None and self._delimiter is not None
        buf, delimiter = self._buf, self._delimiter
        cells: list[str | None] = []
        breaks = 0
        while True:
            if pos < len(buf) and buf[pos] == '"':
                match = _QUOTED.match(buf, pos)
                # A closing quote at the very end may be the first of a
                # doubled quote whose second half has not arrived; a quote
                # right after the match means it gave up a doubled quote to
                # close early: the real closing quote has not come (yet).
                end = match.end() if match is not None else len(buf)
                if (
                    match is None
                    or (end == len(buf) and not final)
                    or (end < len(buf) and buf[end] == '"')
                ):
                    if not final:
                        raise _Incomplete
                    line = self._line + breaks
                    return (
                        None,
                        f"a quoted cell opened on line {line} never closes",
                        len(buf),
                        breaks + count_breaks(buf[pos:]),
                    )
                value = match.group(1)
                breaks += count_breaks(value)
                cells.append(value.replace('""', '"'))
                pos = match.end()
                if pos < len(buf) and buf[pos] not in (delimiter, "\r", "\n"):
                    return self._malformed(pos, final, breaks)
            else:
                bare = self._bare.match(buf, pos)
                assert bare is not None
                cells.append(bare.group() or None)
                pos = bare.end()
            if pos >= len(buf):
                if not final:
                    raise _Incomplete
                return cells, None, pos, breaks
            if buf[pos] == delimiter:
                pos += 1
                continue
            end, more = self._line_end(pos, final)
            return cells, None, end, breaks + more

    def _malformed(
        self, pos: int, final: bool, breaks: int
    ) -> tuple[list[str | None] | None, str | None, int, int]:
        found = _LINE_END.search(self._buf, pos)
        if found is None and not final:
            raise _Incomplete
        end, more = self._line_end(found.start() if found else len(self._buf), final)
        line = self._line + breaks
        return (
            None,
            f"line {line}: a quoted cell must be followed by the delimiter or "
            "the end of the line",
            end,
            breaks + more,
        )

    def _header(self, cells: list[str | None], error: str | None, line: int) -> None:
        if error is not None:
            raise FileError("bad_header", f"the header: {error}", line=line)
        names = [(c or "").strip() for c in cells]
        seen: dict[str, int] = {}
        for number, name in enumerate(names, start=1):
            if not name:
                raise FileError(
                    "bad_header",
                    f"line {line}: column {number} of the header has no name",
                    line=line,
                )
            if name in seen:
                raise FileError(
                    "bad_header",
                    f"line {line}: the header names {name!r} twice "
                    f"(columns {seen[name]} and {number})",
                    line=line,
                )
            seen[name] = number
        self.columns = names
        # A row as a struct encodes to its JSON object faster than a dict;
        # names that a struct cannot take (quotes, control characters) go
        # the dict's way.
        try:
            self._row_type = msgspec.defstruct(
                "CsvRow",
                [(f"c{n}", Any) for n in range(len(names))],
                rename={f"c{n}": name for n, name in enumerate(names)},
            )
        except (ValueError, TypeError):
            self._row_type = None

    def _make(self, line: int, cells: list[str | None], error: str | None) -> Record:
        columns = self.columns
        assert columns is not None
        if error is None and len(cells) == len(columns) and self._row_type:
            return line, _encode(self._row_type(*cells)), None
        record: dict[str, Any] = dict(zip(columns, cells, strict=False))
        if error is not None:
            return line, _encode(record), ("malformed_csv", error)
        if len(cells) != len(columns):
            return (
                line,
                _encode(record),
                (
                    "wrong_cell_count",
                    f"line {line} has {len(cells)} cells; the header has "
                    f"{len(columns)}",
                ),
            )
        return line, _encode(record), None
