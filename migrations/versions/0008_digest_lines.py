"""digest lines (issue 10): a station's entries waiting for the hourly digest to its operators

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'digest_lines',
        sa.Column('id', BigId, nullable=False),
        sa.Column('entry_id', BigId, nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['entry_id'], ['entries.id']),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('entry_id'),
    )
    op.create_index('ix_digest_lines_pending', 'digest_lines', ['sent_at', 'created_at'])


def downgrade() -> None:
    op.drop_index('ix_digest_lines_pending', table_name='digest_lines')
    op.drop_table('digest_lines')
