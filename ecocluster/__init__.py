"""ecocluster: telemetry and emergency-response backend of an Eco-Cluster.

The base package holds what every stage shares: the cluster registry, settings, shared
types, logging and the CLI. Stages (`ingest → rules → alerts`, with `api` reading all of
them) import from here, never the other way round (the CLI composes them lazily).
"""

__version__ = "0.1.0"
