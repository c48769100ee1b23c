"""The LDAP connector against a real slapd loaded from a generated export: the same people as the LDIF reader."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from ldap3 import Connection, Server

from connectors.directory_mapping import DirectoryMapping, map_entry
from connectors.errors import ConnectorAuthError
from connectors.ldap_directory import LdapConfig, LdapDirectory
from connectors.ldif_file import LdifDirectory, LdifRecord, iter_ldif_records
from core import DirectoryEntry, Quarantined, ReasonCode
from sandbox.generator.directory import Flavour
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from tests.conftest import AS_OF
from tests.support import slapd

pytestmark = pytest.mark.slapd
READER_PASSWORD = "reader-secret"


@pytest.fixture(scope="module")
def reader(slapd_server: slapd.SlapdServer) -> str:
    """A service account bound by the size limits of ordinary users (root is unlimited)."""
    dn = f"cn=bascule-reader-{uuid.uuid4().hex[:6]},{slapd_server.suffix}"
    with slapd_server.connect() as connection:
        connection.add(dn, ["simpleSecurityObject", "organizationalRole"], {"userPassword": READER_PASSWORD})
    return dn


def _load(slapd_server: slapd.SlapdServer, export: Path, mapping: DirectoryMapping) -> int:
    """Load what a directory server would hold: every parseable record whose attributes its schema knows."""
    entries = []
    for record in iter_ldif_records(export):
        if not isinstance(record, LdifRecord):
            continue
        mapped = map_entry(record.dn, record.attributes, mapping)
        if isinstance(mapped, Quarantined) and mapped.reason is ReasonCode.UNKNOWN_ATTRIBUTE:
            continue
        attributes = dict(record.attributes)
        if b"computer" in attributes["objectclass"] and "sn" not in attributes:
            attributes["sn"] = attributes["cn"]  # OpenLDAP's person requires sn; AD's computers have none
        entries.append((record.dn, attributes))
    return slapd.load_entries(slapd_server, entries)


def _collect(pages: object) -> tuple[set[DirectoryEntry], list[Quarantined], int]:
    entries: set[DirectoryEntry] = set()
    quarantined: list[Quarantined] = []
    count = 0
    for page in pages:  # type: ignore[attr-defined]
        count += 1
        for item in page.items:
            if isinstance(item, DirectoryEntry):
                entries.add(item)
            else:
                quarantined.append(item)
    return entries, quarantined, count


@pytest.mark.parametrize("flavour", [Flavour.AD, Flavour.SUPANN])
def test_paged_search_returns_every_person_like_the_export(tmp_path: Path, slapd_server: slapd.SlapdServer,
                                                           reader: str, flavour: Flavour) -> None:
    base = f"ou={flavour}-{uuid.uuid4().hex[:8]},{slapd_server.suffix}"
    manifest = generate_ministry(tmp_path, GeneratorOptions(agents=700, seed=5, flavour=flavour, as_of=AS_OF,
                                                            base_dn=base))
    mapping = DirectoryMapping.for_flavour(str(flavour))
    loaded = _load(slapd_server, tmp_path / "directory.ldif", mapping)
    assert loaded >= manifest["directory"]["people"]

    from_export, _, _ = _collect(LdifDirectory(tmp_path / "directory.ldif", mapping).iter_pages())
    config = LdapConfig(url=slapd_server.uri, base_dn=base, bind_dn=reader, password=READER_PASSWORD,
                        mapping=mapping, search_filter="(objectClass=user)" if flavour is Flavour.AD else None,
                        page_size=50)
    from_ldap, quarantined, pages = _collect(LdapDirectory(config).iter_pages())

    assert pages > 1
    assert len(from_ldap) == manifest["directory"]["people"]
    assert from_ldap == from_export  # same anchors, e-mails, aliases, states, names, departments
    expected_reasons = {ReasonCode.MISSING_MAIL, ReasonCode.INVALID_EMAIL}
    assert {item.reason for item in quarantined} <= expected_reasons
    by_reason = {reason: sum(1 for item in quarantined if item.reason is reason) for reason in expected_reasons}
    assert by_reason[ReasonCode.MISSING_MAIL] == manifest["directory"]["quarantine"].get("MISSING_MAIL", 0)


def test_plain_search_hits_the_size_limit_that_paging_avoids(slapd_server: slapd.SlapdServer, reader: str,
                                                            tmp_path: Path) -> None:
    base = f"ou=limit-{uuid.uuid4().hex[:8]},{slapd_server.suffix}"
    generate_ministry(tmp_path, GeneratorOptions(agents=300, seed=9, flavour=Flavour.SUPANN, as_of=AS_OF,
                                                 base_dn=base))
    _load(slapd_server, tmp_path / "directory.ldif", DirectoryMapping.supann())
    connection = Connection(Server(slapd_server.uri), user=reader, password=READER_PASSWORD, auto_bind=True)
    connection.search(base, "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert connection.result["description"] == "sizeLimitExceeded"  # ldap3 does not raise for this one
    assert len(connection.entries) == 100
    connection.unbind()
    config = LdapConfig(url=slapd_server.uri, base_dn=base, bind_dn=reader, password=READER_PASSWORD,
                        mapping=DirectoryMapping.supann(), page_size=100)
    people, _, _ = _collect(LdapDirectory(config).iter_pages())
    assert len(people) > 200


def test_cursor_resumes_after_what_was_delivered(slapd_server: slapd.SlapdServer, reader: str,
                                                 tmp_path: Path) -> None:
    base = f"ou=resume-{uuid.uuid4().hex[:8]},{slapd_server.suffix}"
    generate_ministry(tmp_path, GeneratorOptions(agents=260, seed=11, flavour=Flavour.SUPANN, as_of=AS_OF,
                                                 base_dn=base))
    _load(slapd_server, tmp_path / "directory.ldif", DirectoryMapping.supann())
    directory = LdapDirectory(LdapConfig(url=slapd_server.uri, base_dn=base, bind_dn=reader,
                                         password=READER_PASSWORD, mapping=DirectoryMapping.supann(), page_size=60))
    pages = list(directory.iter_pages())
    everything = [item.anchor for page in pages for item in page.items if isinstance(item, DirectoryEntry)]
    resumed = [item.anchor for page in directory.iter_pages(pages[1].next_cursor) for item in page.items
               if isinstance(item, DirectoryEntry)]
    first_two = [item.anchor for page in pages[:2] for item in page.items if isinstance(item, DirectoryEntry)]
    assert first_two + resumed == everything


def test_wrong_password_is_an_auth_error(slapd_server: slapd.SlapdServer, reader: str) -> None:
    config = LdapConfig(url=slapd_server.uri, base_dn=slapd_server.suffix, bind_dn=reader, password="wrong",
                        mapping=DirectoryMapping.supann())
    with pytest.raises(ConnectorAuthError):
        list(LdapDirectory(config).iter_pages())
