"""The directory export: LDIF (RFC 2849) in Active Directory or OpenLDAP/SupAnn flavour."""

from __future__ import annotations

import base64
import io
import random
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import BinaryIO

import ldif
from ldap3.utils.dn import escape_rdn

from sandbox.generator import names
from sandbox.generator.identities import Agent, Trait, between, pick

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
Attributes = dict[str, Sequence[str | bytes]]
AD_NEVER_EXPIRES = "9223372036854775807"


class Flavour(StrEnum):
    """Which directory the export comes from."""

    AD = "ad"
    SUPANN = "supann"


def default_base_dn(flavour: Flavour) -> str:
    return "DC=ad,DC=culture,DC=example,DC=local" if flavour is Flavour.AD else "dc=culture,dc=example,dc=gouv,dc=fr"


def filetime(moment: datetime) -> str:
    """AD FILETIME: 100-ns ticks since 1601-01-01 UTC."""
    delta = moment - _FILETIME_EPOCH
    return str((delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10)


class DirectoryWriter:
    """Writes entries one at a time; containers first so that a server can load the file in order."""

    def __init__(self, out: BinaryIO, *, flavour: Flavour, base_dn: str, siret: str, as_of: date) -> None:
        self._out = out
        self._buffer = io.BytesIO()  # LDIFWriter writes line by line; batching the writes halves their cost
        self._writer = ldif.LDIFWriter(self._buffer, cols=76)
        self.flavour = flavour
        self.base_dn = base_dn
        self._siret = siret
        self._as_of = datetime(as_of.year, as_of.month, as_of.day, 8, tzinfo=UTC)
        self.records = 0
        self.out_of_scope = 0
        ad_domain = ".".join(part.split("=", 1)[1] for part in base_dn.split(",") if part.upper().startswith("DC="))
        self._upn_suffix = ad_domain or "ad.example.local"
        out.write(b"version: 1\n\n")

    # ------------------------------------------------------------------------------------------ containers

    def write_containers(self) -> None:
        """The base entry and the organisational units people live under."""
        self._container(self.base_dn)
        if self.flavour is Flavour.AD:
            users = f"OU=Utilisateurs,{self.base_dn}"
            self._container(users)
            self._container(f"OU=Ordinateurs,{self.base_dn}")
            for code, _label, sous_directions in names.DIRECTIONS:
                self._container(f"OU={code},{users}")
                for sd in sous_directions:
                    for bureau in range(1, names.BUREAU_COUNT + 1):
                        self._container(f"OU={sd}-B{bureau},OU={code},{users}")
        else:
            self._container(f"ou=people,{self.base_dn}")
            structures = f"ou=structures,{self.base_dn}"
            self._container(structures)
            for code, label, sous_directions in names.DIRECTIONS:
                self._entity(structures, code, label)
                for sd in sous_directions:
                    for bureau in range(1, names.BUREAU_COUNT + 1):
                        self._entity(structures, f"{code}-{sd}-B{bureau}", f"{label}, {sd}, bureau {bureau}")

    def _container(self, dn: str) -> None:
        rdn_type, _, rdn_value = dn.split(",", 1)[0].partition("=")
        kind = rdn_type.lower()
        record: Attributes
        if kind == "dc":
            record = {"objectClass": ["top", "domain"], "dc": [rdn_value]}
        elif kind == "o":
            record = {"objectClass": ["top", "organization"], "o": [rdn_value]}
        else:
            record = {"objectClass": ["top", "organizationalUnit"], "ou": [rdn_value]}
        self._write(dn, record, in_scope=False)

    def _entity(self, structures: str, code: str, label: str) -> None:
        self._write(f"supannCodeEntite={code},{structures}",
                    {"objectClass": ["top", "organizationalUnit", "supannEntite"], "ou": [label],
                     "supannCodeEntite": [code], "description": [label]}, in_scope=False)

    def write_computer(self, index: int, rng: random.Random) -> None:
        """AD computers are objectClass=user too; only objectCategory tells them apart."""
        name = f"PC-{index:06d}"
        self._write(f"CN={name},OU=Ordinateurs,{self.base_dn}", {
            "objectClass": ["top", "person", "organizationalPerson", "user", "computer"],
            "cn": [name], "sAMAccountName": [f"{name}$"],
            "objectCategory": [f"CN=Computer,CN=Schema,CN=Configuration,{self.base_dn}"],
            "userAccountControl": ["4096"],
            "objectGUID": [uuid.UUID(int=rng.getrandbits(128), version=4).bytes_le],
        }, in_scope=False)

    # ------------------------------------------------------------------------------------------ people

    def write_person(self, agent: Agent, rng: random.Random, *, mail: str | None, aliases: Iterable[str]) -> str:
        """Write one person entry; returns its DN."""
        aliases = list(aliases)
        if self.flavour is Flavour.AD:
            dn, record = self._ad_person(agent, rng, mail, aliases)
        else:
            dn, record = self._supann_person(agent, rng, mail, aliases)
        if rng.random() < 0.05:
            record["description"] = [f"{agent.title} chargé(e) de la migration des outils de visioconférence "
                                     f"vers Visio, {agent.direction[1]}, bureau {agent.bureau}"]
        if agent.trait is Trait.UNKNOWN_ATTRIBUTE:
            record["courrielPro"] = [mail or agent.mail]
        if agent.trait is Trait.BROKEN_BASE64:
            record["description"] = ["Réf. à vérifier"]
            self._write(dn, record, in_scope=True, corrupt="description")
        else:
            self._write(dn, record, in_scope=True)
        return dn

    def _ad_person(self, agent: Agent, rng: random.Random, mail: str | None,
                   aliases: list[str]) -> tuple[str, Attributes]:
        code, label = agent.direction
        dn = (f"CN={escape_rdn(agent.cn)},OU={agent.sous_direction}-B{agent.bureau},OU={code},"
              f"OU=Utilisateurs,{self.base_dn}")
        uac = (66050 if rng.random() < 0.3 else 514) if agent.disabled else (66048 if rng.random() < 0.3 else 512)
        last_logon = ("0" if rng.random() < 0.04
                      else filetime(self._as_of - timedelta(days=between(rng, 0, 120), minutes=between(rng, 0, 600))))
        record: Attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "cn": [agent.cn], "sn": [agent.surname], "givenName": [agent.given], "displayName": [agent.display],
            "sAMAccountName": [agent.login], "userPrincipalName": [f"{agent.login}@{self._upn_suffix}"],
        }
        if mail is not None:
            record["mail"] = [mail]
            proxies = [f"SMTP:{mail}"] + [f"smtp:{alias}" for alias in aliases]
            proxies.append(f"X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
                           f"/cn=Recipients/cn={agent.anchor.hex[:32]}-{agent.login}")
            if rng.random() < 0.3:
                proxies.append(f"SIP:{mail}")
            record["proxyAddresses"] = proxies
        record |= {
            "employeeID": [agent.employee_id], "employeeType": [agent.population],
            "department": [agent.department_path], "company": [label], "title": [agent.title],
            "physicalDeliveryOfficeName": [pick(rng, ("Paris - Valois", "Paris - Bons-Enfants", "Pierrefitte",
                                                       "Rennes", "Saint-Denis de La Réunion"))],
            "telephoneNumber": [f"+33 1 40 15 {between(rng, 10, 99)} {between(rng, 10, 99)}"],
            "userAccountControl": [str(uac)], "lastLogonTimestamp": [last_logon],
            "accountExpires": [AD_NEVER_EXPIRES if rng.random() < 0.9 else "0"],
            "objectGUID": [agent.anchor.bytes_le],
            "objectCategory": [f"CN=Person,CN=Schema,CN=Configuration,{self.base_dn}"],
            "whenCreated": [(self._as_of - timedelta(days=between(rng, 30, 4000))).strftime("%Y%m%d%H%M%S.0Z")],
        }
        return dn, record

    def _supann_person(self, agent: Agent, rng: random.Random, mail: str | None,
                       aliases: list[str]) -> tuple[str, Attributes]:
        code, label = agent.direction
        dn = f"uid={agent.login},ou=people,{self.base_dn}"
        affiliation = "affiliate" if agent.population in ("prestataire", "partenaire") else (
            "student" if agent.population == "stagiaire" else "staff")
        record: Attributes = {
            "objectClass": ["top", "person", "organizationalPerson", "inetOrgPerson", "eduPerson", "supannPerson"],
            "uid": [agent.login], "cn": [agent.display], "sn": [agent.surname], "givenName": [agent.given],
            "displayName": [agent.display],
        }
        if mail is not None:
            record["mail"] = [mail]
        if aliases:
            record["mailAlternateAddress"] = list(aliases)
        record |= {
            "employeeNumber": [agent.employee_id], "supannEmpId": [agent.employee_id],
            "supannEntiteAffectation": [agent.department_code, f"{code}-{agent.sous_direction}"],
            "supannEntiteAffectationPrincipale": [agent.department_code],
            "supannEtablissement": [f"{{SIRET}}{self._siret}"],
            "ou": [label], "departmentNumber": [agent.department_code], "title": [agent.title],
            "telephoneNumber": [f"+33 1 40 15 {between(rng, 10, 99)} {between(rng, 10, 99)}"],
            "eduPersonAffiliation": ["member", affiliation],
            "eduPersonPrimaryAffiliation": [affiliation],
            # Looks like an address and is not a mailbox: never a match key.
            "eduPersonPrincipalName": [f"{agent.login}@ent.{(mail or agent.mail).rpartition('@')[2]}"],
            "employeeType": [agent.population],
            "supannRessourceEtat": ["{COMPTE}I" if agent.disabled else "{COMPTE}A"],
            "entryUUID": [str(agent.anchor)],
        }
        return dn, record

    # ------------------------------------------------------------------------------------------ output

    def _write(self, dn: str, record: Attributes, *, in_scope: bool,
               corrupt: str | None = None) -> None:
        self.records += 1
        if not in_scope:
            self.out_of_scope += 1
        if corrupt is None:
            self._writer.unparse(dn, record)
            if self._buffer.tell() > 1 << 20:
                self.flush()
            return
        self.flush()
        buffer = io.BytesIO()
        ldif.LDIFWriter(buffer, cols=76).unparse(dn, record)
        lines = buffer.getvalue().split(b"\n")
        prefix = f"{corrupt}:: ".encode()
        for position, line in enumerate(lines):
            if line.startswith(prefix):
                encoded = line[len(prefix):]
                while len(encoded) % 4 != 1:  # a length no base64 decoder accepts
                    encoded = encoded[:-1]
                lines[position] = prefix + encoded
                break
        else:
            raise AssertionError(f"{corrupt} was not written as base64")
        self._out.write(b"\n".join(lines))

    def flush(self) -> None:
        """Hand buffered records to the file (call once more after the last record)."""
        self._out.write(self._buffer.getbuffer())
        self._buffer.seek(0)
        self._buffer.truncate()


def b64(value: bytes) -> str:
    """Standard base64 text (Entra's onPremisesImmutableId form of an objectGUID)."""
    return base64.b64encode(value).decode("ascii")
