"""The Meet sandbox against shared/contracts/visio-meet.md, field for field, over plain httpx on loopback.

Section 2 (the token endpoint: every row of its table in each encoding a version accepts — JSON and multipart as
release v1.27.0, form as main —, the encodings each version refuses, and the JWT it issues) and section 3 (rooms:
JSON only, shape, slug, access level, configuration and its pydantic error objects, url and Location, telephony,
pagination with `page=last`, retrieval by a UUID in any case, methods, slashes, Allow headers and the 401/403
answers). One sandbox serves the module; each test restores the switches and applications it changed and works
with hosts of its own, so the rooms it counts are its own.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sandbox.meet import (
    APPLICATION_SCOPES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_JWT_AUDIENCE,
    SANDBOX_JWT_SECRET,
    MeetApplication,
    MeetOptions,
    MeetState,
    encode_jwt,
    state_of,
)
from sandbox.server import SandboxConfig, SandboxServer

DOMAIN = "culture.example.gouv.fr"           # a ministry domain: allowed for the default application
ALIAS = "culture.example.fr"                 # the legacy alias domain: not allowed
UNROUTED = "operateurs-culture.example.fr"
TOKEN = "application/token/"
ROOMS = "rooms/"
GRANTED = "rooms:create rooms:list rooms:retrieve"
ROOM_KEYS = {"id", "name", "slug", "access_level", "configuration", "url", "telephony"}
SLUG = re.compile(r"^[a-z]{3}-[a-z]{4}-[a-z]{3}$")
# A second application (40-character id like Meet's): any domain, no rooms:create.
READER_ID = "bascule-sandbox-visio-application-000002"
READER_SECRET = "r" * 128


@pytest.fixture(scope="module")
def server(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    """Only Meet, with the default application and a reader application."""
    options = MeetOptions(applications=(
        MeetApplication(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
        MeetApplication(READER_ID, READER_SECRET, scopes=("rooms:list", "rooms:retrieve"), domains=())))
    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"meet"}), meet=options)
    with SandboxServer(config) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{server.url}/meet/external-api/v1.0/", follow_redirects=False) as http:
        yield http


@pytest.fixture
def meet(server: SandboxServer) -> Iterator[MeetState]:
    """The Meet state; switches and applications are put back after the test."""
    state = state_of(server.sandbox)
    options = state.options
    applications = [state.application(client_id) for client_id in (SANDBOX_CLIENT_ID, READER_ID)]
    yield state
    state.configure(**{item.name: getattr(options, item.name) for item in dataclasses.fields(options)})
    for application in applications:
        assert application is not None
        state.restore_application(application)


def new_host(state: MeetState, label: str = "hote", *, domain: str = DOMAIN) -> str:
    """A host of this test only: a logged-in Visio user with a fresh address."""
    email = f"{label}.{uuid.uuid4().hex[:10]}@{domain}"
    state.add_user(email, sub=uuid.uuid4().hex)
    return email


def unknown_address(label: str = "jamais.connecte", *, domain: str = DOMAIN) -> str:
    return f"{label}.{uuid.uuid4().hex[:10]}@{domain}"


def credentials(email: str, **changes: str | None) -> dict[str, str]:
    """The token request body; a change to None drops the field."""
    body: dict[str, str | None] = {"client_id": SANDBOX_CLIENT_ID, "client_secret": SANDBOX_CLIENT_SECRET,
                                   "grant_type": "client_credentials", "scope": email, **changes}
    return {name: value for name, value in body.items() if value is not None}


def ask_token(client: httpx.Client, body: Mapping[str, str], encoding: str = "json") -> httpx.Response:
    """The token request as JSON, multipart (fields only) or a form body."""
    if encoding == "json":
        return client.post(TOKEN, json=dict(body))
    if encoding == "multipart":
        return client.post(TOKEN, files={name: (None, value) for name, value in body.items()})
    assert encoding == "form"
    return client.post(TOKEN, data=dict(body))


# The encodings each version's token view parses (contract section 2), as (encoding, version) test parameters.
ACCEPTED = [("json", "v1.27.0"), ("multipart", "v1.27.0"), ("json", "main"), ("form", "main")]
ACCEPTED_IDS = [f"{encoding} on {version}" for encoding, version in ACCEPTED]


def token_for(client: httpx.Client, email: str, **changes: str | None) -> str:
    response = ask_token(client, credentials(email, **changes))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def create(client: httpx.Client, token: str, body: Mapping[str, Any] | None = None) -> httpx.Response:
    return client.post(ROOMS, json=dict(body or {}), headers=bearer(token))


def created(client: httpx.Client, token: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response = create(client, token, body)
    assert response.status_code == 201, response.text
    room: dict[str, Any] = response.json()
    return room


# ----------------------------------------------------------------------------------------------- token table

@dataclass(frozen=True)
class TokenCase:
    """One row of the token table: set the instance up, send a body, expect a status and a JSON body."""

    id: str
    request: Callable[[MeetState], dict[str, str]]
    status: int
    body: dict[str, Any] | None            # None: the body is not JSON (or not documented)


def _inactive(state: MeetState) -> dict[str, str]:
    state.set_application(SANDBOX_CLIENT_ID, active=False)
    return credentials("pas-une-adresse")                      # the scope check comes later


def _switches(*, creation: bool, fallback: bool, mutable: bool) -> Callable[[MeetState], dict[str, str]]:
    def request(state: MeetState) -> dict[str, str]:
        state.configure(allow_user_creation=creation, fallback_to_email=fallback, sub_immutable=not mutable)
        return credentials(unknown_address())
    return request


def _race(state: MeetState) -> dict[str, str]:
    state.configure(allow_user_creation=True, fallback_to_email=True, sub_immutable=False)
    email = unknown_address()
    state.simulate_creation_race(email)
    return credentials(email)


def _disabled(state: MeetState) -> dict[str, str]:
    state.configure(applications_enabled=False)
    return credentials(new_host(state), client_secret=None)    # the feature flag answers before the serializer


INVALID_CREDENTIALS = {"detail": "Invalid credentials"}
NOT_AN_EMAIL = {"error": "Scope should be a valid email address."}
NOT_AUTHORIZED = {"error": "This application is not authorized for this email domain."}
USER_NOT_FOUND = {"detail": "User not found."}
REQUIRED = ["This field is required."]

TOKEN_CASES = [
    *(TokenCase(f"missing {name}", lambda state, name=name: credentials(new_host(state), **{name: None}), 400,
                {name: REQUIRED}) for name in ("client_id", "client_secret", "grant_type", "scope")),
    TokenCase("no field at all", lambda _state: {}, 400,
              {"client_id": REQUIRED, "client_secret": REQUIRED, "grant_type": REQUIRED, "scope": REQUIRED}),
    TokenCase("grant_type password", lambda state: credentials(new_host(state), grant_type="password"), 400,
              {"grant_type": ['"password" is not a valid choice.']}),
    TokenCase("unknown client_id", lambda state: credentials(new_host(state), client_id="x" * 40), 401,
              INVALID_CREDENTIALS),
    TokenCase("wrong secret", lambda state: credentials(new_host(state), client_secret="y" * 128), 401,
              INVALID_CREDENTIALS),
    TokenCase("wrong secret before a bad scope", lambda _state: credentials("nobody", client_secret="y"), 401,
              INVALID_CREDENTIALS),
    TokenCase("inactive application before a bad scope", _inactive, 401, {"detail": "Application is inactive"}),
    TokenCase("scope without a domain", lambda _state: credentials("claire.martin"), 400, NOT_AN_EMAIL),
    TokenCase("scope with a space", lambda _state: credentials(f"claire martin@{DOMAIN}"), 400, NOT_AN_EMAIL),
    TokenCase("scope with a dotless domain", lambda _state: credentials("claire@localhost"), 400, NOT_AN_EMAIL),
    TokenCase("alias domain", lambda state: credentials(new_host(state, domain=ALIAS)), 403, NOT_AUTHORIZED),
    TokenCase("unrouted domain", lambda _state: credentials(unknown_address(domain=UNROUTED)), 403,
              NOT_AUTHORIZED),
    TokenCase("sub-domain needs its own row", lambda _state: credentials(unknown_address(domain=f"dsi.{DOMAIN}")),
              403, NOT_AUTHORIZED),
    TokenCase("unknown user, pre-creation off", lambda _state: credentials(unknown_address()), 404,
              USER_NOT_FOUND),
    TokenCase("unknown user, creation + fallback only", _switches(creation=True, fallback=True, mutable=False), 404,
              USER_NOT_FOUND),
    TokenCase("unknown user, creation + mutable sub only", _switches(creation=True, fallback=False, mutable=True),
              404, USER_NOT_FOUND),
    TokenCase("unknown user, fallback + mutable sub only", _switches(creation=False, fallback=True, mutable=True),
              404, USER_NOT_FOUND),
    TokenCase("race while pre-creating", _race, 409, {"error": "Failed to create or retrieve provisional user."}),
    TokenCase("applications disabled", _disabled, 404, None),
]


@pytest.mark.parametrize(("encoding", "version"), ACCEPTED, ids=ACCEPTED_IDS)
@pytest.mark.parametrize("case", TOKEN_CASES, ids=[case.id for case in TOKEN_CASES])
def test_token_refusals_answer_as_documented(client: httpx.Client, meet: MeetState, case: TokenCase,
                                             encoding: str, version: str) -> None:
    meet.configure(version=version)
    response = ask_token(client, case.request(meet), encoding)
    assert response.status_code == case.status, response.text
    if case.body is not None:
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == case.body
    if case.status == 401:                                      # DRF's SessionAuthentication answers first
        assert response.headers["www-authenticate"] == "Session"
    assert response.headers["allow"] == "POST, OPTIONS"


def _media_refused(media: str) -> dict[str, str]:
    return {"detail": f'Unsupported media type "{media}" in request.'}


def test_v1_27_0_refuses_a_form_body_on_the_token_endpoint(client: httpx.Client, meet: MeetState,
                                                           server: SandboxServer) -> None:
    """The release bascule must work against: a form body fails every token request (415), whatever it holds."""
    before = server.sandbox.stats["meet:token:issued"]
    for body in (credentials(new_host(meet)), {}, credentials("pas-une-adresse")):
        response = ask_token(client, body, "form") if body else client.post(TOKEN, content=b"x=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 415
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["allow"] == "POST, OPTIONS"
        assert response.json() == _media_refused("application/x-www-form-urlencoded")
    assert server.sandbox.stats["meet:token:issued"] == before


def test_main_refuses_multipart_and_takes_a_form_body(client: httpx.Client, meet: MeetState) -> None:
    meet.configure(version="main")
    email = new_host(meet)
    refused = ask_token(client, credentials(email), "multipart")
    assert refused.status_code == 415
    media = refused.request.headers["content-type"]
    assert media.startswith("multipart/form-data; boundary=")
    assert refused.json() == _media_refused(media)                    # DRF quotes the header as sent
    assert ask_token(client, credentials(email), "form").status_code == 200
    assert ask_token(client, credentials(email), "json").status_code == 200


@pytest.mark.parametrize("version", ["v1.27.0", "main"])
def test_a_body_the_token_view_cannot_parse(client: httpx.Client, meet: MeetState, version: str) -> None:
    meet.configure(version=version)
    untyped = client.post(TOKEN, content=b'{"scope": "x"}', headers={"Content-Type": ""})
    assert (untyped.status_code, untyped.json()) == (415, _media_refused(""))
    text = client.post(TOKEN, content=b"scope", headers={"Content-Type": "text/plain"})
    assert (text.status_code, text.json()) == (415, _media_refused("text/plain"))
    empty = client.post(TOKEN, content=b"", headers={"Content-Type": "text/plain"})   # DRF parses no empty body
    assert empty.status_code == 400 and set(empty.json()) == {"client_id", "client_secret", "grant_type", "scope"}


@pytest.mark.parametrize(("encoding", "version"), ACCEPTED, ids=ACCEPTED_IDS)
@pytest.mark.parametrize(("debug", "shown"), [(True, "Multiple user accounts share a common email."),
                                              (False, "Bad Request (400)")], ids=["debug page", "plain page"])
def test_two_users_sharing_an_email_give_a_400_page(client: httpx.Client, meet: MeetState, encoding: str,
                                                    version: str, debug: bool, shown: str) -> None:
    meet.configure(debug=debug, version=version)
    email = new_host(meet, "partage")
    meet.add_user(email.upper(), sub=uuid.uuid4().hex)           # the lookup is case-insensitive
    response = ask_token(client, credentials(email), encoding)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert shown in response.text
    assert "allow" not in response.headers                      # Django's page, not the view's answer


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the sandbox's key is short
@pytest.mark.parametrize(("encoding", "version"), ACCEPTED, ids=ACCEPTED_IDS)
def test_a_token_is_an_hs256_jwt_with_the_documented_claims(client: httpx.Client, meet: MeetState,
                                                            encoding: str, version: str) -> None:
    meet.configure(version=version)
    email = new_host(meet)
    (user,) = meet.users_with_email(email)
    response = ask_token(client, credentials(email), encoding)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, GRANTED)
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    # Expiry is checked against Meet's clock below (the sandbox's "now" is the ministry's date, not today).
    claims = jwt.decode(token, SANDBOX_JWT_SECRET, algorithms=["HS256"], audience=SANDBOX_JWT_AUDIENCE,
                        issuer="lasuite-meet", options={"verify_exp": False})
    assert set(claims) == {"client_id", "delegated", "iat", "exp", "user_id", "iss", "aud", "scope"}
    assert claims["client_id"] == SANDBOX_CLIENT_ID and claims["delegated"] is True
    assert claims["user_id"] == user.id and claims["scope"] == GRANTED
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - meet.now().timestamp()) < 5


def test_the_granted_scope_is_the_applications_scope_list(client: httpx.Client, meet: MeetState) -> None:
    response = ask_token(client, credentials(new_host(meet), client_id=READER_ID, client_secret=READER_SECRET))
    assert response.json()["scope"] == "rooms:list rooms:retrieve"
    assert jwt.decode(response.json()["access_token"], options={"verify_signature": False})["scope"] == (
        "rooms:list rooms:retrieve")


def test_the_user_lookup_and_the_domain_match_ignore_case(client: httpx.Client, meet: MeetState) -> None:
    email = new_host(meet)
    (user,) = meet.users_with_email(email)
    shouted = email.upper()
    claims = jwt.decode(token_for(client, shouted), options={"verify_signature": False})
    assert claims["user_id"] == user.id
    assert len(meet.users_with_email(email)) == 1


def test_no_domain_row_means_any_domain(client: httpx.Client, meet: MeetState) -> None:
    # The reader application has no ApplicationDomain row: an alias address passes the domain check.
    body = credentials(unknown_address(domain=ALIAS), client_id=READER_ID, client_secret=READER_SECRET)
    assert ask_token(client, body).json() == USER_NOT_FOUND
    meet.set_application(SANDBOX_CLIENT_ID, domains=(ALIAS.upper(),))
    assert ask_token(client, credentials(new_host(meet, domain=ALIAS))).status_code == 200
    assert ask_token(client, credentials(new_host(meet))).json() == NOT_AUTHORIZED


@pytest.mark.parametrize(("encoding", "version"), ACCEPTED, ids=ACCEPTED_IDS)
def test_pre_creation_with_the_three_switches_creates_a_provisional_user(client: httpx.Client, meet: MeetState,
                                                                         encoding: str, version: str) -> None:
    meet.configure(allow_user_creation=True, fallback_to_email=True, sub_immutable=False, version=version)
    email = unknown_address("Nouvel.Agent")
    assert meet.users_with_email(email) == []
    response = ask_token(client, credentials(email), encoding)
    assert response.status_code == 200
    (user,) = meet.users_with_email(email)
    assert (user.email, user.sub, user.origin) == (email, None, "provisional")   # the address as given
    user_id = jwt.decode(response.json()["access_token"], options={"verify_signature": False})["user_id"]
    assert user_id == user.id
    again = ask_token(client, credentials(email.lower()), encoding).json()["access_token"]
    assert jwt.decode(again, options={"verify_signature": False})["user_id"] == user.id
    meet.configure(allow_user_creation=False)                   # an existing user works whatever the settings
    assert ask_token(client, credentials(email), encoding).status_code == 200


def test_the_token_endpoint_only_takes_post(client: httpx.Client) -> None:
    response = client.get(TOKEN)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST, OPTIONS"
    assert response.json() == {"detail": 'Method "GET" not allowed.'}


def test_the_version_switch_at_runtime(server: SandboxServer, meet: MeetState) -> None:
    settings = f"{server.url}/_sandbox/meet/settings"
    assert httpx.get(settings).json()["version"] == "v1.27.0"
    assert httpx.post(settings, json={"version": "main"}).json()["version"] == "main"
    assert meet.options.version == "main"
    refused = httpx.post(settings, json={"version": "v2"})
    assert refused.status_code == 400 and "version" in refused.json()["error"]
    with pytest.raises(ValueError, match="version must be one of"):
        MeetOptions(version="v2")


# ----------------------------------------------------------------------------------------------- rooms: creation

def test_a_created_room_has_the_documented_shape_and_owner(client: httpx.Client, meet: MeetState,
                                                           server: SandboxServer) -> None:
    email = new_host(meet)
    (user,) = meet.users_with_email(email)
    room = created(client, token_for(client, email))

    assert set(room) == ROOM_KEYS
    assert str(uuid.UUID(room["id"])) == room["id"]
    assert SLUG.match(room["slug"]) and room["name"] == room["slug"]
    assert room["access_level"] == "trusted" and room["configuration"] == {}
    assert room["url"] == f"{server.url}/visio/{room['slug']}"
    telephony = room["telephony"]
    assert set(telephony) == {"enabled", "phone_number", "pin_code", "default_country"}
    assert telephony["enabled"] is True and telephony["phone_number"] == "+33100000000"
    assert telephony["default_country"] == "FR"
    assert re.fullmatch(r"[0-9]{10}", telephony["pin_code"])
    stored = meet.room(room["id"])
    assert stored is not None and stored.accesses == {user.id: "owner"}


@pytest.mark.parametrize("body", [{"name": "COMEX hebdo"}, {"name": "abc-defg-hij"}, {"slug": "comex"}],
                         ids=["free text", "a 3-4-3 name", "a slug"])
def test_a_supplied_name_is_ignored(client: httpx.Client, meet: MeetState, body: dict[str, str]) -> None:
    room = created(client, token_for(client, new_host(meet)), body)
    assert SLUG.match(room["slug"]) and room["name"] == room["slug"]
    assert room["slug"] != next(iter(body.values()))


@pytest.mark.parametrize("version", ["v1.27.0", "main"])
@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_rooms_take_json_only_in_every_version(client: httpx.Client, meet: MeetState, version: str,
                                               encoding: str) -> None:
    meet.configure(version=version)
    token = token_for(client, new_host(meet))
    before = len(meet.rooms())
    fields = {"access_level": "restricted"}
    response = (client.post(ROOMS, data=fields, headers=bearer(token)) if encoding == "form"
                else client.post(ROOMS, files={"access_level": (None, "restricted")}, headers=bearer(token)))
    assert response.status_code == 415
    assert response.json() == _media_refused(response.request.headers["content-type"])
    assert response.headers["allow"] == "GET, POST, HEAD, OPTIONS"
    assert len(meet.rooms()) == before


def test_a_created_room_is_located_at_its_url(client: httpx.Client, meet: MeetState) -> None:
    """DRF's CreateModelMixin puts the serializer's `url` in Location: the room's link, not an API address."""
    response = create(client, token_for(client, new_host(meet)))
    assert response.status_code == 201
    assert response.headers["location"] == response.json()["url"]
    assert response.headers["allow"] == "GET, POST, HEAD, OPTIONS"
    meet.configure(base_url=None)
    bare = create(client, token_for(client, new_host(meet)))
    assert bare.status_code == 201 and "url" not in bare.json() and "location" not in bare.headers


