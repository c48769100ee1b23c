"""meeting number key (helpdesk lookups by Webex meeting number and SIP address), room slug index (a repeated
slug is refused at cutover)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number_key', sa.String(length=255), nullable=True))
        batch_op.create_index(batch_op.f('ix_meeting_tenant_id_number_key'), ['tenant_id', 'number_key'],
                              unique=False)

    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_tenant_id_slug'), ['tenant_id', 'slug'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_tenant_id_slug'))

    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_tenant_id_number_key'))
        batch_op.drop_column('number_key')
