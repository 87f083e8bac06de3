"""The source database and the warehouse as Dagster resources; their methods live in `storage.database`."""

import dagster as dg

from stratum_pipeline.storage.database import SourceReader, WarehouseTables


class SourceDatabase(SourceReader, dg.ConfigurableResource):
    """The product backend's database (STRATUM_SOURCE_URL), read with bound-parameter queries only."""

    url: str


class Warehouse(WarehouseTables, dg.ConfigurableResource):
    """The warehouse (STRATUM_WAREHOUSE_URL): the tables the pipeline writes and the product reads."""

    url: str