PUBLIC_REFUSED = {"access_level": ["Public rooms are disabled for the external API."]}

# (id, switches, body, status, access level of the room or the 400 body)
ACCESS_CASES: list[tuple[str, dict[str, Any], dict[str, Any], int, Any]] = [
    ("default", {}, {}, 201, "trusted"),
    ("trusted", {}, {"access_level": "trusted"}, 201, "trusted"),
    ("restricted", {}, {"access_level": "restricted"}, 201, "restricted"),
    ("public refused", {}, {"access_level": "public"}, 400, PUBLIC_REFUSED),
    ("public refused, default restricted", {"default_access_level": "restricted"}, {"access_level": "public"}, 400,
     PUBLIC_REFUSED),
    ("public allowed", {"allow_public": True}, {"access_level": "public"}, 201, "public"),
    ("public by default", {"default_access_level": "public"}, {"access_level": "public"}, 201, "public"),
    ("configured default", {"default_access_level": "restricted"}, {}, 201, "restricted"),
    ("unknown level", {}, {"access_level": "secret"}, 400, {"access_level": ['"secret" is not a valid choice.']}),
]


@pytest.mark.parametrize(("switches", "body", "status", "expected"), [case[1:] for case in ACCESS_CASES],
                         ids=[case[0] for case in ACCESS_CASES])
