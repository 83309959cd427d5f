"""The alert database's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Migrations (`migrations/versions`) create exactly this; a test compares the two. Times are
epoch milliseconds (BigInteger); JSON is stored as text so both engines treat it alike.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = ["alerts", "audit", "group_members", "groups", "meta", "metadata", "outbox", "silences"]

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(32), nullable=False, unique=True),
    Column("code", String(12), nullable=False, unique=True),
    Column("rule", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("value", Float),
    Column("threshold", Float),
    Column("description", Text),
    Column("starts_ms", BigInteger, nullable=False),
    Column("ends_ms", BigInteger),
    Column("updated_ms", BigInteger, nullable=False),
    Column("fired_count", Integer, nullable=False, default=1),
    Column("acked_by", String(128)),
    Column("acked_ms", BigInteger),
    Column("ack_comment", Text),
    Column("ack_channel", String(32)),
    Column("assignee", String(128)),
    Column("escalation", String(64)),
    Column("esc_step", Integer, nullable=False, default=0),
    Column("esc_base_ms", BigInteger),
    Column("esc_due_ms", BigInteger, index=True),
    Column("ack_rearm_ms", BigInteger, index=True),
    Column("silenced_by", String(36)),
    Column("inhibited", Boolean, nullable=False, default=False),
    Column("notified", Boolean, nullable=False, default=False),
    Column("recipients", Text, nullable=False, default="[]"),
    #: `at_ms` of the newest transition applied: an older one (a replay by a second worker,
    #: a backlog redelivered after an outage) is stale and ignored.
    Column("last_at_ms", BigInteger),
    Index("ix_alerts_state", "state", "updated_ms"),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, ForeignKey("alerts.id"), nullable=False, index=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("event", String(32), nullable=False),
    Column("actor", String(128)),
    Column("channel", String(32)),
    Column("detail", Text),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("route_key", String(64), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("labels", Text, nullable=False),
    Column("next_flush_ms", BigInteger, nullable=False, index=True),
    Column("last_notified_ms", BigInteger),
    Column("created_ms", BigInteger, nullable=False),
    UniqueConstraint("route_key", "group_key", name="uq_groups_key"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, ForeignKey("groups.id"), primary_key=True),
    Column("alert_id", Integer, ForeignKey("alerts.id"), primary_key=True),
    Column("notified", Boolean, nullable=False, default=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("idem_key", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("contact_id", String(64), nullable=False),
    Column("channel", Integer, nullable=False, default=0),
    Column("alert_ids", Text, nullable=False, default="[]"),
    Column("language", String(8), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("html", Text),
    Column("sms", Text, nullable=False),
    Column("chart", LargeBinary),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("total_attempts", Integer, nullable=False, default=0),
    Column("next_ms", BigInteger, nullable=False),
    Column("lease_ms", BigInteger),
    #: The worker holding the claim until `lease_ms`; its outcome is recorded only while
    #: both still match (a worker whose lease ran out cannot overwrite its successor's).
    Column("claimed_by", String(128)),
    Column("created_ms", BigInteger, nullable=False),
    Column("sent_ms", BigInteger),
    Column("last_error", Text),
    Column("folded_into", Integer),
    Index("ix_outbox_due", "status", "next_ms"),
    Index("ix_outbox_contact", "contact_id", "status"),
)

silences = Table(
    "silences",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("matchers", Text, nullable=False),
    Column("starts_ms", BigInteger, nullable=False),
    Column("ends_ms", BigInteger, nullable=False),
    Column("author", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("end_on_resolve", Boolean, nullable=False, default=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expired_ms", BigInteger),
    Column("expired_by", String(128)),
)
