"""Who holds which role of the web application, per tenant (core.access). Like the other repositories it never
commits; granting and revoking leave an audit event in the same transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.access import Role
from db import models
from db.repositories import AuditRepository

__all__ = ["AccessRepository", "Grant"]


@dataclass(frozen=True, slots=True)
class Grant:
    """One role held by one identity for one tenant."""

    tenant_id: str
    email: str
    role: Role
    granted_by: str
    granted_at: datetime


def _normal(email: str) -> str:
    return email.strip().lower()


class AccessRepository:
    """Grants across tenants: the web app asks which roles an identity holds, the CLI grants and revokes."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def grant(self, tenant_id: str, email: str, role: Role, *, actor: str, now: datetime) -> bool:
        """Grant `role` (again); False when it was already held. Audited."""
        address = _normal(email)
        row = self._row(tenant_id, address, role)
        if row is not None and row.revoked_at is None:
            return False
        if row is None:
            self._session.add(models.AccessGrant(tenant_id=tenant_id, email=address, role=role.value,
                                                 granted_by=actor, granted_at=now, revoked_at=None))
        else:
            row.granted_by, row.granted_at, row.revoked_at = actor, now, None
        AuditRepository(self._session, tenant_id).record(actor=actor, action="access.granted", target_kind="access",
                                                         target_id=f"{address}:{role.value}", now=now,
                                                         after={"role": role.value})
        self._session.flush()
        return True

    def revoke(self, tenant_id: str, email: str, role: Role, *, actor: str, now: datetime) -> bool:
        """Revoke `role`; False when it was not held. Audited."""
        address = _normal(email)
        row = self._row(tenant_id, address, role)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = now
        AuditRepository(self._session, tenant_id).record(actor=actor, action="access.revoked", target_kind="access",
                                                         target_id=f"{address}:{role.value}", now=now,
                                                         before={"role": role.value})
        self._session.flush()
        return True

    def roles_of(self, email: str) -> dict[str, frozenset[Role]]:
        """The roles an identity holds now, per tenant."""
        table = models.AccessGrant
        held: dict[str, set[Role]] = {}
        for tenant_id, role in self._session.execute(select(table.tenant_id, table.role).where(
                table.email == _normal(email), table.revoked_at.is_(None))):
            held.setdefault(tenant_id, set()).add(Role(role))
        return {tenant_id: frozenset(roles) for tenant_id, roles in held.items()}

    def grants(self, tenant_id: str) -> Sequence[Grant]:
        """Every role held now for one tenant, by e-mail then role."""
        table = models.AccessGrant
        return [Grant(row.tenant_id, row.email, Role(row.role), row.granted_by, row.granted_at)
                for row in self._session.execute(select(table).where(
                    table.tenant_id == tenant_id, table.revoked_at.is_(None))
                    .order_by(table.email, table.role)).scalars()]

    def _row(self, tenant_id: str, email: str, role: Role) -> models.AccessGrant | None:
        table = models.AccessGrant
        found: models.AccessGrant | None = self._session.execute(select(table).where(
            table.tenant_id == tenant_id, table.email == email, table.role == role.value)).scalar_one_or_none()
        return found