def test_access_levels(client: httpx.Client, meet: MeetState, switches: dict[str, Any], body: dict[str, Any],
                       status: int, expected: Any) -> None:
    meet.configure(**switches)
    before = len(meet.rooms())
    response = create(client, token_for(client, new_host(meet)), body)
    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["access_level"] == expected
    else:
        assert response.json() == expected
        assert len(meet.rooms()) == before


@pytest.mark.parametrize("configuration", [
    {"can_publish_sources": ["camera", "microphone", "screen_share", "screen_share_audio"]},
    {"everyone_can_mute": False},
    {"can_publish_sources": None, "everyone_can_mute": None},
    {"everyone_can_mute": "yes"},
    {},
], ids=["every source", "mute flag", "nulls", "a lax boolean, stored verbatim", "empty"])
def test_a_valid_configuration_is_kept(client: httpx.Client, meet: MeetState, configuration: dict[str, Any]) -> None:
    room = created(client, token_for(client, new_host(meet)), {"configuration": configuration})
    assert room["configuration"] == configuration


def _pydantic(kind: str, loc: list[Any], msg: str, value: Any) -> dict[str, Any]:
    """One pydantic error object as Meet returns it (section 3), but its `url` (checked apart: it names a version)."""
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


EXTRA = "Extra inputs are not permitted"
SOURCES = "Input should be 'camera', 'microphone', 'screen_share' or 'screen_share_audio'"

