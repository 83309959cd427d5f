"""Store backends behind one port (`base.Store`): InfluxDB (v1 HTTP API) and DuckDB, plus
an in-memory twin for tests. `make_store(settings)` picks one from the settings."""

from __future__ import annotations

from ecocluster.core.settings import Settings
from ecocluster.ingest.stores.base import AggregateFn, GroupBy, Store, Where

__all__ = ["AggregateFn", "GroupBy", "Store", "Where", "make_store"]

DUCKDB_FILE = "ecocluster.duckdb"


def make_store(settings: Settings) -> Store:
    """InfluxDB when `influx_url` is set, else the DuckDB file under `data_dir`."""
    if settings.influx_url:
        from ecocluster.ingest.stores.influx import InfluxStore

        return InfluxStore(
            settings.influx_url,
            settings.influx_db,
            rp=settings.influx_rp,
            token=settings.influx_token.get_secret_value() if settings.influx_token else None,
            username=settings.influx_username,
            password=(
                settings.influx_password.get_secret_value() if settings.influx_password else None
            ),
            create_db=settings.influx_create_db,
        )
    from ecocluster.ingest.stores.duckdb import DuckDBStore

    return DuckDBStore(settings.data_dir / DUCKDB_FILE)
