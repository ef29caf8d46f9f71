"""CSV rows that are items but for their type are validated straight from
their bytes; this proves that whatever that reading takes, the whole reading
(plan, then validator) takes too, as the same item."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from lorry.jobs.import_records import RecordPlan
from lorry.schema.fields import FieldDef, ItemTypeDef, Validators
from lorry.schema.validator import ItemFailure, Valid, Validator

FIELDS = [
    FieldDef(api_key="s", field_type="string"),
    FieldDef(api_key="t", field_type="text", required=True),
    FieldDef(api_key="i", field_type="integer"),
    FieldDef(api_key="f", field_type="float"),
    FieldDef(api_key="b", field_type="boolean"),
    FieldDef(api_key="e", field_type="enum", validators=Validators(enum=["a", "b c"])),
    FieldDef(api_key="d", field_type="date"),
    FieldDef(api_key="dt", field_type="datetime"),
]
THING = ItemTypeDef(
    pk=1, id="T", api_key="thing", name="Thing", fields=FIELDS, created_at=0,
    updated_at=0,
)  # fmt: skip
#: For each column, cells its field takes, then cells at the edge or refused.
TAKEN: dict[str, list[str]] = {
    "s": ["", " ", "007", "a", '"', "é", "null"],
    "t": ["x", " y ", "1e3", "line\nbreak"],
    "i": ["0", "12", "-1", "+2"],
    "f": ["1.5", ".5", "1e3", "-0", "12"],
    "b": ["true", "false", "1", "0"],
    "e": ["a", "b c"],
    "d": ["2020-01-05", "1999-12-31"],
    "dt": ["2020-01-05T10:00:00Z", "2020-01-05T10:00:00.123456+02:00", "1700000000"],
    "created_at": ["2020-01-05T10:00:00Z", "1700000000", "0"],
}
EDGE: dict[str, list[str]] = {
    "s": [],
    "t": [""],
    "i": [" 1", "1.0", "1e3", "1_0", "0x1f", "", " ", "x", "9" * 30],
    "f": ["nan", "inf", "1,5", "", " ", "x", "1e999"],
    "b": ["yes", "no", "True", "", " ", "2"],
    "e": ["B C", "a ", "", " "],
    "d": ["2020-02-30", "2020-01-05T10:00:00Z", "", "05/01/2020"],
    "dt": ["2020-01-05", "2020-01-05 10:00:00", "", " ", "yesterday", "-1e20"],
    "created_at": ["2020-01-05", "", "x"],
}
COLUMNS = tuple(TAKEN)
rows = st.fixed_dictionaries(
    {c: st.sampled_from([*TAKEN[c] * 4, *EDGE[c], None]) for c in COLUMNS}
    | {"s": st.none() | st.text(max_size=4), "t": st.text(max_size=4)}
)


def _readings(row: dict[str, Any]) -> tuple[Valid | ItemFailure, Valid | ItemFailure]:
    validator = Validator([THING])
    plan = RecordPlan([THING], {"type": "thing", "format": "csv"})
    prefix = plan.item_prefix(COLUMNS)
    assert prefix is not None
    raw = msgspec.json.encode(row)
    fast = validator.validate(prefix + raw[1:])
    converted = plan.convert(msgspec.json.decode(raw))
    if isinstance(converted, ItemFailure):
        return fast, converted
    return fast, validator.convert(converted.item)


@settings(max_examples=1000, deadline=None)
@given(rows)
def test_what_the_fast_reading_takes_the_whole_reading_takes_the_same(
    row: dict[str, Any],
) -> None:
    fast, whole = _readings(row)
    if isinstance(fast, Valid):
        assert isinstance(whole, Valid), (row, whole)
        assert (fast.data, fast.created_at, fast.updated_at) == (
            whole.data,
            whole.created_at,
            whole.updated_at,
        )


def test_the_fast_reading_takes_ordinary_rows() -> None:
    row = dict.fromkeys(COLUMNS, "")
    row |= {"s": "a", "t": "x", "i": "12", "f": "1.5", "b": "true", "e": "b c"}
    row |= {"d": "2020-01-05", "dt": "2020-01-05T10:00:00Z", "created_at": "0"}
    fast, whole = _readings(row)
    assert isinstance(fast, Valid) and isinstance(whole, Valid)
    assert fast.data == whole.data


def test_columns_that_need_the_plan_take_the_whole_reading() -> None:
    plan = RecordPlan([THING], {"type": "thing", "format": "csv"})
    assert plan.item_prefix(("s", "t")) == b'{"item_type":"thing",'
    for columns in [("S", "t"), ("s", "id"), ("s", "item_type"), ("s", "other")]:
        assert plan.item_prefix(columns) is None, columns
    decimal = RecordPlan([THING], {"type": "thing", "format": "csv", "decimal": ","})
    assert decimal.item_prefix(("s", "t")) is None
    as_json = RecordPlan([THING], {"type": "thing", "format": "json"})
    assert as_json.item_prefix(("s", "t")) is None
