"""gift catalogue: a gift's station (NULL = city-wide), description and creation time

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite alters by copying the table (batch mode), so the foreign key needs a name.
    with op.batch_alter_table('gifts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('station_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('description', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('created_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key('fk_gifts_station_id_stations', 'stations', ['station_id'], ['id'])
    # Gifts from before this revision: created "now" (naive UTC, the schema's convention).
    gifts = sa.table('gifts', sa.column('created_at', sa.DateTime()))
    op.execute(gifts.update().values(created_at=datetime.now(UTC).replace(tzinfo=None)))
    with op.batch_alter_table('gifts', schema=None) as batch_op:
        batch_op.alter_column('created_at', existing_type=sa.DateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('gifts', schema=None) as batch_op:
        batch_op.drop_constraint('fk_gifts_station_id_stations', type_='foreignkey')
        batch_op.drop_column('created_at')
        batch_op.drop_column('description')
        batch_op.drop_column('station_id')
