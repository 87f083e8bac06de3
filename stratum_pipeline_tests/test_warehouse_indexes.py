"""(tenant_id, day) indexes: on every tenant-partitioned table, added to a warehouse made before them, and used
by a tenant's read."""

import sqlalchemy as sa

from stratum_pipeline.resources import Warehouse
from stratum_pipeline.storage import warehouse_schema as wh


def test_every_tenant_partitioned_table_has_a_tenant_day_index():
    for table in wh.metadata.sorted_tables:
        day = "date" if "date" in table.c else "partition_date" if "partition_date" in table.c else None
        if "tenant_id" in table.c and day:
            assert any([c.name for c in index.columns] == ["tenant_id", day] for index in table.indexes), (
                table.name
            )


def test_an_older_warehouse_gets_the_indexes_and_a_tenant_read_uses_them(tmp_path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = sa.create_engine(url)
    older = sa.MetaData()
    for table in wh.metadata.sorted_tables:
        copy = table.to_metadata(older)
        for index in [i for i in copy.indexes if "_tenant_" in i.name]:
            copy.indexes.discard(index)
    older.create_all(engine)
    assert "ix_campaign_features_tenant_date" not in {
        i["name"] for i in sa.inspect(engine).get_indexes("campaign_features")
    }

    warehouse = Warehouse(url=url)
    statement = sa.select(wh.campaign_features).where(
        wh.campaign_features.c.tenant_id == "acme", wh.campaign_features.c.date >= "2026-01-01"
    )
    with warehouse.engine.connect() as conn:  # the first use adds what is missing
        compiled = statement.compile(conn, compile_kwargs={"literal_binds": True})
        plan = " ".join(str(row) for row in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}")))
    assert "ix_campaign_features_tenant_date" in {
        i["name"] for i in sa.inspect(engine).get_indexes("campaign_features")
    }
    assert "ix_campaign_features_tenant_date" in plan, plan
