"""Validate sandbox responses against the vendors' OpenAPI 3.0 documents in tests/specs (vendored).

Two checks, both on by default:

- the schema itself (types, enums, required members, formats), with OAS30Validator;
- strict members: OpenAPI objects accept undeclared properties unless told otherwise, so a field the real service
  never sends would pass. Every property of every object in the body must be declared by a schema that applies
  to that object: the schema at that place, the branches of its `allOf`, and the branches of its `oneOf`/`anyOf`
  the object validates against (if none does, the schema check already fails and every branch counts). An
  applicable `additionalProperties: true` or schema allows any name (values are walked through that schema). An
  object whose applicable schemas declare neither `properties` nor `additionalProperties` (`{}`,
  `{"type": "object"}`) is OpenAPI's free-form object: its contents are not described, so none is refused.

Deviations the contract notes document are passed explicitly by the test as `allow`, nothing is ignored silently:
`at(...)` allows a schema error (Zoom user type 4, Webex boolean flags, …) and `undeclared(...)` allows one
undeclared property, by name. The same Graph check is tests/support/csdl.py.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parents[1] / "specs"
UNDECLARED = "undeclared"  # the `validator` of a strict-members finding
Allowance = Callable[[ValidationError], bool]


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


class OpenApiSpec:
    """One OpenAPI document, loaded once per test session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._uri = f"urn:spec:{path.name}"
        self._registry: Registry[Any] = Registry().with_resource(
            self._uri, Resource.from_contents(self.document, default_specification=DRAFT4))
        self._validators: dict[str, OAS30Validator] = {}

    def response_schema(self, method: str, path: str, status: str = "200") -> dict[str, Any]:
        """The schema of a documented response (first JSON media type), as a reference into the document."""
        return {"$ref": f"{self._uri}#{self._response_pointer(method, path, status)}"}

    def _response_pointer(self, method: str, path: str, status: str) -> str:
        operation = self.document["paths"][path][method.lower()]
        response = operation["responses"][status]
        where = "/" + _pointer("paths", path, method.lower(), "responses", status)
        if "$ref" in response:
            where = self._local(response["$ref"])
            response = self._node(where)
        content = response.get("content", {})
        media = next((m for m in content if "json" in m), None)
        if media is None:
            raise KeyError(f"{method} {path} {status}: no JSON body documented")
        return f"{where}/{_pointer('content', media, 'schema')}"

    def _local(self, ref: str) -> str:
        """A `$ref` of this document (`#/…` or `urn:spec:<file>#/…`) as a JSON pointer into it."""
        base, _, fragment = ref.partition("#")
        if base not in ("", self._uri):
            raise ValueError(f"{self.path.name}: external reference {ref!r} is not supported")
        return fragment

    def _node(self, pointer: str) -> Any:
        node: Any = self.document
        for part in pointer.split("/")[1:]:
            node = node[int(part)] if isinstance(node, list) else node[_unescape(part)]
        return node

    def _deref(self, pointer: str) -> str:
        seen: set[str] = set()
        node = self._node(pointer)
        while isinstance(node, dict) and "$ref" in node:  # OpenAPI 3.0: members beside a $ref are ignored
            if pointer in seen:
                raise ValueError(f"{self.path.name}: reference cycle at {pointer}")
            seen.add(pointer)
            pointer = self._local(node["$ref"])
            node = self._node(pointer)
        return pointer

    def _validator(self, pointer: str) -> OAS30Validator:
        if pointer not in self._validators:
            self._validators[pointer] = OAS30Validator({"$ref": f"{self._uri}#{pointer}"}, registry=self._registry)
        return self._validators[pointer]

    def errors(self, method: str, path: str, body: Any, status: str = "200", *,
               strict: bool = True) -> list[ValidationError]:
        """Schema errors, then (strict) one `undeclared` error per property no applicable schema declares."""
        pointer = self._response_pointer(method, path, status)
        found = sorted(self._validator(pointer).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path])
        if strict:
            found += self.undeclared(pointer, body)
        return found

    def undeclared(self, pointer: str, instance: Any) -> list[ValidationError]:
        """Every property of `instance` (walked recursively) that the schema at `pointer` does not declare."""
        found: dict[tuple[str | int, ...], ValidationError] = {}
        self._walk(pointer, instance, (), found)
        return [found[key] for key in sorted(found, key=lambda key: [str(part) for part in key])]

    def _applicable(self, pointer: str, instance: Any) -> list[str]:
        """The schema at `pointer` and every composed branch that applies to `instance`, dereferenced."""
        pointer = self._deref(pointer)
        node = self._node(pointer)
        found = [pointer]
        if not isinstance(node, dict):
            return found
        for index in range(len(node.get("allOf", []))):
            found += self._applicable(f"{pointer}/allOf/{index}", instance)
        for keyword in ("oneOf", "anyOf"):
            branches = [f"{pointer}/{keyword}/{index}" for index in range(len(node.get(keyword, [])))]
            matching = [branch for branch in branches if self._validator(branch).is_valid(instance)]
            for branch in matching or branches:
                found += self._applicable(branch, instance)
        return found

    def _walk(self, pointer: str, instance: Any, where: tuple[str | int, ...],
              found: dict[tuple[str | int, ...], ValidationError]) -> None:
        if isinstance(instance, dict):
            schemas = [(p, self._node(p)) for p in self._applicable(pointer, instance)]
            schemas = [(p, node) for p, node in schemas if isinstance(node, dict)]
            declared: dict[str, list[str]] = {}
            extra_schemas: list[str] = []
            any_name = False
            for schema_pointer, node in schemas:
                for name in node.get("properties", {}):
                    declared.setdefault(name, []).append(f"{schema_pointer}/properties/{_pointer(name)}")
                extra = node.get("additionalProperties")
                if extra is True:
                    any_name = True
                elif isinstance(extra, dict):
                    extra_schemas.append(f"{schema_pointer}/additionalProperties")
            free_form = not declared and not any("additionalProperties" in node for _, node in schemas)
            for name, value in instance.items():
                inner = declared.get(name) or extra_schemas
                for inner_pointer in inner:
                    self._walk(inner_pointer, value, (*where, name), found)
                if not inner and not any_name and not free_form:
                    found[(*where, name)] = ValidationError(
                        f"{name!r} is not declared by the schema", validator=UNDECLARED,
                        path=deque((*where, name)), instance=value, schema_path=deque(schemas[0][0].split("/")[1:]))
        elif isinstance(instance, list):
            for schema_pointer in self._applicable(pointer, instance):
                node = self._node(schema_pointer)
                if isinstance(node, dict) and isinstance(node.get("items"), dict):
                    for index, item in enumerate(instance):
                        self._walk(f"{schema_pointer}/items", item, (*where, index), found)

    def validate(self, method: str, path: str, body: Any, *, status: str = "200",
                 allow: Iterable[Allowance] = (), strict: bool = True) -> list[ValidationError]:
        """Raise AssertionError on any error not covered by `allow`; return the allowed ones (so tests can
        check that a documented deviation really occurred)."""
        allowances = list(allow)
        allowed: list[ValidationError] = []
        rejected: list[ValidationError] = []
        for error in self.errors(method, path, body, status, strict=strict):
            (allowed if any(rule(error) for rule in allowances) else rejected).append(error)
        if rejected:
            lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}" for e in rejected[:20]]
            raise AssertionError(f"{self.path.name} {method.upper()} {path} {status}: {len(rejected)} error(s)\n"
                                 + "\n".join(lines))
        return allowed


@functools.cache
def spec(name: str) -> OpenApiSpec:
    """zoom-meeting-api, webex-meeting or webex-admin."""
    return OpenApiSpec(SPECS / f"{name}.openapi.json")


def _matches(pattern: tuple[str | int, ...], error: ValidationError) -> bool:
    actual = list(error.absolute_path)
    return len(actual) == len(pattern) and all(p == "*" or p == a for p, a in zip(pattern, actual, strict=True))


def at(*path: str | int) -> Allowance:
    """Allow schema errors (type, enum, format…) at this instance path; '*' matches any one segment (an array
    index, a key). Never allows an undeclared property: that takes `undeclared`."""
    def rule(error: ValidationError) -> bool:
        return error.validator != UNDECLARED and _matches(path, error)
    return rule


def undeclared(*path: str | int) -> Allowance:
    """Allow one property the schema does not declare, named by its path: the last segment is its name (never
    '*'); '*' may stand for any array index or key before it."""
    if not path or not isinstance(path[-1], str) or path[-1] == "*":
        raise ValueError("an undeclared property is allowed by its name")

    def rule(error: ValidationError) -> bool:
        return error.validator == UNDECLARED and _matches(path, error)
    return rule
