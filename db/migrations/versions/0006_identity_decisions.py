"""identity decisions on conflicts about persons, e-mails and the tenant

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('identity_decision',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=320), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('person_anchor', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('applied_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_identity_decision_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_decision')),
    sa.UniqueConstraint('tenant_id', 'kind', 'subject', 'value', name=op.f('uq_identity_decision_tenant_id_kind_subject_value'))
    )
    with op.batch_alter_table('identity_decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_decision_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('identity_decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_decision_tenant_id'))

    op.drop_table('identity_decision')
