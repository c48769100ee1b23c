"""The OpenAPI check of tests/support/openapi.py is strict: it fails on a property no applicable schema declares
(at the top level, nested, in an array item, under `allOf`/`oneOf`), passes once that property is allowed by name,
and still lets `additionalProperties` and free-form objects through. Shown on a small document written for the test
and on the vendored Zoom spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.openapi import UNDECLARED, OpenApiSpec, at, spec, undeclared

INTEGER = {"type": "integer"}
THING = {"type": "object", "properties": {"id": {"type": "string"}, "tags": {"type": "array", "items": {
    "type": "object", "properties": {"label": {"type": "string"}}}}}}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.0", "info": {"title": "strict check", "version": "1"},
    "paths": {"/things": {"get": {"responses": {"200": {"description": "OK", "content": {"application/json": {
        "schema": {"type": "object", "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}},
            "meta": {"type": "object", "properties": {"count": {"type": "integer"}}},
            "composed": {"$ref": "#/components/schemas/Composed"},
            "choice": {"oneOf": [
                {"type": "object", "required": ["a"], "properties": {"a": INTEGER, "x": INTEGER}},
                {"type": "object", "required": ["b"], "properties": {"b": INTEGER, "y": INTEGER}},
            ]},
            "open": {"type": "object", "properties": {"known": {"type": "string"}}, "additionalProperties": True},
            "by_key": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"value": {"type": "integer"}}}},
            "free": {"type": "object", "description": "free-form: contents not described"},
            "count": {"type": "integer"},
        }}}}}}}}},
    "components": {"schemas": {
        "Thing": THING,
        "Named": {"type": "object", "properties": {"name": {"type": "string"}}},
        "Composed": {"allOf": [{"$ref": "#/components/schemas/Thing"}, {"$ref": "#/components/schemas/Named"},
                               {"type": "object", "properties": {"rank": {"type": "integer"}}}]},
    }},
}
VALID: dict[str, Any] = {
    "items": [{"id": "1", "tags": [{"label": "a"}]}, {"id": "2"}],
    "meta": {"count": 2},
    "composed": {"id": "3", "name": "n", "rank": 1, "tags": [{"label": "b"}]},
    "choice": {"a": 1, "x": 2},
    "open": {"known": "k", "anything": {"deep": [1]}},
    "by_key": {"k1": {"value": 1}, "k2": {"value": 2}},
    "free": {"whatever": {"nested": True}},
    "count": 2,
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> OpenApiSpec:
    path = tmp_path_factory.mktemp("openapi") / "small.openapi.json"
    path.write_text(json.dumps(DOCUMENT), encoding="utf-8")
    return OpenApiSpec(path)


def _with(body: dict[str, Any], path: tuple[str | int, ...], value: Any = "invented") -> dict[str, Any]:
    copy: Any = json.loads(json.dumps(body))
    node = copy
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return dict(copy)


def test_a_body_of_declared_properties_passes(small: OpenApiSpec) -> None:
    assert small.validate("get", "/things", VALID) == []


# (where the invented property is put, the allowance that names it)
PLACES = {
    "top level": (("invented",), ("invented",)),
    "nested object": (("meta", "invented"), ("meta", "invented")),
    "array item": (("items", 1, "invented"), ("items", "*", "invented")),
    "array in an array item": (("items", 0, "tags", 0, "invented"), ("items", "*", "tags", "*", "invented")),
    "allOf-composed schema": (("composed", "invented"), ("composed", "invented")),
    "array inside an allOf branch": (("composed", "tags", 0, "invented"), ("composed", "tags", "*", "invented")),
    "oneOf branch that applies": (("choice", "invented"), ("choice", "invented")),
    "additionalProperties schema": (("by_key", "k2", "invented"), ("by_key", "*", "invented")),
}


@pytest.mark.parametrize("place", list(PLACES))
def test_an_invented_property_fails_until_it_is_allowed_by_name(small: OpenApiSpec, place: str) -> None:
    where, name = PLACES[place]
    body = _with(VALID, where)
    shown = "/".join(map(str, where))
    with pytest.raises(AssertionError, match=f"{shown}: 'invented' is not declared by the schema"):
        small.validate("get", "/things", body)
    with pytest.raises(AssertionError, match="invented"):
        small.validate("get", "/things", body, allow=[at(*name)])  # a schema-error allowance is not a name
    with pytest.raises(AssertionError, match="invented"):
        small.validate("get", "/things", body, allow=[undeclared(*name[:-1], "other")])
    allowed = small.validate("get", "/things", body, allow=[undeclared(*name)])
    assert [(error.validator, list(error.absolute_path), error.instance) for error in allowed] == [
        (UNDECLARED, list(where), "invented")]
    assert small.validate("get", "/things", body, strict=False) == []  # what OpenAPI alone lets through


def test_every_allof_branch_declares_and_only_the_applicable_oneof_branch_does(small: OpenApiSpec) -> None:
    found = small.errors("get", "/things", _with(_with(VALID, ("composed", "name"), "n"), ("choice",),
                                                 {"a": 1, "y": 2}))
    assert [(e.validator, list(e.absolute_path)) for e in found] == [(UNDECLARED, ["choice", "y"])]
    other = small.errors("get", "/things", _with(VALID, ("choice",), {"b": 1, "y": 2}))
    assert other == []


def test_additional_properties_true_and_free_form_objects_take_any_name(small: OpenApiSpec) -> None:
    body = _with(_with(VALID, ("open", "more"), {"x": 1}), ("free", "more"), [{"y": 2}])
    assert small.errors("get", "/things", body) == []


def test_schema_errors_and_undeclared_properties_are_allowed_separately(small: OpenApiSpec) -> None:
    body = _with(_with(VALID, ("count",), "two"), ("invented",))
    with pytest.raises(AssertionError, match="count"):
        small.validate("get", "/things", body, allow=[undeclared("invented")])
    allowed = small.validate("get", "/things", body, allow=[undeclared("invented"), at("count")])
    assert sorted(str(error.validator) for error in allowed) == ["type", UNDECLARED]


@pytest.mark.parametrize("path", [(), ("items", "*"), ("meta", 0)])
def test_an_undeclared_property_is_allowed_by_its_name_only(path: tuple[str | int, ...]) -> None:
    with pytest.raises(ValueError, match="by its name"):
        undeclared(*path)


ZOOM_MEETING = {"id": 84120036571, "topic": "Comité", "type": 8, "timezone": "Europe/Paris",
                "recurrence": {"type": 2, "repeat_interval": 1, "weekly_days": "2", "end_times": 20},
                "occurrences": [{"occurrence_id": "1788768000000", "start_time": "2026-09-07T08:00:00Z",
                                 "duration": 60, "status": "available"}],
                "settings": {"waiting_room": True, "approval_type": 2, "alternative_hosts": ""}}


@pytest.mark.parametrize("where", [("invented",), ("settings", "invented"), ("occurrences", 0, "invented"),
                                   ("recurrence", "invented")])
def test_the_vendored_zoom_spec_is_checked_strictly(where: tuple[str | int, ...]) -> None:
    zoom = spec("zoom-meeting-api")
    assert zoom.validate("get", "/meetings/{meetingId}", ZOOM_MEETING) == []
    body = _with(ZOOM_MEETING, where, True)
    with pytest.raises(AssertionError, match="'invented' is not declared"):
        zoom.validate("get", "/meetings/{meetingId}", body)
    name = tuple("*" if isinstance(part, int) else part for part in where)
    assert len(zoom.validate("get", "/meetings/{meetingId}", body, allow=[undeclared(*name)])) == 1


def _undeclared(name: str, path: str, body: Any) -> list[list[str | int]]:
    return [list(e.absolute_path) for e in spec(name).errors("get", path, body) if e.validator == UNDECLARED]


def test_the_fields_the_sandbox_tests_allow_by_name_are_undeclared_exactly_there() -> None:
    """Each allowance of the sandbox tests is needed (the field is undeclared where it is allowed), and the walker
    reads the right schema (the same names pass where the spec declares them)."""
    invitees = {"settings": {"meeting_invitees": [{"email": "a@example.gouv.fr"}]}}
    assert _undeclared("zoom-meeting-api", "/meetings/{meetingId}", invitees) == [["settings", "meeting_invitees"]]
    assert _undeclared("zoom-meeting-api", "/users/{userId}", {"display_name": "A B"}) == [["display_name"]]
    assert _undeclared("zoom-meeting-api", "/webinars/{webinarId}", {"settings": {"waiting_room": True}}) == [
        ["settings", "waiting_room"]]
    flags = {"hasRegistration": True, "meetingSeriesId": "5c2e8f0a9b7d4e1fa3c6b2d1e0f9a8b7"}
    assert _undeclared("webex-meeting", "/meetings/{meetingId}", flags) == [["hasRegistration"], ["meetingSeriesId"]]
    assert _undeclared("webex-meeting", "/meetings", {"items": [flags]}) == []  # the list schema declares both
