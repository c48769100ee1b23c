"""E-mail addresses and mail domains as match keys: trimmed, NFC, case-folded local part, IDNA domain.

A domain has one normal form wherever it is compared (an address's domain, a tenant's domains, the identity
providers' routing table): ASCII (IDNA 2008 with UTS #46 mapping) in lower case, without the trailing dot, so that
`défense.gouv.fr`, `DÉFENSE.gouv.fr` and `xn--dfense-bva.gouv.fr` are one domain.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

import idna

# RFC 5322 dot-atom characters; Unicode letters are allowed too (RFC 6531 addresses exist in directories).
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LOCAL_RE = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_MAX_LOCAL = 64
_MAX_ADDRESS = 254
_MAX_DOMAIN = 253


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """A syntactically valid address in its normal form."""

    local: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class InvalidEmail:
    """A value that is not an e-mail address, and why."""

    raw: str
    reason: str


def parse_email(raw: str) -> EmailAddress | InvalidEmail:
    """Normalise `raw` (trim, NFC, lower-case, IDNA domain) or say why it is not an address."""
    text = unicodedata.normalize("NFC", raw).strip()
    if not text:
        return InvalidEmail(raw, "empty")
    if any(ch.isspace() for ch in text):
        return InvalidEmail(raw, "whitespace inside the address")
    local, sep, domain = text.rpartition("@")
    if not sep or not local:
        return InvalidEmail(raw, "no local part or no @")
    if "@" in local:
        return InvalidEmail(raw, "more than one @")
    if len(local) > _MAX_LOCAL or not _LOCAL_RE.match(local):
        return InvalidEmail(raw, "invalid local part")
    ascii_domain = normalise_domain(domain)
    if ascii_domain is None:
        return InvalidEmail(raw, "invalid domain")
    address = EmailAddress(local.casefold(), ascii_domain)
    if len(str(address)) > _MAX_ADDRESS:
        return InvalidEmail(raw, "address too long")
    return address


def normalise_email(raw: str) -> str | None:
    """The normal form of `raw` as text, or None when it is not an address (for keys and lookups)."""
    parsed = parse_email(raw)
    return str(parsed) if isinstance(parsed, EmailAddress) else None


def normalise_domain(text: str) -> str | None:
    """The normal form of a mail domain (ASCII IDNA, lower case, no trailing dot), or None when `text` is not one.
    Every comparison of domains goes through it: addresses (parse_email), tenant domains, identity routing."""
    plain = unicodedata.normalize("NFC", text).strip()
    if not plain or any(ch.isspace() or ch == "@" for ch in plain):
        return None
    ascii_domain = _ascii_domain(plain)
    return ascii_domain if ascii_domain is not None and len(ascii_domain) <= _MAX_DOMAIN else None


_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@functools.lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str | None:
    """The domain in ASCII (IDNA) lower case, or None. Cached: a ministry has few domains, IDNA is slow."""
    plain = domain.rstrip(".").lower()
    if plain.isascii() and "xn--" not in plain:
        labels = plain.split(".")
        if len(labels) < 2 or not all(_LDH_LABEL.match(label) for label in labels):
            return None
        top = labels[-1]
        return plain if top.isalpha() and len(top) >= 2 else None
    labels = domain.rstrip(".").split(".")
    if len(labels) < 2 or any(not label for label in labels):
        return None
    try:
        encoded = idna.encode(domain.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return None
    top = encoded.rsplit(".", 1)[-1]
    if not (top.isalpha() or top.startswith("xn--")) or len(top) < 2:
        return None
    return encoded.lower()