CONFIGURATION_ERRORS: list[tuple[str, Any, list[dict[str, Any]]]] = [
    ("unknown key", {"max_participants": 20}, [_pydantic("extra_forbidden", ["max_participants"], EXTRA, 20)]),
    ("an unknown key among valid ones", {"can_publish_sources": ["camera"], "recording": True},
     [_pydantic("extra_forbidden", ["recording"], EXTRA, True)]),
    ("unknown source", {"can_publish_sources": ["camera", "hologram"]},
     [_pydantic("literal_error", ["can_publish_sources", 1], SOURCES, "hologram")]),
    ("sources not a list", {"can_publish_sources": "camera"},
     [_pydantic("list_type", ["can_publish_sources"], "Input should be a valid list", "camera")]),
    ("mute neither boolean nor boolean-like", {"everyone_can_mute": "maybe"},
     [_pydantic("bool_parsing", ["everyone_can_mute"], "Input should be a valid boolean, unable to interpret input",
                "maybe")]),
    ("two errors", {"everyone_can_mute": "maybe", "x": 1},
     [_pydantic("bool_parsing", ["everyone_can_mute"], "Input should be a valid boolean, unable to interpret input",
                "maybe"), _pydantic("extra_forbidden", ["x"], EXTRA, 1)]),
]


