"""Visio (La Suite Meet) as bascule sees it: access levels, rooms, and the documented refusals as values.

Shared/contracts/visio-meet.md is the reference. Meet keeps no title, schedule or external reference for a room:
a room is an id, a random `xxx-xxxx-xxx` slug (its name too), an optional URL, an access level chosen once at
creation, and an owner (the user a token was issued for). Every failure the contract documents is an expected
outcome the cutover reports per action, so it is a `VisioRefusal` with a reason code, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from core.emails import normalise_domain
from core.records import JsonValue

SLUG_PATTERN = re.compile(r"^[a-z]{3}-[a-z]{4}-[a-z]{3}$")
MAX_PARTICIPANTS = 150
TELEPHONY_PIN_LENGTH = 10


class AccessLevel(StrEnum):
    """Who enters a room without waiting in the lobby (contract section 4)."""

    TRUSTED = "trusted"        # anyone logged in to Visio; others wait in the lobby
    RESTRICTED = "restricted"  # logged-in users with a role on the room; others wait
    PUBLIC = "public"          # everyone with the link (refused by the External API unless the operators allow it)


class VisioRefusalReason(StrEnum):
    """Why Visio refused a token or a room call: one code per documented answer (contract sections 2 and 3)."""

    INVALID_REQUEST = "INVALID_REQUEST"              # 400 field errors (a missing field, a bad grant_type, a body)
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"      # 401 "Invalid credentials"
    APPLICATION_INACTIVE = "APPLICATION_INACTIVE"    # 401 "Application is inactive" / "Application is disabled."
    INVALID_SCOPE = "INVALID_SCOPE"                  # 400 "Scope should be a valid email address."
    DOMAIN_NOT_ALLOWED = "DOMAIN_NOT_ALLOWED"        # 403 "This application is not authorized for this email domain."
    USER_NOT_FOUND = "USER_NOT_FOUND"                # 404 "User not found.": no pre-creation, never logged in
    USER_CREATION_RACE = "USER_CREATION_RACE"        # 409 "Failed to create or retrieve provisional user."
    DUPLICATE_USERS = "DUPLICATE_USERS"              # 400 "Multiple user accounts share a common email."
    APPLICATIONS_DISABLED = "APPLICATIONS_DISABLED"  # 404 on the token endpoint: APPLICATION_ENABLED is off
    TOKEN_EXPIRED = "TOKEN_EXPIRED"  # noqa: S105 — 401 "Token expired." (even after one renewal)
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105 — 401 "Invalid token.", claims, unknown user, improperly configured
    USER_INACTIVE = "USER_INACTIVE"                  # 401 "User account is disabled."
    MISSING_SCOPE = "MISSING_SCOPE"                  # 403 "Insufficient permissions. Required scope: …"
    FORBIDDEN = "FORBIDDEN"                          # 403 on a room: the token's user has no role on it
    NOT_FOUND = "NOT_FOUND"                          # 404 on a room: unknown id (or a slug)
    PUBLIC_NOT_ALLOWED = "PUBLIC_NOT_ALLOWED"        # 400 "Public rooms are disabled for the external API."
    INVALID_CONFIGURATION = "INVALID_CONFIGURATION"  # 400 on `configuration` (an unknown key, a bad value)


# Refusals that concern the host rather than the application: the rest of a wave goes on.
_HOST_REASONS = frozenset({VisioRefusalReason.INVALID_SCOPE, VisioRefusalReason.DOMAIN_NOT_ALLOWED,
                           VisioRefusalReason.USER_NOT_FOUND, VisioRefusalReason.USER_CREATION_RACE,
                           VisioRefusalReason.DUPLICATE_USERS, VisioRefusalReason.USER_INACTIVE,
                           VisioRefusalReason.FORBIDDEN, VisioRefusalReason.NOT_FOUND,
                           VisioRefusalReason.PUBLIC_NOT_ALLOWED, VisioRefusalReason.INVALID_CONFIGURATION})


@dataclass(frozen=True, slots=True)
class VisioRefusal:
    """A documented refusal: its reason code, the HTTP status and a message without personal data."""

    reason: VisioRefusalReason
    detail: str = ""
    status: int | None = None

    @property
    def waits_for_first_login(self) -> bool:
        """The host never logged in and the instance does not pre-create users: hold the action, retry later."""
        return self.reason is VisioRefusalReason.USER_NOT_FOUND

    @property
    def concerns_host(self) -> bool:
        """True when only this host's actions fail; False when the application itself is refused (stop the wave)."""
        return self.reason in _HOST_REASONS


