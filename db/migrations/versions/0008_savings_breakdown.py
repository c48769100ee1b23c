"""savings breakdowns: a month's figures by direction, wave, tool, SKU and contract

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 00:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('savings_breakdown',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('dimension', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.Column('reclaimed', sa.Integer(), nullable=False),
    sa.Column('potential_annual', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('stranded', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('realised_run_rate', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('gov_expected', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('computed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_savings_breakdown_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_savings_breakdown')),
    sa.UniqueConstraint('tenant_id', 'month', 'dimension', 'key', name=op.f('uq_savings_breakdown_tenant_id_month_dimension_key'))
    )
    with op.batch_alter_table('savings_breakdown', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_savings_breakdown_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('savings_breakdown', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_savings_breakdown_tenant_id'))

    op.drop_table('savings_breakdown')
