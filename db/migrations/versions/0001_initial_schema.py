"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 04:48:11.708183
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

import db.types

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('tenant',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('siret', sa.String(length=14), nullable=True),
    sa.Column('config_path', sa.Text(), nullable=True),
    sa.Column('config_hash', sa.String(length=64), nullable=True),
    sa.Column('ready', sa.Boolean(), nullable=False),
    sa.Column('readiness', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('registered_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant'))
    )
    op.create_table('adoption_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('room_meet_id', sa.String(length=64), nullable=False),
    sa.Column('participant_identity', sa.String(length=256), nullable=True),
    sa.Column('authenticated', sa.Boolean(), nullable=False),
    sa.Column('room_role', sa.String(length=32), nullable=True),
    sa.Column('occurred_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_adoption_event_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adoption_event')),
    sa.UniqueConstraint('tenant_id', 'event_id', name=op.f('uq_adoption_event_tenant_id_event_id'))
    )
    with op.batch_alter_table('adoption_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adoption_event_room_meet_id'), ['room_meet_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_adoption_event_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('audit_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target_kind', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=512), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_audit_event_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_tenant_id_occurred_at'), ['tenant_id', 'occurred_at'], unique=False)

    op.create_table('calendar_rewrite',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('action_key', sa.String(length=255), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('event_id', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rewritten_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reverted_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_calendar_rewrite_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calendar_rewrite')),
    sa.UniqueConstraint('tenant_id', 'action_key', name=op.f('uq_calendar_rewrite_tenant_id_action_key'))
    )
    with op.batch_alter_table('calendar_rewrite', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_calendar_rewrite_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('checkpoint',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('pass_id', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('items_done', sa.Integer(), nullable=False),
    sa.Column('started_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_checkpoint_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoint')),
    sa.UniqueConstraint('tenant_id', 'source', 'stream', name=op.f('uq_checkpoint_tenant_id_source_stream'))
    )
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checkpoint_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('contract',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('contract_ref', sa.String(length=128), nullable=False),
    sa.Column('vendor', sa.String(length=128), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('sku_key', sa.String(length=255), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('renewal_unit_price', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('billing_period_months', sa.Integer(), nullable=False),
    sa.Column('committed_qty', sa.Integer(), nullable=False),
    sa.Column('commit_floor', sa.Integer(), nullable=False),
    sa.Column('term_start', sa.Date(), nullable=True),
    sa.Column('term_end', sa.Date(), nullable=True),
    sa.Column('renewal_date', sa.Date(), nullable=True),
    sa.Column('notice_days', sa.Integer(), nullable=False),
    sa.Column('auto_renew', sa.Boolean(), nullable=False),
    sa.Column('true_down_dates', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('cancellation_window_days', sa.Integer(), nullable=False),
    sa.Column('vat_included', sa.Boolean(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_contract_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract')),
    sa.UniqueConstraint('tenant_id', 'contract_ref', name=op.f('uq_contract_tenant_id_contract_ref'))
    )
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('decommission',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account_external_id', sa.String(length=255), nullable=False),
    sa.Column('sku_key', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('before', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('after', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('released_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_decommission_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decommission')),
    sa.UniqueConstraint('tenant_id', 'platform', 'account_external_id', 'sku_key', name=op.f('uq_decommission_tenant_id_platform_account_external_id_sku_key'))
    )
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decommission_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('directory_entry',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('anchor', sa.String(length=255), nullable=False),
    sa.Column('anchor_kind', sa.String(length=32), nullable=False),
    sa.Column('dn', sa.Text(), nullable=False),
    sa.Column('primary_email', sa.String(length=320), nullable=False),
    sa.Column('email_normalised', sa.String(length=320), nullable=True),
    sa.Column('aliases', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('employee_id', sa.String(length=64), nullable=True),
    sa.Column('login', sa.String(length=255), nullable=True),
    sa.Column('given_name', sa.String(length=255), nullable=True),
    sa.Column('surname', sa.String(length=255), nullable=True),
    sa.Column('display_name', sa.String(length=512), nullable=True),
    sa.Column('department', sa.String(length=512), nullable=True),
    sa.Column('department_code', sa.String(length=128), nullable=True),
    sa.Column('population', sa.String(length=64), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('last_logon', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('immutable_id', sa.String(length=64), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_directory_entry_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_directory_entry')),
    sa.UniqueConstraint('tenant_id', 'anchor', name=op.f('uq_directory_entry_tenant_id_anchor'))
    )
    with op.batch_alter_table('directory_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_directory_entry_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_directory_entry_tenant_id_email_normalised'), ['tenant_id', 'email_normalised'], unique=False)

    op.create_table('identity_conflict',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=320), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('first_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_identity_conflict_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_conflict')),
    sa.UniqueConstraint('tenant_id', 'kind', 'subject', 'value', name=op.f('uq_identity_conflict_tenant_id_kind_subject_value'))
    )
    with op.batch_alter_table('identity_conflict', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_conflict_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_conflict_tenant_id_status_kind'), ['tenant_id', 'status', 'kind'], unique=False)

    op.create_table('identity_match',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account_external_id', sa.String(length=255), nullable=False),
    sa.Column('person_anchor', sa.String(length=255), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_identity_match_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_match')),
    sa.UniqueConstraint('tenant_id', 'platform', 'account_external_id', name=op.f('uq_identity_match_tenant_id_platform_account_external_id'))
    )
    with op.batch_alter_table('identity_match', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_match_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_identity_match_tenant_id_person_anchor'), ['tenant_id', 'person_anchor'], unique=False)

    op.create_table('identity_override',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account_external_id', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('person_anchor', sa.String(length=255), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('applied_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_identity_override_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_override')),
    sa.UniqueConstraint('tenant_id', 'platform', 'account_external_id', name=op.f('uq_identity_override_tenant_id_platform_account_external_id'))
    )
    with op.batch_alter_table('identity_override', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_override_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('licence_assignment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('account_external_id', sa.String(length=255), nullable=False),
    sa.Column('sku_key', sa.String(length=255), nullable=False),
    sa.Column('assigned_by_group', sa.String(length=255), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('first_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('released_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_licence_assignment_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_assignment')),
    sa.UniqueConstraint('tenant_id', 'platform', 'account_external_id', 'sku_key', name=op.f('uq_licence_assignment_tenant_id_platform_account_external_id_sku_key'))
    )
    with op.batch_alter_table('licence_assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licence_assignment_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('licence_sku',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('sku_key', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('includes_meetings', sa.Boolean(), nullable=False),
    sa.Column('prepaid_units', sa.Integer(), nullable=True),
    sa.Column('consumed_units', sa.Integer(), nullable=True),
    sa.Column('site_url', sa.String(length=255), nullable=True),
    sa.Column('annual_unit_cost', sa.Numeric(precision=12, scale=2), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_licence_sku_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_licence_sku')),
    sa.UniqueConstraint('tenant_id', 'platform', 'sku_key', name=op.f('uq_licence_sku_tenant_id_platform_sku_key'))
    )
    with op.batch_alter_table('licence_sku', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licence_sku_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('meeting',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('host_account_id', sa.String(length=255), nullable=False),
    sa.Column('host_email', sa.String(length=320), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('rrule', sa.Text(), nullable=True),
    sa.Column('start_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ends_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('duration_minutes', sa.Integer(), nullable=True),
    sa.Column('join_url', sa.Text(), nullable=False),
    sa.Column('link_key', sa.String(length=255), nullable=False),
    sa.Column('invitee_count', sa.Integer(), nullable=False),
    sa.Column('invitees', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('alternative_hosts', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_meeting_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meeting')),
    sa.UniqueConstraint('tenant_id', 'platform', 'external_id', name=op.f('uq_meeting_tenant_id_platform_external_id'))
    )
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_tenant_id_link_key'), ['tenant_id', 'link_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_meeting_tenant_id_platform_host_account_id'), ['tenant_id', 'platform', 'host_account_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('action_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ical_uid', sa.String(length=255), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('recipient_count', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('sent_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_notification_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification')),
    sa.UniqueConstraint('tenant_id', 'action_key', name=op.f('uq_notification_tenant_id_action_key'))
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('person',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('anchor', sa.String(length=255), nullable=False),
    sa.Column('primary_email', sa.String(length=320), nullable=False),
    sa.Column('email_normalised', sa.String(length=320), nullable=False),
    sa.Column('display_name', sa.String(length=512), nullable=True),
    sa.Column('department', sa.String(length=512), nullable=True),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('proconnect_email', sa.String(length=320), nullable=True),
    sa.Column('expected_idp', sa.String(length=128), nullable=True),
    sa.Column('siret', sa.String(length=14), nullable=True),
    sa.Column('visio_provisioning', sa.String(length=32), nullable=True),
    sa.Column('login_hint_url', sa.Text(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_person_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person')),
    sa.UniqueConstraint('tenant_id', 'anchor', name=op.f('uq_person_tenant_id_anchor'))
    )
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_tenant_id_department'), ['tenant_id', 'department'], unique=False)
        batch_op.create_index(batch_op.f('ix_person_tenant_id_email_normalised'), ['tenant_id', 'email_normalised'], unique=False)

    op.create_table('proconnect_observation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('person_anchor', sa.String(length=255), nullable=False),
    sa.Column('sub', sa.String(length=256), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('first_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_proconnect_observation_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proconnect_observation')),
    sa.UniqueConstraint('tenant_id', 'person_anchor', 'sub', 'source', name=op.f('uq_proconnect_observation_tenant_id_person_anchor_sub_source'))
    )
    with op.batch_alter_table('proconnect_observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proconnect_observation_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('quarantine',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('record_key', sa.String(length=512), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_quarantine_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    sa.UniqueConstraint('tenant_id', 'source', 'record_key', 'reason', name=op.f('uq_quarantine_tenant_id_source_record_key_reason'))
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quarantine_tenant_id_stage_reason'), ['tenant_id', 'stage', 'reason'], unique=False)

    op.create_table('room',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('meet_id', sa.String(length=64), nullable=False),
    sa.Column('action_key', sa.String(length=255), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('access_level', sa.String(length=16), nullable=False),
    sa.Column('owner_email', sa.String(length=320), nullable=False),
    sa.Column('owner_user_id', sa.String(length=64), nullable=True),
    sa.Column('telephony', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_room_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room')),
    sa.UniqueConstraint('tenant_id', 'action_key', name=op.f('uq_room_tenant_id_action_key')),
    sa.UniqueConstraint('tenant_id', 'meet_id', name=op.f('uq_room_tenant_id_meet_id'))
    )
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('savings_snapshot',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('sku_key', sa.String(length=255), nullable=False),
    sa.Column('contract_ref', sa.String(length=128), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('assigned', sa.Integer(), nullable=False),
    sa.Column('active', sa.Integer(), nullable=False),
    sa.Column('never_active', sa.Integer(), nullable=False),
    sa.Column('reclaimed', sa.Integer(), nullable=False),
    sa.Column('committed', sa.Integer(), nullable=False),
    sa.Column('commit_floor', sa.Integer(), nullable=False),
    sa.Column('annual_unit_cost', sa.Numeric(precision=12, scale=2), nullable=False),
    sa.Column('potential_annual', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('stranded', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('realised_run_rate', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('realised_in_fy', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('net', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('gov_expected', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('evidence_refs', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('computed_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_savings_snapshot_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_savings_snapshot')),
    sa.UniqueConstraint('tenant_id', 'platform', 'sku_key', 'contract_ref', 'month', name=op.f('uq_savings_snapshot_tenant_id_platform_sku_key_contract_ref_month'))
    )
    with op.batch_alter_table('savings_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_savings_snapshot_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('source_account',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_normalised', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('licensed', sa.Boolean(), nullable=False),
    sa.Column('licences', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('display_name', sa.String(length=512), nullable=True),
    sa.Column('given_name', sa.String(length=255), nullable=True),
    sa.Column('surname', sa.String(length=255), nullable=True),
    sa.Column('aliases', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('employee_id', sa.String(length=64), nullable=True),
    sa.Column('immutable_id', sa.String(length=64), nullable=True),
    sa.Column('role', sa.String(length=64), nullable=True),
    sa.Column('account_type', sa.String(length=64), nullable=True),
    sa.Column('department', sa.String(length=512), nullable=True),
    sa.Column('last_activity', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('last_seen_pass', sa.String(length=64), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('removed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_source_account_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_account')),
    sa.UniqueConstraint('tenant_id', 'platform', 'external_id', name=op.f('uq_source_account_tenant_id_platform_external_id'))
    )
    with op.batch_alter_table('source_account', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_account_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_source_account_tenant_id_email_normalised'), ['tenant_id', 'email_normalised'], unique=False)

    op.create_table('wave',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('selection', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('cut_over_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('guard_until', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_wave_tenant_id_tenant'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wave')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_wave_tenant_id_name'))
    )
    with op.batch_alter_table('wave', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wave_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('link',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('old_key', sa.String(length=255), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('old_url', sa.Text(), nullable=False),
    sa.Column('meeting_external_id', sa.String(length=255), nullable=False),
    sa.Column('room_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('wave_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_link_room_id_room')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_link_tenant_id_tenant'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_link_wave_id_wave')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_link')),
    sa.UniqueConstraint('tenant_id', 'old_key', name=op.f('uq_link_tenant_id_old_key'))
    )
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_room_id'), ['room_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_link_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_link_wave_id'), ['wave_id'], unique=False)

    op.create_table('plan_action',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('wave_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('claimed_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_at', db.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', db.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_plan_action_tenant_id_tenant'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_plan_action_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_action')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_plan_action_tenant_id_idempotency_key'))
    )
    with op.batch_alter_table('plan_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_action_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_action_tenant_id_wave_id_state'), ['tenant_id', 'wave_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_action_wave_id'), ['wave_id'], unique=False)

    op.create_table('wave_member',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('wave_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('person_anchor', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_wave_member_tenant_id_tenant'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wave_id'], ['wave.id'], name=op.f('fk_wave_member_wave_id_wave'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wave_member')),
    sa.UniqueConstraint('wave_id', 'person_anchor', name=op.f('uq_wave_member_wave_id_person_anchor'))
    )
    with op.batch_alter_table('wave_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wave_member_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wave_member_wave_id'), ['wave_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('wave_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wave_member_wave_id'))
        batch_op.drop_index(batch_op.f('ix_wave_member_tenant_id'))

    op.drop_table('wave_member')
    with op.batch_alter_table('plan_action', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_action_wave_id'))
        batch_op.drop_index(batch_op.f('ix_plan_action_tenant_id_wave_id_state'))
        batch_op.drop_index(batch_op.f('ix_plan_action_tenant_id'))

    op.drop_table('plan_action')
    with op.batch_alter_table('link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_wave_id'))
        batch_op.drop_index(batch_op.f('ix_link_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_link_room_id'))

    op.drop_table('link')
    with op.batch_alter_table('wave', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wave_tenant_id'))

    op.drop_table('wave')
    with op.batch_alter_table('source_account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_account_tenant_id_email_normalised'))
        batch_op.drop_index(batch_op.f('ix_source_account_tenant_id'))

    op.drop_table('source_account')
    with op.batch_alter_table('savings_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_savings_snapshot_tenant_id'))

    op.drop_table('savings_snapshot')
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_tenant_id'))

    op.drop_table('room')
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_tenant_id_stage_reason'))
        batch_op.drop_index(batch_op.f('ix_quarantine_tenant_id'))

    op.drop_table('quarantine')
    with op.batch_alter_table('proconnect_observation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_proconnect_observation_tenant_id'))

    op.drop_table('proconnect_observation')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_tenant_id_email_normalised'))
        batch_op.drop_index(batch_op.f('ix_person_tenant_id_department'))
        batch_op.drop_index(batch_op.f('ix_person_tenant_id'))

    op.drop_table('person')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_tenant_id'))

    op.drop_table('notification')
    with op.batch_alter_table('meeting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_tenant_id_platform_host_account_id'))
        batch_op.drop_index(batch_op.f('ix_meeting_tenant_id_link_key'))
        batch_op.drop_index(batch_op.f('ix_meeting_tenant_id'))

    op.drop_table('meeting')
    with op.batch_alter_table('licence_sku', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licence_sku_tenant_id'))

    op.drop_table('licence_sku')
    with op.batch_alter_table('licence_assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licence_assignment_tenant_id'))

    op.drop_table('licence_assignment')
    with op.batch_alter_table('identity_override', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_override_tenant_id'))

    op.drop_table('identity_override')
    with op.batch_alter_table('identity_match', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_match_tenant_id_person_anchor'))
        batch_op.drop_index(batch_op.f('ix_identity_match_tenant_id'))

    op.drop_table('identity_match')
    with op.batch_alter_table('identity_conflict', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_conflict_tenant_id_status_kind'))
        batch_op.drop_index(batch_op.f('ix_identity_conflict_tenant_id'))

    op.drop_table('identity_conflict')
    with op.batch_alter_table('directory_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_directory_entry_tenant_id_email_normalised'))
        batch_op.drop_index(batch_op.f('ix_directory_entry_tenant_id'))

    op.drop_table('directory_entry')
    with op.batch_alter_table('decommission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decommission_tenant_id'))

    op.drop_table('decommission')
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_tenant_id'))

    op.drop_table('contract')
    with op.batch_alter_table('checkpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checkpoint_tenant_id'))

    op.drop_table('checkpoint')
    with op.batch_alter_table('calendar_rewrite', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_calendar_rewrite_tenant_id'))

    op.drop_table('calendar_rewrite')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_tenant_id_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_tenant_id'))

    op.drop_table('audit_event')
    with op.batch_alter_table('adoption_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adoption_event_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_adoption_event_room_meet_id'))

    op.drop_table('adoption_event')
    op.drop_table('tenant')