@pytest.mark.parametrize(("configuration", "expected"), [case[1:] for case in CONFIGURATION_ERRORS],
                         ids=[case[0] for case in CONFIGURATION_ERRORS])
def test_configuration_errors_are_pydantic_error_objects(client: httpx.Client, meet: MeetState, configuration: Any,
                                                         expected: list[dict[str, Any]]) -> None:
    before = len(meet.rooms())
    response = create(client, token_for(client, new_host(meet)), {"configuration": configuration})
    assert response.status_code == 400
    assert response.headers["allow"] == "GET, POST, HEAD, OPTIONS"
    errors = response.json()
    assert list(errors) == ["configuration"]
    found = errors["configuration"]
    assert all(set(error) == {"type", "loc", "msg", "input", "url"} for error in found)
    assert all(re.fullmatch(r"https://errors\.pydantic\.dev/[0-9.]+/v/" + error["type"], error["url"])
               for error in found)
    assert [{key: value for key, value in error.items() if key != "url"} for error in found] == expected
    assert len(meet.rooms()) == before


def test_a_configuration_that_is_not_an_object(client: httpx.Client, meet: MeetState) -> None:
    response = create(client, token_for(client, new_host(meet)), {"configuration": ["camera"]})
    assert response.status_code == 400
    (error,) = response.json()["configuration"]
    assert (error["type"], error["loc"], error["input"]) == ("model_type", [], ["camera"])
    assert error["msg"].startswith("Input should be a valid dictionary")


def test_a_null_configuration_is_refused(client: httpx.Client, meet: MeetState) -> None:
    before = len(meet.rooms())
    response = create(client, token_for(client, new_host(meet)), {"configuration": None})
    assert (response.status_code, response.json()) == (400, {"configuration": ["This field may not be null."]})
    assert len(meet.rooms()) == before


@pytest.mark.parametrize(("base_url", "expected"), [("https://visio.example.gouv.fr", "https://visio.example.gouv.fr"),
                                                    (None, None)], ids=["configured base", "no base url"])
def test_url_is_the_base_and_the_slug_only_when_a_base_is_set(client: httpx.Client, meet: MeetState,
                                                              base_url: str | None, expected: str | None) -> None:
    meet.configure(base_url=base_url)
    room = created(client, token_for(client, new_host(meet)))
    if expected is None:
        assert set(room) == ROOM_KEYS - {"url"}
    else:
        assert room["url"] == f"{expected}/{room['slug']}"


def test_a_room_created_without_telephony_never_gets_a_pin(client: httpx.Client, meet: MeetState) -> None:
    email = new_host(meet)
    token = token_for(client, email)
    meet.configure(telephony=False)
    room = created(client, token)
    assert set(room) == ROOM_KEYS - {"telephony"}
    meet.configure(telephony=True)
    shown = client.get(f"{ROOMS}{room['id']}/", headers=bearer(token)).json()
    assert shown["telephony"]["pin_code"] is None