@dataclass(frozen=True, slots=True)
class RoomTelephony:
    """The dial-in block of a room: callers dial `phone_number`, then type `pin_code`."""

    pin_code: str
    phone_number: str | None = None
    default_country: str | None = None


@dataclass(frozen=True, slots=True)
class VisioRoom:
    """A Meet room as the External API returns it, with the owner whose token created or read it.

    The External API does not show roles: `owner_email` and `owner_user_id` are the token's user (the owner of every
    room it creates; the rooms it lists are those where that user has any role).
    """

    id: str
    slug: str
    name: str
    url: str | None
    access_level: AccessLevel
    owner_email: str
    owner_user_id: str | None = None
    telephony: RoomTelephony | None = None
    configuration: Mapping[str, JsonValue] = field(default_factory=dict, hash=False)

    @property
    def has_generated_slug(self) -> bool:
        """The slug is Meet's random 3-4-3 (the only form the web app routes)."""
        return SLUG_PATTERN.match(self.slug) is not None


class DomainVerdict(StrEnum):
    """What a token request for one agent says about the Visio application and that agent's domain."""

    ALLOWED = "allowed"                          # a token was issued
    NOT_ALLOWED = "not_allowed"                  # 403: the application has no row for this domain
    USER_MUST_LOG_IN_FIRST = "user_must_log_in_first"  # 404: allowed, but the instance does not pre-create users
    DUPLICATE_USERS = "duplicate_users"          # 400: allowed, but several Visio users share the agent's e-mail
    REFUSED = "refused"                          # anything else (credentials, inactive application, disabled API…)


@dataclass(frozen=True, slots=True)
class DomainCheck:
    """The onboarding check of one domain through a token request for one agent who will be migrated anyway.

    A successful request creates a provisional Visio user when that agent never logged in and the instance
    pre-creates users: `may_have_created_user` says so, for the readiness report. A 404 proves the instance does
    not pre-create users (`precreation_enabled` False); otherwise it stays unknown (None).
    """

    domain: str
    verdict: DomainVerdict
    may_have_created_user: bool = False
    precreation_enabled: bool | None = None
    user_id: str | None = None
    refusal: VisioRefusal | None = None

    @property
    def domain_allowed(self) -> bool:
        """The application may act for this domain (a 404 or a duplicate comes after the domain check)."""
        return self.verdict in (DomainVerdict.ALLOWED, DomainVerdict.USER_MUST_LOG_IN_FIRST,
                                DomainVerdict.DUPLICATE_USERS)


def domain_check_from(domain: str, outcome: str | VisioRefusal) -> DomainCheck:
    """The DomainCheck of a token request: `outcome` is the token's user id, or the refusal."""
    if not isinstance(outcome, VisioRefusal):
        return DomainCheck(domain, DomainVerdict.ALLOWED, may_have_created_user=True, user_id=outcome)
    verdicts = {VisioRefusalReason.DOMAIN_NOT_ALLOWED: DomainVerdict.NOT_ALLOWED,
                VisioRefusalReason.USER_NOT_FOUND: DomainVerdict.USER_MUST_LOG_IN_FIRST,
                VisioRefusalReason.DUPLICATE_USERS: DomainVerdict.DUPLICATE_USERS}
    verdict = verdicts.get(outcome.reason, DomainVerdict.REFUSED)
    return DomainCheck(domain, verdict, precreation_enabled=False if verdict is DomainVerdict.USER_MUST_LOG_IN_FIRST
                       else None, refusal=outcome)


def email_domain(email: str) -> str:
    """The domain part of an address in its normal form (core.emails.normalise_domain: IDNA, lower case), the form
    every comparison with tenant domains uses; lower-cased as written when it is no domain at all."""
    domain = email.strip().rpartition("@")[2]
    return normalise_domain(domain) or domain.lower()
