"""From directory attributes to a DirectoryEntry: flavours (AD, OpenLDAP/SupAnn), tenant overrides, checks."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from connectors.wire import parse_record
from core import AnchorKind, DirectoryEntry, InvalidEmail, Quarantined, ReasonCode, parse_email

RawAttributes = Mapping[str, Sequence[bytes]]
"""Attribute name (lower case, options removed) → raw values, as both LDIF and LDAP give them."""

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_ATTRIBUTE_DESCRIPTION = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)(?:;[A-Za-z0-9-]+)*$")

_COMMON_ATTRIBUTES = frozenset({
    "objectclass", "cn", "sn", "givenname", "displayname", "mail", "title", "telephonenumber", "mobile",
    "description", "ou", "o", "dc", "l", "st", "c", "co", "street", "streetaddress", "postalcode", "postaladdress",
    "manager", "initials", "employeenumber", "employeetype", "departmentnumber", "facsimiletelephonenumber",
    "preferredlanguage", "jpegphoto", "labeleduri", "roomnumber", "businesscategory", "seealso", "secretary",
    "usercertificate", "userpassword", "homephone", "x500uniqueidentifier", "uid", "name",
})
_AD_ATTRIBUTES = _COMMON_ATTRIBUTES | frozenset({
    "samaccountname", "userprincipalname", "proxyaddresses", "employeeid", "department", "company",
    "physicaldeliveryofficename", "useraccountcontrol", "lastlogontimestamp", "lastlogon", "lastlogoff",
    "accountexpires", "objectguid", "objectsid", "objectcategory", "whencreated", "whenchanged",
    "distinguishedname", "memberof", "pwdlastset", "usncreated", "usnchanged", "instancetype", "info",
    "othertelephone", "homedirectory", "scriptpath", "primarygroupid", "badpwdcount", "logoncount",
    "countrycode", "codepage", "samaccounttype", "dscorepropagationdata", "thumbnailphoto",
    "ms-ds-consistencyguid", "targetaddress", "legacyexchangedn", "showinaddressbook", "mailnickname",
})
_AD_PATTERNS = (re.compile(r"^msexch"), re.compile(r"^msds-"), re.compile(r"^extensionattribute\d+$"),
                re.compile(r"^msrtcsip-"))
_SUPANN_ATTRIBUTES = _COMMON_ATTRIBUTES | frozenset({
    "mailalternateaddress", "entryuuid", "createtimestamp", "modifytimestamp", "creatorsname", "modifiersname",
    "entrydn", "structuralobjectclass", "hassubordinates", "subschemasubentry", "entrycsn", "uidnumber",
    "gidnumber", "homedirectory", "loginshell", "gecos", "carlicense", "audio", "photo",
})
_SUPANN_PATTERNS = (re.compile(r"^supann"), re.compile(r"^eduperson"), re.compile(r"^pwd"),
                    re.compile(r"^shadow"))


@dataclass(frozen=True, slots=True)
class DisabledRule:
    """An entry is disabled when `attribute` holds one of `values` (SupAnn, OpenLDAP: a tenant decision)."""

    attribute: str
    values: frozenset[str]


@dataclass(frozen=True, slots=True)
class DirectoryMapping:
    """Which attribute carries what, for one directory; defaults per flavour, overridable per tenant."""

    flavour: str
    anchor: str
    anchor_kind: AnchorKind
    mail: str = "mail"
    aliases: tuple[str, ...] = ()
    employee_id: str | None = None
    login: str | None = None
    given_name: str = "givenname"
    surname: str = "sn"
    display_name: str = "displayname"
    department: str | None = None
    department_code: str | None = None
    population: str | None = "employeetype"
    last_logon: str | None = None
    person_classes: frozenset[str] = frozenset()
    person_category_prefix: str | None = None
    disabled_rule: DisabledRule | None = None
    known_attributes: frozenset[str] = frozenset()
    known_patterns: tuple[re.Pattern[str], ...] = ()
    binary_attributes: frozenset[str] = frozenset({"objectguid", "objectsid", "jpegphoto", "thumbnailphoto",
                                                   "usercertificate", "ms-ds-consistencyguid", "userpassword",
                                                   "photo", "audio"})
    extra_attributes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def active_directory(cls) -> DirectoryMapping:
        return cls(flavour="ad", anchor="objectguid", anchor_kind=AnchorKind.OBJECT_GUID, mail="mail",
                   aliases=("proxyaddresses",), employee_id="employeeid", login="samaccountname",
                   department="department", department_code="department", population="employeetype",
                   last_logon="lastlogontimestamp", person_classes=frozenset({"user"}),
                   person_category_prefix="cn=person,", known_attributes=_AD_ATTRIBUTES, known_patterns=_AD_PATTERNS)

    @classmethod
    def supann(cls) -> DirectoryMapping:
        return cls(flavour="supann", anchor="entryuuid", anchor_kind=AnchorKind.ENTRY_UUID, mail="mail",
                   aliases=("mailalternateaddress", "supannautremail"), employee_id="employeenumber", login="uid",
                   department="ou", department_code="supannentiteaffectationprincipale", population="employeetype",
                   person_classes=frozenset({"inetorgperson"}),
                   disabled_rule=DisabledRule("supannressourceetat", frozenset({"{COMPTE}I", "{COMPTE}S"})),
                   known_attributes=_SUPANN_ATTRIBUTES, known_patterns=_SUPANN_PATTERNS)

    @classmethod
    def for_flavour(cls, flavour: str) -> DirectoryMapping:
        if flavour == "ad":
            return cls.active_directory()
        if flavour == "supann":
            return cls.supann()
        raise ValueError(f"unknown directory flavour {flavour!r} (ad or supann)")

    def with_overrides(self, overrides: Mapping[str, str | Sequence[str] | None], extra_attributes: Sequence[str] = (),
                       disabled_rule: DisabledRule | None = None) -> DirectoryMapping:
        """Tenant settings: rename attributes, declare extra known attributes, set the disabled rule."""
        changes: dict[str, object] = {}
        for key, value in overrides.items():
            if key not in _OVERRIDABLE:
                raise ValueError(f"directory attribute mapping has no field {key!r}")
            if key == "aliases":
                assert value is not None and not isinstance(value, str)
                changes[key] = tuple(v.lower() for v in value)
            elif key == "anchor_kind":
                changes[key] = AnchorKind(str(value))
            else:
                changes[key] = value.lower() if isinstance(value, str) else value
        mapping = replace(self, **changes)  # type: ignore[arg-type]
        extras = frozenset(name.lower() for name in extra_attributes)
        return replace(mapping, extra_attributes=mapping.extra_attributes | extras,
                       disabled_rule=disabled_rule or mapping.disabled_rule)

    @property
    def requested_attributes(self) -> list[str]:
        """What to ask an LDAP server for (operational attributes such as entryUUID must be named)."""
        names = {self.anchor, self.mail, *self.aliases, self.given_name, self.surname, self.display_name,
                 "objectclass"}
        for optional in (self.employee_id, self.login, self.department, self.department_code, self.population,
                         self.last_logon):
            if optional:
                names.add(optional)
        if self.person_category_prefix:
            names.add("objectcategory")
        if self.flavour == "ad":
            names.add("useraccountcontrol")
        if self.disabled_rule:
            names.add(self.disabled_rule.attribute)
        return sorted(names)

    def is_known(self, name: str) -> bool:
        return (name in self.known_attributes or name in self.extra_attributes
                or any(pattern.match(name) for pattern in self.known_patterns))


_OVERRIDABLE = frozenset({"anchor", "anchor_kind", "mail", "aliases", "employee_id", "login", "given_name",
                          "surname", "display_name", "department", "department_code", "population", "last_logon"})


@dataclass(frozen=True, slots=True)
class MappedEntry:
    """A person entry, plus values of it that were held back (an invalid alias, say)."""

    entry: DirectoryEntry
    held_back: tuple[Quarantined, ...] = ()


def normalise_attributes(pairs: Sequence[tuple[str, bytes]]) -> dict[str, list[bytes]] | str:
    """Group (name, value) pairs by lower-case name without options; or the first invalid name."""
    grouped: dict[str, list[bytes]] = {}
    for name, value in pairs:
        if not _ATTRIBUTE_DESCRIPTION.match(name):
            return name
        grouped.setdefault(name.split(";", 1)[0].lower(), []).append(value)
    return grouped


def map_entry(dn: str, attributes: RawAttributes, mapping: DirectoryMapping,
              *, record_key: str | None = None) -> MappedEntry | Quarantined | None:
    """A DirectoryEntry, a quarantined record (with its reason), or None when the entry is not a person."""
    return parse_record(lambda: record_key or dn, lambda: _map_entry(dn, attributes, mapping, key=record_key or dn))


def _map_entry(dn: str, attributes: RawAttributes, mapping: DirectoryMapping,
               *, key: str) -> MappedEntry | Quarantined | None:
    classes = {value.decode("utf-8", "replace").lower() for value in attributes.get("objectclass", ())}
    if not mapping.person_classes <= classes or "computer" in classes:
        return None
    if mapping.person_category_prefix is not None:
        category = _first_text(attributes, "objectcategory")
        if category is None or not category.lower().startswith(mapping.person_category_prefix):
            return None
    unknown = sorted(name for name in attributes if not mapping.is_known(name))
    if unknown:
        return Quarantined(ReasonCode.UNKNOWN_ATTRIBUTE, key, f"attributes outside the {mapping.flavour} schema: "
                           + ", ".join(unknown), {"dn": dn, "attributes": ", ".join(unknown)})
    text: dict[str, list[str]] = {}
    for name, values in attributes.items():
        if name in mapping.binary_attributes:
            continue
        try:
            text[name] = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            return Quarantined(ReasonCode.LDIF_BAD_ENCODING, key, f"attribute {name} is not UTF-8", {"dn": dn})

    anchor = _anchor(attributes, text, mapping)
    if anchor is None:
        return Quarantined(ReasonCode.MISSING_ANCHOR, key, f"no usable {mapping.anchor}", {"dn": dn})
    anchor_text, immutable_id = anchor

    primary_raw = _first(text, mapping.mail)
    aliases_raw: list[str] = []
    for alias_attribute in mapping.aliases:
        for value in text.get(alias_attribute, ()):
            if alias_attribute == "proxyaddresses":
                prefix, _, address = value.partition(":")
                if prefix == "SMTP" and primary_raw is None:
                    primary_raw = address
                elif prefix.lower() == "smtp" and prefix != "SMTP":
                    aliases_raw.append(address)
            else:
                aliases_raw.append(value)
    if primary_raw is None or not primary_raw.strip():
        return Quarantined(ReasonCode.MISSING_MAIL, key, "no mail attribute", {"dn": dn})
    parsed = parse_email(primary_raw)
    if isinstance(parsed, InvalidEmail):
        return Quarantined(ReasonCode.INVALID_EMAIL, key, f"mail is not an address ({parsed.reason})",
                           {"dn": dn, "value": primary_raw})

    held_back: list[Quarantined] = []
    aliases: list[str] = []
    for alias in aliases_raw:
        alias_parsed = parse_email(alias)
        if isinstance(alias_parsed, InvalidEmail):
            held_back.append(Quarantined(ReasonCode.INVALID_EMAIL, f"{key}#alias:{alias}",
                                         f"alias is not an address ({alias_parsed.reason})", {"dn": dn}))
        elif str(alias_parsed) != str(parsed) and alias not in aliases:
            aliases.append(alias)

    entry = DirectoryEntry(
        anchor=anchor_text, anchor_kind=mapping.anchor_kind, dn=canonical_dn(dn), primary_email=primary_raw,
        aliases=tuple(aliases), employee_id=_first(text, mapping.employee_id), login=_first(text, mapping.login),
        given_name=_first(text, mapping.given_name), surname=_first(text, mapping.surname),
        display_name=_first(text, mapping.display_name), department=_first(text, mapping.department),
        department_code=_first(text, mapping.department_code), population=_first(text, mapping.population),
        disabled=_disabled(text, mapping), last_logon=_filetime(_first(text, mapping.last_logon)),
        immutable_id=immutable_id,
    )
    return MappedEntry(entry, tuple(held_back))


def canonical_dn(dn: str) -> str:
    """The DN with attribute types in lower case (CN=… and cn=… name the same entry); values untouched."""
    try:
        parts = parse_dn(dn, escape=False, strip=True)
    except LDAPInvalidDnError:
        return dn
    return "".join(f"{attribute.lower()}={value}{separator}" for attribute, value, separator in parts)


def _anchor(attributes: RawAttributes, text: Mapping[str, list[str]],
            mapping: DirectoryMapping) -> tuple[str, str | None] | None:
    if mapping.anchor in mapping.binary_attributes:
        raw = next(iter(attributes.get(mapping.anchor, ())), None)
        if raw is None or len(raw) != 16:
            return None
        # AD stores a GUID little-endian in its first three fields; Entra's immutable id is base64 of the bytes.
        return str(uuid.UUID(bytes_le=bytes(raw))), base64.b64encode(raw).decode("ascii")
    value = _first(text, mapping.anchor)
    if value is None or not value.strip():
        return None
    if mapping.anchor_kind is AnchorKind.ENTRY_UUID:
        try:
            return str(uuid.UUID(value.strip())), None
        except ValueError:
            return None
    return value.strip(), None


def _disabled(text: Mapping[str, list[str]], mapping: DirectoryMapping) -> bool:
    if mapping.flavour == "ad" and mapping.disabled_rule is None:
        flags = _first(text, "useraccountcontrol")
        return flags is not None and flags.strip().isdigit() and int(flags) & 0x2 == 0x2
    if mapping.disabled_rule is None:
        return False
    return any(value in mapping.disabled_rule.values for value in text.get(mapping.disabled_rule.attribute, ()))


def _filetime(value: str | None) -> datetime | None:
    if value is None or not value.strip().isdigit() or int(value) == 0:
        return None
    ticks = int(value)
    if ticks >= 0x7FFFFFFFFFFFFFFF:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)


def _first(text: Mapping[str, list[str]], name: str | None) -> str | None:
    if name is None:
        return None
    values = text.get(name)
    return values[0] if values else None


def _first_text(attributes: RawAttributes, name: str) -> str | None:
    values = attributes.get(name)
    return values[0].decode("utf-8", "replace") if values else None
