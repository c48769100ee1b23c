"""Validate sandbox responses against the vendors' OpenAPI 3.0 documents in tests/specs (vendored).

Deviations the contract notes document (Zoom user type 4, Webex boolean flags, …) are passed explicitly by the
test as `allow`: predicates over validation errors. Nothing is ignored silently.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SPECS = Path(__file__).resolve().parents[1] / "specs"
Allowance = Callable[[ValidationError], bool]


def _pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


class OpenApiSpec:
    """One OpenAPI document, loaded once per test session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._uri = f"urn:spec:{path.name}"
        self._registry: Registry[Any] = Registry().with_resource(
            self._uri, Resource.from_contents(self.document, default_specification=DRAFT4))

    def response_schema(self, method: str, path: str, status: str = "200") -> dict[str, Any]:
        """The schema of a documented response (first JSON media type), as a reference into the document."""
        operation = self.document["paths"][path][method.lower()]
        response = operation["responses"][status]
        if "$ref" in response:
            response = self._resolve(response["$ref"])
        content = response.get("content", {})
        media = next((m for m in content if "json" in m), None)
        if media is None:
            raise KeyError(f"{method} {path} {status}: no JSON body documented")
        return {"$ref": f"{self._uri}#/" + _pointer("paths", path, method.lower(), "responses", status, "content",
                                                     media, "schema")}

    def _resolve(self, ref: str) -> dict[str, Any]:
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def errors(self, method: str, path: str, body: Any, status: str = "200") -> list[ValidationError]:
        validator = OAS30Validator(self.response_schema(method, path, status), registry=self._registry)
        return sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))

    def validate(self, method: str, path: str, body: Any, *, status: str = "200",
                 allow: Iterable[Allowance] = ()) -> list[ValidationError]:
        """Raise AssertionError on any error not covered by `allow`; return the allowed ones (so tests can
        check that a documented deviation really occurred)."""
        allowances = list(allow)
        allowed, rejected = [], []
        for error in self.errors(method, path, body, status):
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


def at(*path: str | int) -> Allowance:
    """Allow errors at this instance path; '*' matches any one segment (an array index, a key)."""
    def rule(error: ValidationError) -> bool:
        actual = list(error.absolute_path)
        return len(actual) == len(path) and all(p == "*" or p == a for p, a in zip(path, actual, strict=True))
    return rule
