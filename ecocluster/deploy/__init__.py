"""Deployment: broker security from the registry, a dev CA, InfluxDB retention and
downsampling, backup and restore. Part of the composition root: it may import any stage,
and no stage imports it (import-linter)."""
