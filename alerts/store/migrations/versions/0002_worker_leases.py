"""Several alert workers on one database: the outbox claim's owner (its lease is
`lease_ms`), and the newest transition applied per alert (replays are ignored).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_by", sa.String(128)))
    op.add_column("alerts", sa.Column("last_at_ms", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("last_at_ms")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
