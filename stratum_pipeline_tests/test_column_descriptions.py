"""Every column of every warehouse table has a description, and the UI's column schema shows it."""

import pytest
import sqlalchemy as sa

from stratum_pipeline.assets.common import column_schema
from stratum_pipeline.storage import warehouse_schema as wh

MIN_DESCRIPTION_CHARS = 15
COLUMNS = [(table, column) for table in wh.metadata.sorted_tables for column in table.columns]


def test_every_column_has_a_description():
    short = [
        f"{table.name}.{column.name}: {column.comment!r}"
        for table, column in COLUMNS
        if len((column.comment or "").strip()) < MIN_DESCRIPTION_CHARS
    ]
    assert not short, f"columns without a real description: {short}"
    assert len(COLUMNS) > 250  # the whole warehouse, not an empty metadata


@pytest.mark.parametrize("table", wh.metadata.sorted_tables, ids=lambda t: t.name)
def test_the_ui_column_schema_carries_every_description(table):
    schema = column_schema(table)
    assert [c.name for c in schema.columns] == [c.name for c in table.columns]
    for shown, column in zip(schema.columns, table.columns):
        assert shown.description == column.comment, f"{table.name}.{column.name}"
        assert len(shown.description.strip()) >= MIN_DESCRIPTION_CHARS, f"{table.name}.{column.name}"


def test_every_glossary_entry_is_used():
    used = {column.name for _, column in COLUMNS if column.comment == wh.GLOSSARY.get(column.name)}
    assert set(wh.GLOSSARY) == used, f"glossary entries no column takes: {sorted(set(wh.GLOSSARY) - used)}"


def test_a_column_without_a_description_fails_naming_its_table_and_column():
    tables = sa.MetaData()
    sa.Table("somewhere", tables, sa.Column("tenant_id", sa.String(64)), sa.Column("mystery", sa.Float))
    with pytest.raises(RuntimeError, match=r"somewhere\.mystery"):
        wh.describe_columns(tables, wh.GLOSSARY)
    assert tables.tables["somewhere"].c.tenant_id.comment is None  # nothing is half-applied


def test_a_glossary_name_takes_the_glossary_and_an_own_comment_wins():
    tables = sa.MetaData()
    table = sa.Table(
        "somewhere",
        tables,
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("date", sa.Date, comment="the day this particular table means"),
    )
    wh.describe_columns(tables, wh.GLOSSARY)
    assert table.c.tenant_id.comment == wh.GLOSSARY["tenant_id"]
    assert table.c.date.comment == "the day this particular table means"