def test_slugs_and_pins_are_unique(client: httpx.Client, meet: MeetState) -> None:
    token = token_for(client, new_host(meet))
    rooms = [created(client, token) for _ in range(30)]
    assert len({room["slug"] for room in rooms}) == 30
    pins = [room["telephony"]["pin_code"] for room in rooms]
    assert len(set(pins)) == 30 and all(re.fullmatch(r"[0-9]{10}", pin) for pin in pins)


# ----------------------------------------------------------------------------------------------- rooms: reading

def test_the_list_is_paginated_by_twenty_and_ordered_by_name(client: httpx.Client, meet: MeetState) -> None:
    email = new_host(meet)
    token = token_for(client, email)
    made = {created(client, token)["id"] for _ in range(45)}
    list_url = f"{client.base_url}{ROOMS}"

    pages = [client.get(ROOMS, params=params, headers=bearer(token)).json()
             for params in ({"page_size": 5}, {"page": 2}, {"page": 3})]
    assert [set(page) for page in pages] == [{"count", "next", "previous", "results"}] * 3
    assert [page["count"] for page in pages] == [45, 45, 45]
    assert [len(page["results"]) for page in pages] == [20, 20, 5]          # page_size is ignored
    assert pages[0]["previous"] is None and pages[0]["next"] == f"{list_url}?page_size=5&page=2"
    assert (pages[1]["previous"], pages[1]["next"]) == (list_url, f"{list_url}?page=3")
    assert (pages[2]["previous"], pages[2]["next"]) == (f"{list_url}?page=2", None)
    listed = [room for page in pages for room in page["results"]]
    assert [room["name"] for room in listed] == sorted(room["name"] for room in listed)
    assert [room["id"] for room in listed if room["id"] in made] == [room["id"] for room in listed]
    assert {room["id"] for room in listed} == made
    assert all(set(room) == ROOM_KEYS for room in listed)
    following = client.get(pages[0]["next"], headers=bearer(token)).json()
    assert following["results"] == pages[1]["results"]
    for wrong in (4, 0, -1, "abc", "1.0", "LAST"):
        refused = client.get(ROOMS, params={"page": wrong}, headers=bearer(token))
        assert (refused.status_code, refused.json()) == (404, {"detail": "Invalid page."})
        assert refused.headers["allow"] == "GET, POST, HEAD, OPTIONS"

    last = client.get(ROOMS, params={"page": "last"}, headers=bearer(token)).json()   # DRF's last_page_strings
    assert last == {**pages[2], "previous": f"{list_url}?page=2"}


def test_page_last_of_an_empty_or_single_page_list(client: httpx.Client, meet: MeetState) -> None:
    token = token_for(client, new_host(meet))
    empty = {"count": 0, "next": None, "previous": None, "results": []}
    assert client.get(ROOMS, params={"page": "last"}, headers=bearer(token)).json() == empty
    room = created(client, token)
    single = client.get(ROOMS, params={"page": "last"}, headers=bearer(token)).json()
    assert single == {"count": 1, "next": None, "previous": None, "results": [room]}


def test_rooms_are_read_by_uuid_only_and_only_by_users_with_a_role(client: httpx.Client, meet: MeetState) -> None:
    token = token_for(client, new_host(meet))
    room = created(client, token)
    other = token_for(client, new_host(meet, "autre"))

    assert client.get(f"{ROOMS}{room['id']}/", headers=bearer(token)).json() == room
    by_slug = client.get(f"{ROOMS}{room['slug']}/", headers=bearer(token))
    assert by_slug.status_code == 404
    assert by_slug.json() == {"detail": "Not found."} and by_slug.headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.get(f"{ROOMS}{uuid.uuid4()}/", headers=bearer(token)).status_code == 404
    foreign = client.get(f"{ROOMS}{room['id']}/", headers=bearer(other))
    assert foreign.status_code == 403
    assert foreign.json() == {"detail": "You do not have permission to perform this action."}
    assert client.get(ROOMS, headers=bearer(other)).json() == {"count": 0, "next": None, "previous": None,
                                                               "results": []}


@pytest.mark.parametrize("spelling", [str.upper, lambda text: text.replace("-", ""),
                                      lambda text: "{" + text.upper() + "}", lambda text: f"urn:uuid:{text}"],
                         ids=["upper case", "no hyphens", "braces", "urn"])
