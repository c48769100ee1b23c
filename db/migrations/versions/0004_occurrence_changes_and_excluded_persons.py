"""occurrence changes, recurrence zone and excluded persons

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 16:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rrule_timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('exclusions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('exceptions', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='[]', nullable=False))

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('excluded_reason', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('excluded_reason')

    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_column('exceptions')
        batch_op.drop_column('exclusions')
        batch_op.drop_column('rrule_timezone')
