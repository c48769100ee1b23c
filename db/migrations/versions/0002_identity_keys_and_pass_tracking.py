"""identity keys and pass tracking

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:31:14.242590
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('identity_key',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('anchor', sa.String(length=255), nullable=False),
    sa.Column('raw', sa.String(length=320), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_identity_key_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_key')),
    sa.UniqueConstraint('tenant_id', 'kind', 'value', 'anchor', name=op.f('uq_identity_key_tenant_id_kind_value_anchor'))
    )
    with op.batch_alter_table('identity_key', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_key_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_key_tenant_id_value'), ['tenant_id', 'value'], unique=False)

    with op.batch_alter_table('identity_conflict', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_pass', sa.String(length=64), server_default='', nullable=False))

    with op.batch_alter_table('identity_match', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen_pass', sa.String(length=64), server_default='', nullable=False))

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('population', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('population')

    with op.batch_alter_table('identity_match', schema=None) as batch_op:
        batch_op.drop_column('last_seen_pass')

    with op.batch_alter_table('identity_conflict', schema=None) as batch_op:
        batch_op.drop_column('last_seen_pass')

    with op.batch_alter_table('identity_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_key_tenant_id_value'))
        batch_op.drop_index(batch_op.f('ix_identity_key_tenant_id'))

    op.drop_table('identity_key')
