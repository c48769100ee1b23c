"""per-organiser change tokens of the calendar scan (delta scans: CalDAV sync-collection, Graph calendarView delta)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_sync',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('organiser', sa.String(length=320), nullable=False),
    sa.Column('token', sa.Text(), nullable=True),
    sa.Column('window_start', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('window_end', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('listed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('synced_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_calendar_sync_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_sync')),
    sa.UniqueConstraint('tenant_id', 'system', 'organiser', name=op.f('uq_calendar_sync_tenant_id_system_organiser'))
    )
    with op.batch_alter_table('calendar_sync', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_sync_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('calendar_sync', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_sync_tenant_id'))

    op.drop_table('calendar_sync')
