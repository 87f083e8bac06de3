"""Write a generated dataset into a source database (SQLite file or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from stratum_pipeline.demo.generator import DemoDataset
from stratum_pipeline.storage import source_schema
from stratum_pipeline.storage.sqlio import insert_frame


def write_source(engine: sa.Engine, dataset: DemoDataset, progress=None) -> dict[str, int]:
    """Replace the source schema's contents with `dataset`; returns rows written per table."""
    return write_source_chunks(engine, [dataset], progress)


def write_source_chunks(
    engine: sa.Engine, datasets: Iterable[DemoDataset], progress=None, truth: bool = True
) -> dict[str, int]:
    """Replace the source schema's contents with the rows of `datasets` (e.g. `generate_in_chunks`), one chunk
    in memory at a time; returns rows written per table. `truth=False` leaves out the ground-truth tables
    (the pipeline never reads them)."""
    tables = source_schema.SOURCE_TABLES + (source_schema.TRUTH_TABLES if truth else ())
    source_schema.metadata.drop_all(engine, tables=list(tables))
    source_schema.metadata.create_all(engine, tables=list(tables))
    written = {table.name: 0 for table in tables}
    for dataset in datasets:
        for table in tables:
            with engine.begin() as conn:
                written[table.name] += insert_frame(conn, table, dataset.tables[table.name])
        del dataset  # one chunk in memory at a time
    if progress:
        for name, rows in written.items():
            progress(f"  {name:<24} {rows:>10,} rows")
    return written
