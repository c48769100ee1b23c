"""The start of a resumable stream: the tenant registered (its file's path and hash), then the stream's pass — the
one a killed run left running, to resume after its cursor, or a new one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from db.repositories import CheckpointRepository, CheckpointState, TenantRepository
from flows.runtime import transaction
from flows.tenant import TenantConfig

__all__ = ["register_and_resume"]


def register_and_resume(database_url: str, tenant: TenantConfig, tenant_file: str, *, source: str,
                        stream: str) -> CheckpointState:
    """Register the tenant and return the stream's pass: the running one (resumed: its id, cursor, items done) or
    a new one started from the beginning (`complete` is False either way)."""
    path = Path(tenant_file)
    with transaction(database_url) as session:
        TenantRepository(session).ensure(tenant.id, name=tenant.name, siret=tenant.siret,
                                         config_path=str(path.resolve()), config_hash=TenantConfig.file_hash(path),
                                         now=datetime.now(UTC))
        checkpoints = CheckpointRepository(session, tenant.id)
        state = checkpoints.get(source, stream)
        if state is not None and not state.complete:
            return state
        pass_id = uuid.uuid4().hex
        checkpoints.start(source, stream, pass_id=pass_id, now=datetime.now(UTC))
        return CheckpointState(pass_id, None, 0, False)
