"""web access grants (roles per tenant for ProConnect identities) and savings summaries (the headline, calendar,
utilisation, funnel and forecast of a month, as the dashboard reads them)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:44:25.686896
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import db.types

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_old_key'), ['old_key'], unique=False)

    op.create_table('access_grant',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('granted_by', sa.String(length=128), nullable=False),
    sa.Column('granted_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_access_grant_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_grant')),
    sa.UniqueConstraint('tenant_id', 'email', 'role', name=op.f('uq_access_grant_tenant_id_email_role'))
    )
    with op.batch_alter_table('access_grant', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_grant_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_access_grant_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('savings_summary',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('computed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_savings_summary_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_savings_summary')),
    sa.UniqueConstraint('tenant_id', 'month', name=op.f('uq_savings_summary_tenant_id_month'))
    )
    with op.batch_alter_table('savings_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_savings_summary_tenant_id'), ['tenant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_old_key'))

    with op.batch_alter_table('savings_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_savings_summary_tenant_id'))

    op.drop_table('savings_summary')
    with op.batch_alter_table('access_grant', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_grant_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_access_grant_email'))

    op.drop_table('access_grant')
