"""The first alert schema: alerts, audit trail, groups, outbox, silences.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(32), nullable=False, unique=True),
        sa.Column("code", sa.String(12), nullable=False, unique=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float),
        sa.Column("description", sa.Text),
        sa.Column("starts_ms", sa.BigInteger, nullable=False),
        sa.Column("ends_ms", sa.BigInteger),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("fired_count", sa.Integer, nullable=False),
        sa.Column("acked_by", sa.String(128)),
        sa.Column("acked_ms", sa.BigInteger),
        sa.Column("ack_comment", sa.Text),
        sa.Column("ack_channel", sa.String(32)),
        sa.Column("assignee", sa.String(128)),
        sa.Column("escalation", sa.String(64)),
        sa.Column("esc_step", sa.Integer, nullable=False),
        sa.Column("esc_base_ms", sa.BigInteger),
        sa.Column("esc_due_ms", sa.BigInteger),
        sa.Column("ack_rearm_ms", sa.BigInteger),
        sa.Column("silenced_by", sa.String(36)),
        sa.Column("inhibited", sa.Boolean, nullable=False),
        sa.Column("notified", sa.Boolean, nullable=False),
        sa.Column("recipients", sa.Text, nullable=False),
    )
    op.create_index("ix_alerts_state", "alerts", ["state", "updated_ms"])
    op.create_index("ix_alerts_esc_due_ms", "alerts", ["esc_due_ms"])
    op.create_index("ix_alerts_ack_rearm_ms", "alerts", ["ack_rearm_ms"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128)),
        sa.Column("channel", sa.String(32)),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_alert_id", "audit", ["alert_id"])
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("route_key", sa.String(64), nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("next_flush_ms", sa.BigInteger, nullable=False),
        sa.Column("last_notified_ms", sa.BigInteger),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("route_key", "group_key", name="uq_groups_key"),
    )
    op.create_index("ix_groups_next_flush_ms", "groups", ["next_flush_ms"])
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer, sa.ForeignKey("groups.id"), primary_key=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id"), primary_key=True),
        sa.Column("notified", sa.Boolean, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("idem_key", sa.String(128), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("contact_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.Integer, nullable=False),
        sa.Column("alert_ids", sa.Text, nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("html", sa.Text),
        sa.Column("sms", sa.Text, nullable=False),
        sa.Column("chart", sa.LargeBinary),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("total_attempts", sa.Integer, nullable=False),
        sa.Column("next_ms", sa.BigInteger, nullable=False),
        sa.Column("lease_ms", sa.BigInteger),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("sent_ms", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("folded_into", sa.Integer),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_ms"])
    op.create_index("ix_outbox_contact", "outbox", ["contact_id", "status"])
    op.create_table(
        "silences",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("matchers", sa.Text, nullable=False),
        sa.Column("starts_ms", sa.BigInteger, nullable=False),
        sa.Column("ends_ms", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("end_on_resolve", sa.Boolean, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expired_ms", sa.BigInteger),
        sa.Column("expired_by", sa.String(128)),
    )


def downgrade() -> None:
    for table in ("silences", "outbox", "group_members", "groups", "audit", "alerts", "meta"):
        op.drop_table(table)
