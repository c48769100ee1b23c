"""The LDIF export reader: RFC 2849 shapes, bad records quarantined, the stream goes on, cursors resume."""

from __future__ import annotations

import base64
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.directory_mapping import DirectoryMapping
from connectors.ldif_file import LdifDirectory, LdifProblem, LdifRecord, iter_ldif_records
from core import AnchorKind, DirectoryEntry, Quarantined, ReasonCode

GUID = uuid.UUID("6f1d7b52-0c3c-403f-8a8e-4b1c6e0e2a11")
GUID_B64 = base64.b64encode(GUID.bytes_le).decode()
SUPANN_HEAD = "objectClass: inetOrgPerson\nobjectClass: supannPerson\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


def _fold(line: str, width: int = 20) -> str:
    """Fold a line at `width` characters, RFC 2849 style (continuations start with one space)."""
    parts = [line[:width]] + [line[i:i + width - 1] for i in range(width, len(line), width - 1)]
    return "\n ".join(parts)


def _read(tmp_path: Path, text: str | bytes, mapping: DirectoryMapping | None = None,
          page_size: int = 100) -> tuple[list[DirectoryEntry], list[Quarantined], int]:
    path = tmp_path / "export.ldif"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    entries: list[DirectoryEntry] = []
    quarantined: list[Quarantined] = []
    skipped = 0
    for page in LdifDirectory(path, mapping or DirectoryMapping.supann(), page_size=page_size).iter_pages():
        skipped += page.skipped
        for item in page.items:
            (entries if isinstance(item, DirectoryEntry) else quarantined).append(item)  # type: ignore[arg-type]
    return entries, quarantined, skipped


def _supann(uid: str, *, extra: str = "", mail: str | None = None, entry_uuid: str | None = None) -> str:
    lines = [f"dn: uid={uid},ou=people,dc=ex,dc=fr", SUPANN_HEAD.rstrip("\n"), f"uid: {uid}", f"cn: {uid}",
             f"sn: {uid}", f"entryUUID: {entry_uuid or uuid.uuid5(GUID, uid)}"]
    if mail is not None:
        lines.append(f"mail: {mail}")
    if extra:
        lines.append(extra.rstrip("\n"))
    return "\n".join(lines) + "\n\n"


def test_folded_base64_and_folded_utf8_and_repeated_attributes(tmp_path: Path) -> None:
    name = "Jérôme d'Estienne d'Orves-Ñúñez"
    text = ("version: 1\n\n# a comment that is\n  folded over two lines\n"
            + _supann("jdupont", mail="jerome.dupont@culture.gouv.fr",
                      extra="\n".join([_fold(f"displayName:: {_b64(name)}"),
                                       _fold("description: Chargé de mission pour la migration vers Visio, bureau 3B",
                                             17),
                                       "mailAlternateAddress: j.dupont@culture.fr",
                                       "mailAlternateAddress: jdupont@culture.fr",
                                       "cn;lang-fr: Jérôme"])))
    entries, quarantined, _ = _read(tmp_path, text)
    assert quarantined == []
    (entry,) = entries
    assert entry.display_name == name
    assert entry.aliases == ("j.dupont@culture.fr", "jdupont@culture.fr")
    assert entry.anchor_kind is AnchorKind.ENTRY_UUID


def test_base64_dn_and_crlf_line_endings(tmp_path: Path) -> None:
    dn = "uid=hélène,ou=people,dc=ex,dc=fr"
    text = _supann("helene", mail="helene.roux@culture.gouv.fr").replace(
        "dn: uid=helene,ou=people,dc=ex,dc=fr", f"dn:: {_b64(dn)}").replace("\n", "\r\n")
    entries, quarantined, _ = _read(tmp_path, text)
    assert quarantined == []
    assert entries[0].dn == dn


