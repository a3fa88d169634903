"""services, bookings, consultations (issue 12): service lists and duties, bookings, consultations and
their history; activities get a category

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 13:30:00
"""
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column('activities', sa.Column('category', sa.String(length=16), server_default='other',
                                          nullable=False))
    op.create_table(
        'service_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=60), nullable=False),
        sa.Column('description', sa.String(length=300), nullable=False),
        sa.Column('schedule', sa.String(length=100), nullable=False),
        sa.Column('bookable', sa.Boolean(), nullable=False),
        sa.Column('capacity', sa.Integer(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('capacity IS NULL OR capacity > 0', name='ck_service_capacity'),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_service_items_station_id', 'service_items', ['station_id'])
    # Policy measure 7's common list, to start with (admins edit it).
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(sa.table('service_items', *(sa.column(c) for c in (
        'name', 'description', 'schedule', 'bookable', 'active', 'created_at', 'updated_at'))), [
        {'name': name, 'description': '', 'schedule': '', 'bookable': False, 'active': True,
         'created_at': now, 'updated_at': now}
        for name in ('涉才政策咨询', '人才寻访登记', '茶咖休闲交流')])
    op.create_table(
        'station_duties',
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id']),
        sa.PrimaryKeyConstraint('station_id'),
    )
    op.create_table(
        'bookings',
        sa.Column('id', BigId, nullable=False),
        sa.Column('talent_id', BigId, nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=False),
        sa.Column('service_id', sa.Integer(), nullable=True),
        sa.Column('slot_start', sa.DateTime(), nullable=False),
        sa.Column('slot_end', sa.DateTime(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('cancelled_at', sa.DateTime(), nullable=True),
        sa.Column('reminded_at', sa.DateTime(), nullable=True),
        sa.Column('settled_at', sa.DateTime(), nullable=True),
        sa.Column('visit_id', BigId, nullable=True),
        sa.CheckConstraint("status IN ('booked','cancelled','kept','no_show')", name='ck_booking_status'),
        sa.CheckConstraint('slot_end > slot_start', name='ck_booking_slot'),
        sa.ForeignKeyConstraint(['talent_id'], ['talents.id']),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id']),
        sa.ForeignKeyConstraint(['service_id'], ['service_items.id']),
        sa.ForeignKeyConstraint(['visit_id'], ['visits.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_bookings_talent_id', 'bookings', ['talent_id'])
    op.create_index('ix_bookings_station_slot', 'bookings', ['station_id', 'slot_start'])
    op.create_index('ix_bookings_status_slot', 'bookings', ['status', 'slot_start'])
    op.create_table(
        'consultations',
        sa.Column('id', BigId, nullable=False),
        sa.Column('talent_id', BigId, nullable=False),
        sa.Column('station_id', sa.Integer(), nullable=True),
        sa.Column('question', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('owner_openid', sa.String(length=64), nullable=True),
        sa.Column('first_owner_openid', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('talent_last_at', sa.DateTime(), nullable=False),
        sa.Column('first_response_at', sa.DateTime(), nullable=True),
        sa.Column('first_answer_at', sa.DateTime(), nullable=True),
        sa.Column('escalation_level', sa.Integer(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('rating', sa.Integer(), nullable=True),
        sa.Column('rated_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint("status IN ('open','closed')", name='ck_consultation_status'),
        sa.CheckConstraint('rating IS NULL OR rating BETWEEN 1 AND 5', name='ck_consultation_rating'),
        sa.ForeignKeyConstraint(['talent_id'], ['talents.id']),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_consultations_talent_id', 'consultations', ['talent_id'])
    op.create_index('ix_consultations_station_status', 'consultations', ['station_id', 'status'])
    op.create_table(
        'consultation_events',
        sa.Column('id', BigId, nullable=False),
        sa.Column('consultation_id', BigId, nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('target', sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(['consultation_id'], ['consultations.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_consultation_events_consultation_id', 'consultation_events', ['consultation_id'])


def downgrade() -> None:
    op.drop_table('consultation_events')
    op.drop_table('consultations')
    op.drop_table('bookings')
    op.drop_table('station_duties')
    op.drop_table('service_items')
    with op.batch_alter_table('activities') as batch:
        batch.drop_column('category')
