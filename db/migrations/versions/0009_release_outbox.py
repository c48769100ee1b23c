"""release outbox: decommission rows claimed, recorded, audited and restorable; indexes the release plan reads by

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('person_anchor', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('wave_name', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('generation', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('reason', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('detail', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('planned_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('restore_until', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('restored_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_decommission_tenant_id_idempotency_key'),
                                          ['tenant_id', 'idempotency_key'])
        batch_op.create_index(batch_op.f('ix_decommission_tenant_id_state'), ['tenant_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_decommission_tenant_id_person_anchor'), ['tenant_id', 'person_anchor'],
                              unique=False)


    with op.batch_alter_table('adoption_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adoption_event_tenant_id_participant_identity'),
                              ['tenant_id', 'participant_identity'], unique=False)
    with op.batch_alter_table('wave_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wave_member_tenant_id_person_anchor'), ['tenant_id', 'person_anchor'],
                              unique=False)
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_tenant_id_host_anchor'), ['tenant_id', 'host_anchor'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('wave_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wave_member_tenant_id_person_anchor'))
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_tenant_id_host_anchor'))
    with op.batch_alter_table('adoption_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adoption_event_tenant_id_participant_identity'))
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decommission_tenant_id_person_anchor'))
        batch_op.drop_index(batch_op.f('ix_decommission_tenant_id_state'))
        batch_op.drop_constraint(batch_op.f('uq_decommission_tenant_id_idempotency_key'), type_='unique')
        for column in ('restored_at', 'restore_until', 'planned_at', 'claimed_at', 'claimed_by', 'attempts', 'detail',
                       'reason', 'generation', 'wave_name', 'person_anchor', 'idempotency_key'):
            batch_op.drop_column(column)
