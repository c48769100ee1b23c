"""A live directory (Active Directory or OpenLDAP) read with ldap3's RFC 2696 paged search."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ldap3 import NONE, SUBTREE, Connection, Server
from ldap3.core.exceptions import (
    LDAPBindError,
    LDAPException,
    LDAPInvalidCredentialsResult,
    LDAPSocketOpenError,
    LDAPSocketReceiveError,
)

from connectors.directory_mapping import DirectoryMapping, MappedEntry, map_entry, normalise_attributes
from connectors.errors import ConnectorAuthError, PermanentConnectorError, TransientConnectorError
from core import DirectoryEntry, Page, Quarantined, ReasonCode

_SYSTEM = "ldap"
DEFAULT_FILTERS = {"ad": "(&(objectCategory=person)(objectClass=user))", "supann": "(objectClass=inetOrgPerson)"}


@dataclass(frozen=True, slots=True)
class LdapConfig:
    """How to reach and search the directory."""

    url: str
    base_dn: str
    bind_dn: str | None
    password: str | None = field(repr=False)
    mapping: DirectoryMapping
    search_filter: str | None = None
    page_size: int = 500
    timeout_seconds: int = 30


class LdapDirectory:
    """The Directory role over LDAP. A paged-search cookie dies with its connection, so a cursor (the number of
    entries already delivered) resumes by searching again and passing over what was delivered."""

    def __init__(self, config: LdapConfig) -> None:
        if not 1 <= config.page_size <= 1000:  # AD's MaxPageSize is 1000
            raise ValueError("page_size must be between 1 and 1000")
        self._config = config

    def _connect(self) -> Connection:
        config = self._config
        # No schema download: values come back as raw bytes either way and AD schemas are large.
        server = Server(config.url, get_info=NONE, connect_timeout=config.timeout_seconds)
        try:
            return Connection(server, user=config.bind_dn, password=config.password, read_only=True,
                              auto_bind=True, receive_timeout=config.timeout_seconds, raise_exceptions=True)
        except (LDAPBindError, LDAPInvalidCredentialsResult) as exc:
            raise ConnectorAuthError(_SYSTEM, "bind refused (check bind DN and password)") from exc
        except (LDAPSocketOpenError, LDAPSocketReceiveError) as exc:
            raise TransientConnectorError(_SYSTEM, f"cannot reach {server.host}:{server.port}") from exc

    def iter_pages(self, cursor: str | None = None) -> Iterator[Page[DirectoryEntry | Quarantined]]:
        """Pages of people (and quarantined entries) in server order; `skipped` counts non-people."""
        config = self._config
        already = int(cursor) if cursor else 0
        search_filter = config.search_filter or DEFAULT_FILTERS[config.mapping.flavour]
        connection = self._connect()
        delivered = 0
        items: list[DirectoryEntry | Quarantined] = []
        skipped = 0
        try:
            results = connection.extend.standard.paged_search(
                search_base=config.base_dn, search_filter=search_filter, search_scope=SUBTREE,
                attributes=config.mapping.requested_attributes, paged_size=config.page_size,
                paged_criticality=False, generator=True)
            for result in results:
                if result.get("type") != "searchResEntry":  # referrals
                    continue
                delivered += 1
                if delivered <= already:
                    continue
                items_or_skip = _map(result["dn"], result["raw_attributes"], config.mapping)
                if items_or_skip is None:
                    skipped += 1
                else:
                    items.extend(items_or_skip)
                if (delivered - already) % config.page_size == 0:
                    yield Page(tuple(items), str(delivered), skipped=skipped)
                    items, skipped = [], 0
        except LDAPException as exc:
            raise PermanentConnectorError(_SYSTEM, f"search failed: {type(exc).__name__}") from exc
        finally:
            connection.unbind()
        yield Page(tuple(items), None, skipped=skipped)


def _map(dn: str, raw: dict[str, list[bytes]],
         mapping: DirectoryMapping) -> list[DirectoryEntry | Quarantined] | None:
    attributes = normalise_attributes([(name, value) for name, values in raw.items() for value in values])
    if isinstance(attributes, str):
        return [Quarantined(ReasonCode.UNKNOWN_ATTRIBUTE, dn, f"invalid attribute name {attributes!r}")]
    mapped = map_entry(dn, attributes, mapping)
    if mapped is None:
        return None
    if isinstance(mapped, MappedEntry):
        return [mapped.entry, *mapped.held_back]
    return [mapped]
