"""Alerts: lifecycle, routing, grouping, escalation, silences, outbox, Apprise dispatch."""
