"""Ingest: MQTT subscription, payload codecs, validation, unit normalisation, batching,
store backends and the on-disk spool. First stage of `ingest → rules → alerts`."""
