"""Who may open which part of the web application: roles per tenant, granted to ProConnect identities.

A role is granted to an e-mail address (what ProConnect asserts, lower-cased) for one tenant, by `bascule access
grant` (audited). `admin` holds every other role; nothing else implies anything. Values, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["Role", "allows"]


class Role(StrEnum):
    """What a State agent does with bascule."""

    FINANCE = "finance"        # the savings dashboard and its exports
    HELPDESK = "helpdesk"      # old link → Visio link, resend an invitation
    MIGRATION = "migration"    # the migration console (tenants, waves, failures, conflicts)
    ADMIN = "admin"            # all of the above, and who holds which role


def allows(held: Iterable[Role], wanted: Role) -> bool:
    """Whether the roles held open what `wanted` guards."""
    roles = set(held)
    return wanted in roles or Role.ADMIN in roles
