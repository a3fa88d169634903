"""audit_log.kind: actions and refusals apart (a flood of refused words cannot hide admin actions)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=8), server_default='action', nullable=False))
        batch_op.create_index('ix_audit_log_kind_id', ['kind', 'id'], unique=False)
    op.execute("UPDATE audit_log SET kind = 'refusal' WHERE outcome LIKE 'refused:%'")


def downgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_kind_id')
        batch_op.drop_column('kind')
