"""contract amendments: quantity changes with their evidence

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:18:57.480007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('contract_amendment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('contract_ref', sa.String(length=128), nullable=False),
    sa.Column('effective', sa.Date(), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('evidence', sa.Text(), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id', 'contract_ref'], ['contract.tenant_id', 'contract.contract_ref'], name=op.f('fk_contract_amendment_tenant_id_contract'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_contract_amendment_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_amendment'))
    )
    with op.batch_alter_table('contract_amendment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_amendment_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_amendment_tenant_id_contract_ref_effective'), ['tenant_id', 'contract_ref', 'effective'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contract_amendment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_amendment_tenant_id_contract_ref_effective'))
        batch_op.drop_index(batch_op.f('ix_contract_amendment_tenant_id'))

    op.drop_table('contract_amendment')
