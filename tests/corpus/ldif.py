"""Bad directory records (an Active Directory LDIF export): each kind, the entry that shows it, the reason it gets.

A kind either keeps its entry out (quarantined with the reason) or loads it with the change reported (values
cleaned or cut to fit their columns: the entry is there, and the quarantine says what was changed).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

GOOD_PEOPLE = 3
_NAMESPACE = uuid.UUID("0b7ad3f1-9c51-4a57-9b0c-1f3a4d4a2e10")


@dataclass(frozen=True)
class LdifCase:
    """One kind of bad directory record: its LDIF text, the record key and the reason code it must get."""

    kind: str
    text: str
    record_key: str
    reason: str
    loaded: bool = False   # the entry is loaded anyway (a value changed to fit), the change reported


def _b64(value: str | bytes) -> str:
    return base64.b64encode(value.encode("utf-8") if isinstance(value, str) else value).decode("ascii")


def guid(name: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, name)


def entry(name: str, *, mail: str | None = "default", guid_of: str | None = None, extra: str = "",
          display: str | None = None, department: str = "DNUM/SDI/B2", dn: str | None = None) -> str:
    """An AD user entry (one person) with whatever the case changes."""
    lines = [f"dn: {dn or f'CN={name},OU=Agents,DC=ad,DC=culture,DC=local'}", "objectClass: top",
             "objectClass: person", "objectClass: organizationalPerson", "objectClass: user",
             f"cn: {name}", f"sn: {name}", f"sAMAccountName: {name}"]
    if display is not None:
        lines.append(display)
    else:
        lines.append(f"displayName: Agent {name}")
    if mail == "default":
        lines.append(f"mail: {name}@culture.gouv.fr")
    elif mail is not None:
        lines.append(mail)
    lines += [f"department: {department}", "userAccountControl: 512",
              f"objectGUID:: {_b64(guid(guid_of or name).bytes_le)}",
              "objectCategory: CN=Person,CN=Schema,CN=Configuration,DC=ad,DC=culture,DC=local"]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n\n"


def _dn(name: str) -> str:
    return f"CN={name},OU=Agents,DC=ad,DC=culture,DC=local"


def _anchor(name: str) -> str:
    return f"directory:{guid(name)}"


CASES: tuple[LdifCase, ...] = (
    LdifCase("missing mail", entry("no-mail", mail=None), _dn("no-mail"), "MISSING_MAIL"),
    LdifCase("mail that is not an address", entry("bad-mail", mail="mail: jean.dupont(at)culture.gouv.fr"),
             _dn("bad-mail"), "INVALID_EMAIL"),
    LdifCase("mail with a space inside", entry("spaced-mail", mail="mail: jean dupont@culture.gouv.fr"),
             _dn("spaced-mail"), "INVALID_EMAIL"),
    LdifCase("mail with two @", entry("two-at", mail="mail: a@b@culture.gouv.fr"), _dn("two-at"), "INVALID_EMAIL"),
    LdifCase("broken base64 value", entry("bad-b64", display="displayName:: ###not base64###"), _dn("bad-b64"),
             "LDIF_BAD_BASE64"),
    LdifCase("attribute outside the schema", entry("unknown-attr", extra="favouriteColour: blue"),
             _dn("unknown-attr"), "UNKNOWN_ATTRIBUTE"),
    LdifCase("value by URL reference", entry("url-value", extra="jpegPhoto:< file:///etc/passwd"),
             _dn("url-value"), "LDIF_URL_VALUE"),
    LdifCase("change record in an export", f"dn: {_dn('changed')}\nchangetype: modify\nreplace: mail\n"
                                            "mail: x@culture.gouv.fr\n-\n\n", _dn("changed"), "LDIF_CHANGE_RECORD"),
    LdifCase("no objectGUID", entry("no-guid").replace(f"objectGUID:: {_b64(guid('no-guid').bytes_le)}\n", ""),
             _dn("no-guid"), "MISSING_ANCHOR"),
    LdifCase("objectGUID of the wrong length", entry("short-guid").replace(
        f"objectGUID:: {_b64(guid('short-guid').bytes_le)}", f"objectGUID:: {_b64(b'short')}"),
        _dn("short-guid"), "MISSING_ANCHOR"),
    LdifCase("a value that is not UTF-8", entry("latin1", display=f"displayName:: {_b64('Hélène'.encode('latin-1'))}"),
             _dn("latin1"), "LDIF_BAD_ENCODING"),
    LdifCase("an invalid attribute name", entry("bad-name", extra="bad name: value"), _dn("bad-name"),
             "UNKNOWN_ATTRIBUTE"),
    LdifCase("a line that is not name: value", entry("no-colon", extra="this line has no colon"),
             _dn("no-colon"), "LDIF_MALFORMED"),
    LdifCase("NUL in the display name", entry("nul-name", display="displayName:: " + _b64("Agent\x00 Nul")),
             _anchor("nul-name"), "CONTROL_CHARACTERS", loaded=True),
    LdifCase("escape sequence in the given name", entry("esc-name", extra="givenName:: " + _b64("Jo\x1b[31mël")),
             _anchor("esc-name"), "CONTROL_CHARACTERS", loaded=True),
    LdifCase("department longer than its column", entry("long-dept", department="D" * 900),
             _anchor("long-dept"), "VALUE_TRUNCATED", loaded=True),
    LdifCase("display name longer than its column", entry("long-name", display="displayName: " + "N" * 700),
             _anchor("long-name"), "VALUE_TRUNCATED", loaded=True),
    LdifCase("two entries with one objectGUID", entry("twin-b", guid_of="twin-a"),
             f"{_anchor('twin-a')}#duplicate", "DUPLICATE_SOURCE_ID"),
    LdifCase("an alias that is not an address", entry("bad-alias", extra="proxyAddresses: smtp:not-an-address"),
             f"{_dn('bad-alias')}#alias:not-an-address", "INVALID_EMAIL", loaded=True),
)


def export() -> str:
    """The export: good people around every bad kind (the twin's first entry is good too)."""
    good = [entry(f"good-{index}") for index in range(GOOD_PEOPLE)]
    return "version: 1\n\n" + good[0] + entry("twin-a") + "".join(case.text for case in CASES) + "".join(good[1:])
