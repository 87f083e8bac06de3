"""Write a generated dataset into a source database (SQLite file or PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa

from stratum_pipeline import source_schema
from stratum_pipeline.demo.generator import DemoDataset
from stratum_pipeline.sqlio import insert_frame


def write_source(engine: sa.Engine, dataset: DemoDataset, progress=None) -> dict[str, int]:
    """Replace the source schema's contents with `dataset`; returns rows written per table."""
    tables = source_schema.SOURCE_TABLES + source_schema.TRUTH_TABLES
    source_schema.metadata.drop_all(engine, tables=list(tables))
    source_schema.metadata.create_all(engine, tables=list(tables))
    written = {}
    for table in tables:
        frame = dataset.tables[table.name]
        with engine.begin() as conn:
            written[table.name] = insert_frame(conn, table, frame)
        if progress:
            progress(f"  {table.name:<24} {written[table.name]:>10,} rows")
    return written
