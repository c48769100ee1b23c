"""Validate sandbox Graph responses against the official Microsoft Graph v1.0 metadata (CSDL) in tests/specs.

The CSDL is parsed once per session with xml.etree: entity and complex types (with their BaseType chain),
properties (`Type`, `Collection(...)`, `Nullable`), navigation properties and enum members. `check` walks a JSON
value against a type and reports every property name the type does not declare and every JSON value whose type
does not match the declared Edm type:

    Edm.String / Guid / DateTimeOffset / Date / TimeOfDay / Duration / Binary → string (Guid, DateTimeOffset
    and Date must also parse) · Int16/32/64, Byte, SByte → integer · Boolean → boolean · Double, Single, Decimal
    → number · an enum → one of its members (comma-separated members for IsFlags enums) · Nullable="false" → not
    null · a complex or entity type → an object (its `@odata.type` may name a derived type).

Instance annotations (`@odata.*`, `name@odata.*`) are allowed. OpenType="true" on user and event would allow
dynamic properties in OData; bascule's contracts never rely on one, so unknown names are reported anyway. A
documented deviation is passed explicitly by the test as `allow` (predicates over issues), never ignored silently.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parents[1] / "specs" / "graph-v1.0.csdl.xml"
_EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_STRINGS = {"Edm.String", "Edm.Guid", "Edm.DateTimeOffset", "Edm.Date", "Edm.TimeOfDay", "Edm.Duration",
            "Edm.Binary"}
_INTEGERS = {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte", "Edm.SByte"}
_NUMBERS = {"Edm.Double", "Edm.Single", "Edm.Decimal"}


@dataclass(frozen=True, slots=True)
class Property:
    """One declared property: its element type, whether it is a collection, whether null is allowed."""

    name: str
    type: str
    collection: bool
    nullable: bool


@dataclass(slots=True)
class StructuredType:
    """An EntityType or ComplexType with its own properties (inherited ones come from `base`)."""

    name: str
    base: str | None
    properties: dict[str, Property] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnumType:
    name: str
    members: frozenset[str]
    flags: bool


@dataclass(frozen=True, slots=True)
class Issue:
    """One disagreement between a JSON value and the CSDL, at a JSON path such as `value/3/start/dateTime`."""

    path: str
    kind: str          # "unknown-property" · "type" · "null" · "enum"
    message: str


Allowance = Callable[[Issue], bool]


class Csdl:
    """The types of the Graph metadata, by qualified name (`microsoft.graph.user`) and alias (`graph.user`)."""

    def __init__(self, path: Path = SPEC) -> None:
        self.path = path
        self.types: dict[str, StructuredType] = {}
        self.enums: dict[str, EnumType] = {}
        root = ET.parse(path).getroot()
        for schema in root.iter(f"{_EDM}Schema"):
            names = [schema.attrib["Namespace"]] + ([schema.attrib["Alias"]] if "Alias" in schema.attrib else [])
            for element in schema:
                tag = element.tag.removeprefix(_EDM)
                if tag in ("EntityType", "ComplexType"):
                    structured = self._structured(element, names)
                    for prefix in names:
                        self.types[f"{prefix}.{structured.name}"] = structured
                elif tag == "EnumType":
                    members = frozenset(m.attrib["Name"] for m in element.iter(f"{_EDM}Member"))
                    enum = EnumType(element.attrib["Name"], members, element.attrib.get("IsFlags") == "true")
                    for prefix in names:
                        self.enums[f"{prefix}.{enum.name}"] = enum
        self._aliases = {schema.attrib["Alias"]: schema.attrib["Namespace"]
                         for schema in root.iter(f"{_EDM}Schema") if "Alias" in schema.attrib}

    @staticmethod
    def _structured(element: ET.Element, names: list[str]) -> StructuredType:
        structured = StructuredType(element.attrib["Name"], element.attrib.get("BaseType"))
        for child in element:
            tag = child.tag.removeprefix(_EDM)
            if tag not in ("Property", "NavigationProperty"):
                continue
            declared = child.attrib["Type"]
            collection = declared.startswith("Collection(")
            inner = declared[len("Collection("):-1] if collection else declared
            nullable = child.attrib.get("Nullable", "true") != "false"
            structured.properties[child.attrib["Name"]] = Property(child.attrib["Name"], inner, collection, nullable)
        return structured

    def structured(self, name: str) -> StructuredType:
        return self.types[_qualified(name)]

    def properties(self, name: str) -> dict[str, Property]:
        """Every property of a type, inherited ones included."""
        found: dict[str, Property] = {}
        current: str | None = _qualified(name)
        while current is not None:
            structured = self.types[current]
            for key, value in structured.properties.items():
                found.setdefault(key, value)
            current = _qualified(structured.base) if structured.base else None
        return found

    def check(self, value: Any, type_name: str, *, path: str = "") -> list[Issue]:
        """Every issue of `value` read as an instance of `type_name` (an entity, complex, enum or Edm type)."""
        issues: list[Issue] = []
        self._check(value, _qualified(type_name), path, issues)
        return issues

    def check_collection(self, body: Any, type_name: str) -> list[Issue]:
        """A collection response (`{"value": [...], "@odata.nextLink": ...}`): each element, plus the envelope."""
        issues: list[Issue] = []
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            return [Issue("", "type", "a collection response is an object with a `value` array")]
        for key in body:
            if key != "value" and not _annotation(key):
                issues.append(Issue(key, "unknown-property", f"unexpected member {key!r} in a collection response"))
        for index, item in enumerate(body["value"]):
            issues.extend(self.check(item, type_name, path=f"value/{index}"))
        return issues

    def _check(self, value: Any, type_name: str, path: str, issues: list[Issue]) -> None:
        if type_name in self.types:
            self._check_structured(value, type_name, path, issues)
        elif type_name in self.enums:
            enum = self.enums[type_name]
            members = value.split(",") if isinstance(value, str) and enum.flags else [value]
            if not isinstance(value, str) or any(member.strip() not in enum.members for member in members):
                issues.append(Issue(path, "enum", f"{value!r} is not a member of {enum.name}"))
        else:
            message = _edm_mismatch(value, type_name)
            if message:
                issues.append(Issue(path, "type", message))

    def _check_structured(self, value: Any, type_name: str, path: str, issues: list[Issue]) -> None:
        if not isinstance(value, dict):
            issues.append(Issue(path, "type", f"expected an object ({type_name}), got {type(value).__name__}"))
            return
        declared_type = value.get("@odata.type")
        if isinstance(declared_type, str) and _qualified(declared_type.lstrip("#")) in self.types:
            type_name = _qualified(declared_type.lstrip("#"))
        properties = self.properties(type_name)
        for key, item in value.items():
            if _annotation(key):
                continue
            where = f"{path}/{key}" if path else key
            prop = properties.get(key)
            if prop is None:
                issues.append(Issue(where, "unknown-property", f"{type_name} declares no property {key!r}"))
                continue
            if item is None:
                if not prop.nullable:
                    issues.append(Issue(where, "null", f"{type_name}.{key} is Nullable=false"))
                continue
            element_type = _qualified(prop.type)
            if prop.collection:
                if not isinstance(item, list):
                    issues.append(Issue(where, "type", f"{type_name}.{key} is a collection, got "
                                                       f"{type(item).__name__}"))
                    continue
                for index, element in enumerate(item):
                    if element is None:
                        if not prop.nullable:
                            issues.append(Issue(f"{where}/{index}", "null", f"{type_name}.{key} has a null element"))
                        continue
                    self._check(element, element_type, f"{where}/{index}", issues)
            else:
                self._check(item, element_type, where, issues)


def _qualified(name: str) -> str:
    if name.startswith("Edm."):
        return name
    head, _, rest = name.partition(".")
    aliases = {"graph": "microsoft.graph", "self": "microsoft.graph.security"}
    return f"{aliases[head]}.{rest}" if head in aliases else name


def _annotation(key: str) -> bool:
    return key.startswith("@") or "@" in key


def _edm_mismatch(value: Any, edm: str) -> str | None:
    if edm in _STRINGS:
        if not isinstance(value, str):
            return f"{edm} must be a string, got {type(value).__name__}"
        if edm == "Edm.Guid" and not _GUID.match(value):
            return f"{value!r} is not an Edm.Guid"
        if edm == "Edm.DateTimeOffset":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return f"{value!r} is not an Edm.DateTimeOffset"
        if edm == "Edm.Date":
            try:
                date.fromisoformat(value)
            except ValueError:
                return f"{value!r} is not an Edm.Date"
        return None
    if edm in _INTEGERS:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{edm} must be an integer"
    if edm == "Edm.Boolean":
        return None if isinstance(value, bool) else f"{edm} must be a boolean, got {type(value).__name__}"
    if edm in _NUMBERS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"{edm} must be a number"
    if edm in ("Edm.Stream", "Edm.Untyped"):
        return None
    return f"unknown type {edm}"


@functools.cache
def graph() -> Csdl:
    """The Graph v1.0 metadata, parsed once per test session."""
    return Csdl()


def validate(issues: Iterable[Issue], *, allow: Iterable[Allowance] = (), what: str = "") -> list[Issue]:
    """Raise AssertionError on any issue not covered by `allow`; return the allowed ones (so a test can check
    that a documented deviation really occurred)."""
    allowances = list(allow)
    allowed: list[Issue] = []
    rejected: list[Issue] = []
    for issue in issues:
        (allowed if any(rule(issue) for rule in allowances) else rejected).append(issue)
    if rejected:
        lines = [f"{issue.path or '(root)'}: {issue.message}" for issue in rejected[:20]]
        raise AssertionError(f"{what or 'response'}: {len(rejected)} issue(s) against the Graph CSDL\n"
                             + "\n".join(lines))
    return allowed


def at(*path: str) -> Allowance:
    """Allow issues at this JSON path; '*' matches any one segment (an array index, a key)."""
    def rule(issue: Issue) -> bool:
        actual = issue.path.split("/") if issue.path else []
        return len(actual) == len(path) and all(p == "*" or p == a for p, a in zip(path, actual, strict=True))
    return rule
