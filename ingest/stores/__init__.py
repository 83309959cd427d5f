"""Store backends behind one port (`base.Store`): InfluxDB (v1 HTTP API) and DuckDB."""
