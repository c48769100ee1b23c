"""`bascule access`: who may open which part of the web application (roles per tenant, audited)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from flows.cli.common import TenantOption, fail, load_tenant, state_database

app = typer.Typer(help="Web application roles (finance, helpdesk, migration, admin) of ProConnect identities.",
                  no_args_is_help=True)

EmailArgument = Annotated[str, typer.Argument(help="The agent's ProConnect e-mail address.")]
RoleArgument = Annotated[str, typer.Argument(help="finance, helpdesk, migration or admin (admin holds them all).")]
ByOption = Annotated[str | None, typer.Option("--by", help="Who decides it (audit); default: $USER.")]


def _checked(email: str, role: str) -> tuple[str, Any]:
    from core.access import Role
    from core.emails import EmailAddress, parse_email

    parsed = parse_email(email)
    if not isinstance(parsed, EmailAddress):
        fail(f"not an e-mail address ({parsed.reason})")
    try:
        return str(parsed), Role(role.strip().lower())
    except ValueError:
        fail(f"role {role!r}: one of " + ", ".join(item.value for item in Role))


def _change(tenant: Any, email: str, role: str, by: str | None, *, grant: bool) -> None:
    from db.access import AccessRepository
    from db.models import Tenant
    from flows.runtime import transaction

    config = load_tenant(tenant)
    address, wanted = _checked(email, role)
    database = state_database()
    with transaction(database) as session:
        if session.get(Tenant, config.id) is None:
            fail(f"tenant {config.id} is not registered: run `bascule onboard --tenant {tenant}` first")
        repo = AccessRepository(session)
        actor = by or os.environ.get("USER") or "unknown"
        now = datetime.now(UTC)
        changed = (repo.grant if grant else repo.revoke)(config.id, address, wanted, actor=actor, now=now)
    verb = "granted" if grant else "revoked"
    if changed:
        print(f"tenant {config.id}: role {wanted.value} {verb} (audited)")
    else:
        print(f"tenant {config.id}: nothing to do, the role was {'already' if grant else 'not'} held")


@app.command("grant")
def access_grant(email: EmailArgument, role: RoleArgument, tenant: TenantOption, by: ByOption = None) -> None:
    """Let a ProConnect identity open a part of the web application for this tenant (audited)."""
    _change(tenant, email, role, by, grant=True)


@app.command("revoke")
def access_revoke(email: EmailArgument, role: RoleArgument, tenant: TenantOption, by: ByOption = None) -> None:
    """Take a role back (audited); the agent's next page is refused."""
    _change(tenant, email, role, by, grant=False)


@app.command("list")
def access_list(tenant: TenantOption) -> None:
    """Who holds which role for this tenant."""
    from db.access import AccessRepository
    from flows.runtime import transaction

    config = load_tenant(tenant)
    with transaction(state_database()) as session:
        grants = AccessRepository(session).grants(config.id)
    if not grants:
        print(f"tenant {config.id}: nobody holds a role yet (bascule access grant EMAIL ROLE --tenant …)")
    for grant in grants:
        print(f"{grant.email:<48} {grant.role.value:<10} granted {grant.granted_at:%Y-%m-%d} by {grant.granted_by}")
