"""subscribe_consents: followers' answers to subscription-notification templates (订阅通知)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'subscribe_consents',
        sa.Column('openid', sa.String(length=64), nullable=False),
        sa.Column('template_id', sa.String(length=128), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('changed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('openid', 'template_id'),
    )


def downgrade() -> None:
    op.drop_table('subscribe_consents')
