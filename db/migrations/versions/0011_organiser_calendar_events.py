"""organisers' calendar events found by the calendar scan

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:06:10.362741
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('organiser_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('organiser', sa.String(length=320), nullable=False),
    sa.Column('href', sa.Text(), nullable=False),
    sa.Column('uid', sa.Text(), nullable=False),
    sa.Column('etag', sa.String(length=255), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('recurring', sa.Boolean(), nullable=False),
    sa.Column('attendees', sa.Integer(), nullable=False),
    sa.Column('join_key', sa.String(length=255), nullable=False),
    sa.Column('meeting_platform', sa.String(length=16), nullable=True),
    sa.Column('meeting_external_id', sa.String(length=255), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('scanned_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_organiser_event_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organiser_event')),
    sa.UniqueConstraint('tenant_id', 'system', 'href', name=op.f('uq_organiser_event_tenant_id_system_href'))
    )
    with op.batch_alter_table('organiser_event', schema=None) as batch_op:
        batch_op.create_index('ix_organiser_event_meeting', ['tenant_id', 'meeting_platform', 'meeting_external_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_organiser_event_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_organiser_event_tenant_id_join_key'), ['tenant_id', 'join_key'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('organiser_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_organiser_event_tenant_id_join_key'))
        batch_op.drop_index(batch_op.f('ix_organiser_event_tenant_id'))
        batch_op.drop_index('ix_organiser_event_meeting')

    op.drop_table('organiser_event')