@pytest.mark.parametrize("bom_encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_marks(tmp_path: Path, bom_encoding: str) -> None:
    text = _supann("anne", mail="anne.roy@culture.gouv.fr", extra=f"displayName:: {_b64('Anne Roy-Hébert')}")
    entries, quarantined, _ = _read(tmp_path, text.encode(bom_encoding))
    assert quarantined == []
    assert entries[0].display_name == "Anne Roy-Hébert"


def test_bad_records_are_quarantined_and_the_stream_goes_on(tmp_path: Path) -> None:
    records = [
        _supann("ok1", mail="ok1@culture.gouv.fr"),
        _supann("nomail"),
        _supann("badb64", mail="b@culture.gouv.fr", extra="displayName:: SsOpcsO0bWUgRHVwb25"),
        _supann("unknown", mail="u@culture.gouv.fr", extra="courrielPro: u@culture.gouv.fr"),
        _supann("badname", mail="n@culture.gouv.fr", extra="e-mail_address: n@culture.gouv.fr"),
        _supann("invalid", mail="jean dupont@culture.gouv.fr"),
        _supann("url", mail="url@culture.gouv.fr", extra="jpegPhoto:< file:///etc/passwd"),
        "dn: uid=ok1,ou=people,dc=ex,dc=fr\nchangetype: modify\nreplace: mail\nmail: x@culture.gouv.fr\n-\n\n",
        "this is not ldif at all\n\n",
        _supann("noanchor", mail="na@culture.gouv.fr", entry_uuid="not-a-uuid"),
        _supann("latin1", mail="l@culture.gouv.fr",
                extra=f"displayName:: {base64.b64encode('Hélène'.encode('latin-1')).decode()}"),
        _supann("ok2", mail="ok2@culture.gouv.fr"),
    ]
    entries, quarantined, _ = _read(tmp_path, "version: 1\n\n" + "".join(records))
    assert [entry.login for entry in entries] == ["ok1", "ok2"]
    reasons = {item.record_key.split(",")[0]: item.reason for item in quarantined}
    assert reasons == {
        "uid=nomail": ReasonCode.MISSING_MAIL,
        "uid=badb64": ReasonCode.LDIF_BAD_BASE64,
        "uid=unknown": ReasonCode.UNKNOWN_ATTRIBUTE,
        "uid=badname": ReasonCode.UNKNOWN_ATTRIBUTE,
        "uid=invalid": ReasonCode.INVALID_EMAIL,
        "uid=url": ReasonCode.LDIF_URL_VALUE,
        "uid=ok1": ReasonCode.LDIF_CHANGE_RECORD,
        "record#9": ReasonCode.LDIF_MALFORMED,
        "uid=noanchor": ReasonCode.MISSING_ANCHOR,
        "uid=latin1": ReasonCode.LDIF_BAD_ENCODING,
    }


def test_changetype_add_is_an_entry(tmp_path: Path) -> None:
    text = _supann("added", mail="added@culture.gouv.fr").replace("objectClass: inetOrgPerson",
                                                                  "changetype: add\nobjectClass: inetOrgPerson")
    entries, quarantined, _ = _read(tmp_path, text)
    assert [entry.login for entry in entries] == ["added"] and quarantined == []


def _ad_person(cn: str, *, mail: str | None, uac: int = 512, proxies: tuple[str, ...] = (),
               category: str = "CN=Person,CN=Schema,CN=Configuration,DC=ad,DC=ex") -> str:
    lines = [f"dn: CN={cn},OU=Agents,DC=ad,DC=ex", "objectClass: top", "objectClass: person",
             "objectClass: organizationalPerson", "objectClass: user", f"cn: {cn}", f"sAMAccountName: {cn.lower()}",
             f"objectGUID:: {base64.b64encode(uuid.uuid5(GUID, cn).bytes_le).decode()}",
             f"objectCategory: {category}", f"userAccountControl: {uac}", "lastLogonTimestamp: 134050752000000000",
             "employeeID: 0042"]
    if mail:
        lines.append(f"mail: {mail}")
    lines += [f"proxyAddresses: {proxy}" for proxy in proxies]
    return "\n".join(lines) + "\n\n"


def test_active_directory_shapes(tmp_path: Path) -> None:
    text = (_ad_person("Claire", mail="claire.martin@culture.gouv.fr", uac=514,
                       proxies=("SMTP:claire.martin@culture.gouv.fr", "smtp:c.martin@culture.fr",
                                "X500:/o=Org/cn=Recipients/cn=claire", "SIP:claire.martin@culture.gouv.fr",
                                "smtp:not an address"))
            + _ad_person("NoMailAttr", mail=None, proxies=("SMTP:nomail.attr@culture.gouv.fr",))
            + _ad_person("PC-0001", mail=None, category="CN=Computer,CN=Schema,CN=Configuration,DC=ad,DC=ex")
            + "dn: OU=Agents,DC=ad,DC=ex\nobjectClass: organizationalUnit\nou: Agents\n\n")
    entries, quarantined, skipped = _read(tmp_path, text, DirectoryMapping.active_directory())
    claire, nomail = entries
    assert claire.anchor == str(uuid.uuid5(GUID, "Claire"))
    assert claire.immutable_id == base64.b64encode(uuid.uuid5(GUID, "Claire").bytes_le).decode()
    assert claire.disabled is True and nomail.disabled is False
    assert claire.aliases == ("c.martin@culture.fr",)
    assert claire.last_logon is not None and claire.last_logon.isoformat() == "2025-10-16T08:00:00+00:00"
    assert claire.employee_id == "0042" and claire.login == "claire"
    assert nomail.primary_email == "nomail.attr@culture.gouv.fr"  # SMTP: stands in for a missing mail
    assert [item.reason for item in quarantined] == [ReasonCode.INVALID_EMAIL]  # the bad alias, held back
    assert skipped == 2  # the computer and the OU are not people


def test_pages_and_cursor_resume_skip_nothing_and_repeat_nothing(tmp_path: Path) -> None:
    text = "".join(_supann(f"a{i:03d}", mail=f"a{i}@culture.gouv.fr") for i in range(250))
    path = tmp_path / "export.ldif"
    path.write_text(text, encoding="utf-8")
    reader = LdifDirectory(path, DirectoryMapping.supann(), page_size=40)
    pages = list(reader.iter_pages())
    assert [len(page.items) for page in pages] == [40] * 6 + [10]
    assert pages[-1].next_cursor is None
    everything = [item.login for page in pages for item in page.items]  # type: ignore[union-attr]
    for index, page in enumerate(pages[:-1]):
        resumed = [item.login for later in reader.iter_pages(page.next_cursor)  # type: ignore[union-attr]
                   for item in later.items]
        assert everything[: 40 * (index + 1)] + resumed == everything


def test_records_keep_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "export.ldif"
    path.write_text(_ad_person("Paul", mail="paul@culture.gouv.fr"), encoding="utf-8")
    (record,) = [r for r in iter_ldif_records(path) if r is not None]
    assert isinstance(record, LdifRecord) and not isinstance(record, LdifProblem)
    assert record.attributes["objectguid"] == [uuid.uuid5(GUID, "Paul").bytes_le]


@pytest.mark.parametrize("fixture", ["ministry_ad", "ministry_supann"])
def test_generated_exports_read_exactly_as_the_manifest_says(fixture: str, request: pytest.FixtureRequest) -> None:
    out, manifest = request.getfixturevalue(fixture)
    mapping = DirectoryMapping.for_flavour(manifest["generator"]["flavour"])
    entries, quarantined, skipped = _read(out, (out / "directory.ldif").read_bytes(), mapping, page_size=333)
    assert len(entries) == manifest["directory"]["people"]
    assert len({entry.anchor for entry in entries}) == len(entries)
    assert dict(Counter(str(item.reason) for item in quarantined)) == manifest["directory"]["quarantine"]
    assert skipped == manifest["directory"]["out_of_scope"]
    assert sum(entry.disabled for entry in entries) == manifest["directory"]["disabled"]
    populations: dict[str, Any] = Counter(entry.population for entry in entries)
    assert populations == manifest["directory"]["populations"]