def test_a_room_id_is_matched_as_django_reads_a_uuid(client: httpx.Client, meet: MeetState,
                                                     spelling: Callable[[str], str]) -> None:
    token = token_for(client, new_host(meet))
    room = created(client, token)
    response = client.get(f"{ROOMS}{spelling(room['id'])}/", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == room                              # the canonical id, whatever was asked
    foreign = client.get(f"{ROOMS}{room['id'].upper()}/", headers=bearer(token_for(client, new_host(meet))))
    assert foreign.status_code == 403


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_rooms_cannot_be_changed_or_deleted(client: httpx.Client, meet: MeetState, method: str) -> None:
    token = token_for(client, new_host(meet))
    room = created(client, token)
    response = client.request(method, f"{ROOMS}{room['id']}/", json={"access_level": "restricted"},
                              headers=bearer(token))
    assert response.status_code == 405
    assert response.json() == {"detail": f'Method "{method}" not allowed.'}
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.get(f"{ROOMS}{room['id']}/", headers=bearer(token)).json() == room


@pytest.mark.parametrize("path", ["rooms", "rooms/{id}"], ids=["list", "detail"])
def test_a_get_without_the_trailing_slash_is_redirected(client: httpx.Client, meet: MeetState, path: str) -> None:
    token = token_for(client, new_host(meet))
    room = created(client, token)
    wanted = path.format(id=room["id"])
    response = client.get(wanted, params={"page": 1}, headers=bearer(token))
    assert response.status_code == 301
    assert response.headers["location"] == f"{client.base_url.path}{wanted}/?page=1"
    assert "allow" not in response.headers                      # Django's middleware answers, not the view


@pytest.mark.parametrize("path", ["rooms", "application/token"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_write_without_the_trailing_slash_is_an_error_page_in_debug(client: httpx.Client, meet: MeetState,
                                                                      path: str, method: str) -> None:
    token = token_for(client, new_host(meet))
    before = len(meet.rooms())
    response = client.request(method, path, json={}, headers=bearer(token))
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert "APPEND_SLASH" in response.text and f"You called this URL via {method}" in response.text
    assert len(meet.rooms()) == before


@pytest.mark.parametrize("path", ["rooms", "application/token"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_write_without_the_trailing_slash_is_redirected_in_production(client: httpx.Client, meet: MeetState,
                                                                        path: str, method: str) -> None:
    """DEBUG off: Django redirects every method; a client that follows re-sends a POST as a GET, without its body."""
    token = token_for(client, new_host(meet))
    meet.configure(debug=False)
    before = len(meet.rooms())
    response = client.request(method, path, params={"page": 2}, json={"access_level": "restricted"},
                              headers=bearer(token))
    assert response.status_code == 301
    assert response.headers["location"] == f"{client.base_url.path}{path}/?page=2"
    assert response.content == b"" and "allow" not in response.headers
    assert len(meet.rooms()) == before


def test_a_delete_without_the_trailing_slash_is_redirected_even_in_debug(client: httpx.Client) -> None:
    response = client.delete("rooms")
    assert response.status_code == 301 and response.headers["location"] == f"{client.base_url.path}rooms/"


def test_djangos_own_pages_carry_no_allow_header(client: httpx.Client) -> None:
    response = client.get("rooms/not/a/route/")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
    assert "allow" not in response.headers


# ----------------------------------------------------------------------------------------------- rooms: auth

ENDPOINTS = {"list": ("GET", "rooms:list"), "create": ("POST", "rooms:create"), "retrieve": ("GET", "rooms:retrieve")}


def _path(endpoint: str, room_id: str) -> str:
    return f"{ROOMS}{room_id}/" if endpoint == "retrieve" else ROOMS


def _forged(state: MeetState, email: str, **changes: Any) -> str:
    """A token signed with Meet's key whose claims differ from what the endpoint issues."""
    (user,) = state.users_with_email(email)
    issued = int(state.now().timestamp())
    claims = {"client_id": SANDBOX_CLIENT_ID, "delegated": True, "iat": issued, "exp": issued + 3600,
              "user_id": user.id, "iss": "lasuite-meet", "aud": SANDBOX_JWT_AUDIENCE, "scope": GRANTED, **changes}
    return encode_jwt(claims, SANDBOX_JWT_SECRET)


# (id, Authorization header from (state, client, host e-mail), status, detail)
AUTH_CASES: list[tuple[str, Callable[[MeetState, httpx.Client, str], str | None], int, str]] = [
    ("no header", lambda _s, _c, _e: None, 401, "Authentication credentials were not provided."),
    ("basic scheme", lambda _s, _c, _e: "Basic dXNlcjpwYXNz", 401, "Authentication credentials were not provided."),
    ("garbage bearer", lambda _s, _c, _e: "Bearer not-a-token", 401, "Resource Server is improperly configured"),
    ("signed with another key", lambda s, _c, e: "Bearer " + encode_jwt({"user_id": e, "exp": 4102444800}, "k"),
     401, "Resource Server is improperly configured"),
    ("wrong audience", lambda s, _c, e: "Bearer " + _forged(s, e, aud="another-audience"), 401, "Invalid token."),
    ("wrong issuer", lambda s, _c, e: "Bearer " + _forged(s, e, iss="someone-else"), 401, "Invalid token."),
    ("forged expiry", lambda s, _c, e: "Bearer " + _forged(s, e, exp=int(s.now().timestamp()) - 1), 401,
     "Token expired."),
]


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(("authorization", "status", "detail"), [case[1:] for case in AUTH_CASES],
                         ids=[case[0] for case in AUTH_CASES])
def test_unauthenticated_calls_answer_as_observed(client: httpx.Client, meet: MeetState, endpoint: str,
                                                  authorization: Callable[[MeetState, httpx.Client, str], str | None],
                                                  status: int, detail: str) -> None:
    email = new_host(meet)
    room = created(client, token_for(client, email))
    header = authorization(meet, client, email)
    method = ENDPOINTS[endpoint][0]
    before = len(meet.rooms())
    response = client.request(method, _path(endpoint, room["id"]), json={} if method == "POST" else None,
                              headers={"Authorization": header} if header is not None else {})
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"    # the first authenticator of the room views
    assert response.headers["allow"] == ("GET, HEAD, OPTIONS" if endpoint == "retrieve" else
                                         "GET, POST, HEAD, OPTIONS")
    assert len(meet.rooms()) == before


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_an_expired_token_is_refused(client: httpx.Client, meet: MeetState, endpoint: str) -> None:
    email = new_host(meet)
    token = token_for(client, email)
    room = created(client, token)
    method = ENDPOINTS[endpoint][0]
    meet.advance_clock(3590)
    still = client.request(method, _path(endpoint, room["id"]), json={} if method == "POST" else None,
                           headers=bearer(token))
    assert still.status_code in (200, 201)
    meet.advance_clock(10)
    response = client.request(method, _path(endpoint, room["id"]), json={} if method == "POST" else None,
                              headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token expired."}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_token_without_the_scope_is_forbidden(client: httpx.Client, meet: MeetState, endpoint: str) -> None:
    email = new_host(meet)
    room = created(client, token_for(client, email))
    method, scope = ENDPOINTS[endpoint]
    meet.set_application(SANDBOX_CLIENT_ID, scopes=tuple(item for item in APPLICATION_SCOPES if item != scope))
    token = token_for(client, email)
    response = client.request(method, _path(endpoint, room["id"]), json={} if method == "POST" else None,
                              headers=bearer(token))
    assert response.status_code == 403
    assert response.json() == {"detail": f"Insufficient permissions. Required scope: {scope}"}
    assert "allow" in response.headers


def test_a_disabled_user_is_refused(client: httpx.Client, meet: MeetState) -> None:
    email = new_host(meet)
    token = token_for(client, email)
    (user,) = meet.users_with_email(email)
    meet.set_user_active(user.id, False)
    response = client.get(ROOMS, headers=bearer(token))
    assert (response.status_code, response.json()) == (401, {"detail": "User account is disabled."})


# ----------------------------------------------------------------------------------------------- sandbox-only

def test_inactive_users_are_seeded_from_the_options(contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """MeetOptions.inactive_users: a directory user is deactivated, an unknown address becomes a disabled user."""
    from sandbox.meet import directory_mails
    from sandbox.server import Sandbox

    listed = next(mail for mail in directory_mails(contract_ministry[0] / "directory.ldif") if mail.endswith(DOMAIN))
    unknown = unknown_address("desactive")
    state = MeetState(Sandbox(SandboxConfig(data_dir=contract_ministry[0])),
                      MeetOptions(inactive_users=(listed.upper(), unknown), logged_in_share=1.0))
    (seeded,) = state.users_with_email(unknown)
    assert (seeded.is_active, seeded.origin, seeded.sub is not None) == (False, "seeded", True)
    assert [user.is_active for user in state.users_with_email(listed)] == [False] * len(state.users_with_email(listed))
    assert all(user.is_active for user in state.users() if user.email.lower() not in (listed.lower(), unknown))

def test_the_inspection_route_lists_rooms_with_their_owner(client: httpx.Client, meet: MeetState,
                                                           server: SandboxServer) -> None:
    email = new_host(meet, "Inspecte")
    room = created(client, token_for(client, email))
    (user,) = meet.users_with_email(email)
    listed = httpx.get(f"{server.url}/_sandbox/meet/rooms", params={"owner": email.upper()}).json()
    assert listed["count"] == 1
    (item,) = listed["rooms"]
    assert (item["id"], item["owner_email"], item["owner_user_id"]) == (room["id"], email, user.id)
    assert item["accesses"] == [{"user_id": user.id, "role": "owner"}]


# ----------------------------------------------------------------------------------------------- restarts

def _rooms_of_a_fresh_sandbox(data_dir: Path, email: str, count: int) -> list[tuple[str, str, str]]:
    """(id, slug, PIN) of `count` rooms created for `email` by a sandbox started and stopped for this only."""
    config = SandboxConfig(data_dir=data_dir, tls_port=None, systems=frozenset({"meet"}))
    with SandboxServer(config) as started, httpx.Client(
            base_url=f"{started.url}/meet/external-api/v1.0/") as http:
        state_of(started.sandbox).add_user(email, sub="restart-test")
        token = token_for(http, email)
        rooms = [created(http, token) for _ in range(count)]
    return [(room["id"], room["slug"], room["telephony"]["pin_code"]) for room in rooms]


def test_a_restart_on_the_same_data_never_repeats_a_room_id_or_slug(
        contract_ministry: tuple[Path, dict[str, Any]]) -> None:
    """bascule keeps the rooms it recorded across sandbox restarts: a repeated id or slug would be another room
    under a known name (Meet's ids are uuid4, its slugs random)."""
    email = unknown_address("redemarrage")
    first = _rooms_of_a_fresh_sandbox(contract_ministry[0], email, 5)
    second = _rooms_of_a_fresh_sandbox(contract_ministry[0], email, 5)
    for index, label in enumerate(("id", "slug", "pin")):
        assert not {room[index] for room in first} & {room[index] for room in second}, label
    assert all(uuid.UUID(room_id).version == 4 and SLUG.match(slug) for room_id, slug, _pin in first + second)


def test_a_meet_that_repeats_itself_on_purpose(server: SandboxServer, client: httpx.Client, meet: MeetState) -> None:
    """The deliberate bugs `reuse_room_id:<uuid>` and `reuse_room_slug:<slug>`: the next room takes them, once."""
    token = token_for(client, new_host(meet))
    known = created(client, token)
    server.sandbox.set_bugs(add=[f"reuse_room_id:{known['id'].upper()}", f"reuse_room_slug:{known['slug']}"])
    again = created(client, token)
    assert (again["id"], again["slug"]) == (known["id"], known["slug"])
    after = created(client, token)
    assert after["id"] != known["id"] and after["slug"] != known["slug"]
    assert not any(bug.startswith("reuse_room") for bug in server.sandbox.bugs_snapshot())
