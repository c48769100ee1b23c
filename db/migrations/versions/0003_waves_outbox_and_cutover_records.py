"""waves, outbox and cutover records

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 21:47:45.447506
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import db.types

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('visio_user',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('rooms_before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('listed_run', sa.String(length=64), nullable=True),
    sa.Column('listed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_visio_user_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visio_user')),
    sa.UniqueConstraint('tenant_id', 'email', name=op.f('uq_visio_user_tenant_id_email'))
    )
    with op.batch_alter_table('visio_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visio_user_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('calendar_rewrite', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), server_default='rewritten', nullable=False))
        batch_op.add_column(sa.Column('prepared_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.alter_column('rewritten_at',
               existing_type=db.types.UTCDateTime(timezone=True),
               nullable=True)

    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('host_anchor', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_link_tenant_id_meeting_external_id'), ['tenant_id', 'meeting_external_id'], unique=False)

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=16), server_default='sent', nullable=False))
        batch_op.add_column(sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True))
        batch_op.add_column(sa.Column('stamp', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_notification_tenant_id_ical_uid'), ['tenant_id', 'ical_uid'], unique=False)

    with op.batch_alter_table('plan_action', schema=None) as batch_op:
        batch_op.add_column(sa.Column('platform', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('meeting_external_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('host_anchor', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('depends_on', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('reason', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_plan_action_tenant_id_depends_on'), ['tenant_id', 'depends_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_action_tenant_id_wave_id_host_anchor'), ['tenant_id', 'wave_id', 'host_anchor'], unique=False)

    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wave_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True))
        batch_op.add_column(sa.Column('host_anchor', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('adopted', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('verified_at', db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_room_wave_id'), ['wave_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_room_wave_id_wave'), 'wave', ['wave_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_room_wave_id_wave'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_room_wave_id'))
        batch_op.drop_column('verified_at')
        batch_op.drop_column('adopted')
        batch_op.drop_column('host_anchor')
        batch_op.drop_column('wave_id')

    with op.batch_alter_table('plan_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_action_tenant_id_wave_id_host_anchor'))
        batch_op.drop_index(batch_op.f('ix_plan_action_tenant_id_depends_on'))
        batch_op.drop_column('reason')
        batch_op.drop_column('flags')
        batch_op.drop_column('depends_on')
        batch_op.drop_column('host_anchor')
        batch_op.drop_column('meeting_external_id')
        batch_op.drop_column('platform')

    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_tenant_id_ical_uid'))
        batch_op.drop_column('stamp')
        batch_op.drop_column('payload')
        batch_op.drop_column('state')

    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_tenant_id_meeting_external_id'))
        batch_op.drop_column('host_anchor')
        batch_op.drop_column('topic')

    with op.batch_alter_table('calendar_rewrite', schema=None) as batch_op:
        batch_op.alter_column('rewritten_at',
               existing_type=db.types.UTCDateTime(timezone=True),
               nullable=False)
        batch_op.drop_column('prepared_at')
        batch_op.drop_column('state')

    with op.batch_alter_table('visio_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visio_user_tenant_id'))

    op.drop_table('visio_user')
