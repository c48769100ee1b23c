"""connectors.visio.VisioRoomTarget over real HTTP against the Meet sandbox: tokens, rooms, refusals, faults, logs.

One sandbox (Meet only, as strict as release v1.27.0) serves the module. Faults are switched on per request by an
injected throttle (it runs just before each attempt), so a test says exactly which attempt fails and how; sleeps
of the retry layer are recorded instead of slept. An injected timeout is the sandbox's default one: the answer is
held until the client's own timeout fires, and the request is processed afterwards (a creation may have happened).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.errors import ConnectorError, UnexpectedResponse
from connectors.paging import ListingFailed
from connectors.retry import RetryStats
from connectors.throttle import NoThrottle
from connectors.visio import RoomCreationUncertain, VisioConfig, VisioRefused, VisioRoomTarget, VisioToken
from core import ReasonCode
from core.visio import AccessLevel, DomainVerdict, VisioRefusal, VisioRefusalReason, VisioRoom
from sandbox.faults import FaultRates
from sandbox.meet import (
    APPLICATION_SCOPES,
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    MeetApplication,
    MeetOptions,
    MeetState,
    encode_jwt,
    state_of,
)
from sandbox.server import SandboxConfig, SandboxServer
from tests.connectors.contract import TEST_RETRY
from tests.support.meet_clients import FormEncodedTokens

DOMAIN = "culture.example.gouv.fr"
ALIAS = "culture.example.fr"
READER_ID = "bascule-sandbox-visio-application-000002"
READER_SECRET = "r" * 128
NO_FAULTS = FaultRates()


@pytest.fixture(scope="module")
def server(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    options = MeetOptions(applications=(
        MeetApplication(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
        MeetApplication(READER_ID, READER_SECRET, scopes=("rooms:list", "rooms:retrieve"))))
    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"meet"}), meet=options)
    with SandboxServer(config) as started:
        yield started


@pytest.fixture
def meet(server: SandboxServer) -> Iterator[MeetState]:
    """The Meet state; switches, applications and fault rates are put back after the test."""
    state = state_of(server.sandbox)
    options = state.options
    applications = [state.application(client_id) for client_id in (SANDBOX_CLIENT_ID, READER_ID)]
    yield state
    server.sandbox.faults.configure(NO_FAULTS)
    state.configure(**{item.name: getattr(options, item.name) for item in dataclasses.fields(options)})
    for application in applications:
        assert application is not None
        state.restore_application(application)


class Sleeps:
    """The retry layer's sleeps, recorded and not slept."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FaultPlan:
    """A throttle that sets the sandbox's fault rates before each attempt: the n-th attempt gets plan[n]."""

    def __init__(self, server: SandboxServer, plan: Sequence[FaultRates] = ()) -> None:
        self._faults = server.sandbox.faults
        self._plan = list(plan)
        self.attempts = 0

    def schedule(self, plan: Sequence[FaultRates]) -> None:
        """Start over: the next attempt gets plan[0]."""
        self._plan = list(plan)
        self.attempts = 0

    def acquire(self, key: str, cost: float = 1.0) -> None:
        rates = self._plan[self.attempts] if self.attempts < len(self._plan) else NO_FAULTS
        self.attempts += 1
        self._faults.configure(rates)


class Recording(httpx.BaseTransport):
    """Real HTTP, with each request's method, path and Content-Type noted and an optional hook after each response."""

    def __init__(self, after: Callable[[httpx.Request, httpx.Response], None] | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._after = after
        self.calls: list[tuple[str, str]] = []
        self.media: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        self.media.append(request.headers.get("content-type"))
        response = self._inner.handle_request(request)
        if self._after is not None:
            response.read()
            self._after(request, response)
        return response

    def close(self) -> None:
        self._inner.close()

    def count(self, method: str, suffix: str) -> int:
        return sum(1 for verb, path in self.calls if verb == method and path.endswith(suffix))


def make_target(server: SandboxServer, *, client_id: str = SANDBOX_CLIENT_ID,
                client_secret: str = SANDBOX_CLIENT_SECRET, clock: Callable[[], datetime] | None = None,
                throttle: Any = None, transport: httpx.BaseTransport | None = None, timeout: float = 5.0,
                stats: RetryStats | None = None, sleep: Callable[[float], None] | None = None) -> VisioRoomTarget:
    config = VisioConfig(api_url=f"{server.url}/meet/external-api/v1.0/", client_id=client_id,
                         client_secret=client_secret, timeout_seconds=timeout)
    return VisioRoomTarget(config, throttle=throttle or NoThrottle(), retry=TEST_RETRY, stats=stats or RetryStats(),
                           clock=clock or state_of(server.sandbox).now, transport=transport,
                           sleep=sleep or Sleeps())


def new_host(state: MeetState, label: str = "hote", *, domain: str = DOMAIN) -> str:
    email = f"{label}.{uuid.uuid4().hex[:10]}@{domain}"
    state.add_user(email, sub=uuid.uuid4().hex)
    return email


def unknown_address(*, domain: str = DOMAIN) -> str:
    return f"jamais.connecte.{uuid.uuid4().hex[:10]}@{domain}"


def user_id(state: MeetState, email: str) -> str:
    (user,) = state.users_with_email(email)
    return user.id


def issued(server: SandboxServer) -> int:
    return server.sandbox.stats["meet:token:issued"]


def token(target: VisioRoomTarget, email: str) -> VisioToken:
    outcome = target.token_for(email)
    assert isinstance(outcome, VisioToken), outcome
    return outcome


def room(outcome: VisioRoom | VisioRefusal) -> VisioRoom:
    assert isinstance(outcome, VisioRoom), outcome
    return outcome


# ----------------------------------------------------------------------------------------------- tokens

def test_a_token_is_cached_per_host_until_shortly_before_it_expires(server: SandboxServer, meet: MeetState) -> None:
    email, other = new_host(meet, "Claire"), new_host(meet)
    with make_target(server) as target:
        before = issued(server)
        first = token(target, email)
        assert token(target, f"  {email.upper()} ") is first              # one cache entry per lower-cased e-mail
        assert issued(server) == before + 1
        assert first.user_id == user_id(meet, email) and first.scopes == APPLICATION_SCOPES
        assert abs((first.expires_at - meet.now()).total_seconds() - 3600) < 5
        assert first.renew_after == first.expires_at - timedelta(seconds=60)
        assert token(target, other).user_id == user_id(meet, other)
        assert issued(server) == before + 2

        meet.advance_clock(3600 - 120)
        assert token(target, email) is first
        meet.advance_clock(90)                                             # inside the renewal margin
        renewed = token(target, email)
        assert renewed is not first and renewed.access_token != first.access_token
        assert issued(server) == before + 3
        assert token(target, email) is renewed


def test_token_expired_on_a_room_call_fetches_a_new_token_once(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    # Our clock stays behind Meet's: the cached token looks fresh to us and expired to Meet.
    with make_target(server, clock=server.sandbox.now) as target:
        stale = token(target, email)
        meet.advance_clock(3600)
        before = issued(server)
        created = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
        assert issued(server) == before + 1
        assert token(target, email) is not stale
        assert [item.id for item in meet.rooms_of(user_id(meet, email))] == [created.id]


def test_a_token_still_expired_after_one_renewal_is_a_refusal(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)

    def expire_every_token(request: httpx.Request, response: httpx.Response) -> None:
        if request.url.path.endswith("/application/token/"):
            meet.advance_clock(3601)

    transport = Recording(after=expire_every_token)
    with make_target(server, clock=server.sandbox.now, transport=transport) as target:
        rooms_before = len(meet.rooms())
        outcome = target.create_room(email, access_level=AccessLevel.TRUSTED)
    assert isinstance(outcome, VisioRefusal)
    assert (outcome.reason, outcome.status) == (VisioRefusalReason.TOKEN_EXPIRED, 401)
    assert transport.count("POST", "/application/token/") == 2
    assert transport.count("POST", "/rooms/") == 2
    assert len(meet.rooms()) == rooms_before


# ----------------------------------------------------------------------------------------------- encodings

def test_every_request_body_is_json(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    transport = Recording()
    with make_target(server, transport=transport) as target:
        room(target.create_room(email, access_level=AccessLevel.TRUSTED, configuration={"everyone_can_mute": True}))
    posts = [media for (method, _path), media in zip(transport.calls, transport.media, strict=True)
             if method == "POST"]
    assert posts == ["application/json", "application/json"]                 # the token, then the room


@pytest.mark.parametrize("version", ["v1.27.0", "main"])
def test_tokens_and_rooms_against_each_meet_version(server: SandboxServer, meet: MeetState, version: str) -> None:
    meet.configure(version=version)
    email = new_host(meet)
    with make_target(server) as target:
        made = room(target.create_room(email, access_level=AccessLevel.RESTRICTED))
        assert [item.id for item in target.iter_rooms(email)] == [made.id]
        assert room(target.retrieve_room(email, made.id)) == made


def test_a_form_encoded_token_request_fails_on_v1_27_0_as_an_unexpected_415(server: SandboxServer,
                                                                            meet: MeetState) -> None:
    """The strict sandbox catches the old connector: every token request refused, said as Meet said it."""
    email = new_host(meet)
    before = len(meet.rooms())
    with make_target(server, transport=FormEncodedTokens()) as target, pytest.raises(UnexpectedResponse) as raised:
        target.create_room(email, access_level=AccessLevel.TRUSTED)
    error = raised.value
    assert error.status == 415
    assert error.body == 'Unsupported media type "application/x-www-form-urlencoded" in request.'
    assert str(error) == ('visio: POST application/token/: unexpected HTTP 415: Unsupported media type '
                          '"application/x-www-form-urlencoded" in request.')
    assert len(meet.rooms()) == before
    meet.configure(version="main")                                          # main took form bodies again
    with make_target(server, transport=FormEncodedTokens()) as target:
        room(target.create_room(email, access_level=AccessLevel.TRUSTED))


# ----------------------------------------------------------------------------------------------- rooms

@pytest.mark.parametrize(("level", "switches"), [(AccessLevel.TRUSTED, {}), (AccessLevel.RESTRICTED, {}),
                                                 (AccessLevel.PUBLIC, {"allow_public": True})],
                         ids=["trusted", "restricted", "public when allowed"])
def test_create_room_returns_a_room_owned_by_the_host(server: SandboxServer, meet: MeetState, level: AccessLevel,
                                                      switches: dict[str, Any]) -> None:
    meet.configure(**switches)
    email = new_host(meet, "Helene")
    owner = user_id(meet, email)
    transport = Recording()
    with make_target(server, transport=transport) as target:
        made = room(target.create_room(email, access_level=level,
                                       configuration={"everyone_can_mute": False}))
    # The 201's Location (the room's link) is not followed: a token request and one creation, nothing else.
    assert [method for method, _path in transport.calls] == ["POST", "POST"]
    stored = meet.room(made.id)
    assert stored is not None and stored.accesses == {owner: "owner"}
    assert made.access_level is level and stored.access_level == level.value
    assert (made.owner_email, made.owner_user_id) == (email, owner)
    assert made.slug == stored.slug == made.name and made.has_generated_slug
    assert made.url == f"{server.url}/visio/{made.slug}"
    assert made.telephony is not None and made.telephony.pin_code == stored.pin_code
    assert (made.telephony.phone_number, made.telephony.default_country) == ("+33100000000", "FR")
    assert made.configuration == {"everyone_can_mute": False}
    assert [item.id for item in meet.rooms() if owner in item.accesses] == [made.id]


def test_retrieve_room_and_iter_rooms_read_back_every_room_once(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    transport = Recording()
    with make_target(server, transport=transport) as target:
        made = [room(target.create_room(email, access_level=AccessLevel.RESTRICTED)) for _ in range(45)]
        assert room(target.retrieve_room(email, made[7].id)) == made[7]
        listed = list(target.iter_rooms(email))
    assert sorted(item.id for item in listed) == sorted(item.id for item in made)
    assert len({item.id for item in listed}) == 45
    assert {item.id: item for item in listed} == {item.id: item for item in made}
    assert [item.name for item in listed] == sorted(item.name for item in listed)
    assert transport.count("GET", "/rooms/") == 3                            # pages of 20, 20 and 5
    assert transport.count("POST", "/application/token/") == 1
    assert all(path.endswith("/") for _method, path in transport.calls)     # never a path without its slash


def test_a_room_is_read_back_by_an_upper_case_id(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    with make_target(server) as target:
        made = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
        again = room(target.retrieve_room(email, made.id.upper()))
    assert again == made and again.id == made.id                            # Meet answers with the canonical id


def test_iter_rooms_of_a_host_without_rooms_is_empty(server: SandboxServer, meet: MeetState) -> None:
    with make_target(server) as target:
        assert list(target.iter_rooms(new_host(meet))) == []


# ----------------------------------------------------------------------------------------------- refusals

def _shared(state: MeetState) -> str:
    email = new_host(state, "partage")
    state.add_user(email.upper(), sub=uuid.uuid4().hex)
    return email


def _race_twice(state: MeetState) -> str:
    state.configure(allow_user_creation=True, fallback_to_email=True, sub_immutable=False)
    email = unknown_address()
    state.simulate_creation_race(email, times=2)
    return email


def _inactive(state: MeetState) -> str:
    state.set_application(SANDBOX_CLIENT_ID, active=False)
    return new_host(state)


def _disabled(state: MeetState) -> str:
    state.configure(applications_enabled=False)
    return new_host(state)


# (id, host from the state, client, access level, configuration, reason, status); the first eight are refused
# at the token, so listing the host's rooms is refused alike.
CREATE_REFUSALS: list[tuple[str, Callable[[MeetState], str], tuple[str, str], AccessLevel, Any,
                            VisioRefusalReason, int]] = [
    ("domain not allowed", lambda s: new_host(s, domain=ALIAS), (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
     AccessLevel.TRUSTED, None, VisioRefusalReason.DOMAIN_NOT_ALLOWED, 403),
    ("duplicate users", _shared, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.DUPLICATE_USERS, 400),
    ("user not found", lambda _s: unknown_address(), (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET),
     AccessLevel.TRUSTED, None, VisioRefusalReason.USER_NOT_FOUND, 404),
    ("invalid credentials", new_host, (SANDBOX_CLIENT_ID, "wrong-secret"), AccessLevel.TRUSTED, None,
     VisioRefusalReason.INVALID_CREDENTIALS, 401),
    ("unknown application", new_host, ("x" * 40, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.INVALID_CREDENTIALS, 401),
    ("application inactive", _inactive, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.APPLICATION_INACTIVE, 401),
    ("not an e-mail", lambda _s: "claire.martin", (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED,
     None, VisioRefusalReason.INVALID_SCOPE, 400),
    ("applications disabled", _disabled, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.APPLICATIONS_DISABLED, 404),
    ("public not allowed", new_host, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.PUBLIC, None,
     VisioRefusalReason.PUBLIC_NOT_ALLOWED, 400),
    ("creation race twice", _race_twice, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.USER_CREATION_RACE, 409),
    ("configuration refused", new_host, (SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET), AccessLevel.TRUSTED,
     {"recording": True}, VisioRefusalReason.INVALID_CONFIGURATION, 400),
    ("missing scope", new_host, (READER_ID, READER_SECRET), AccessLevel.TRUSTED, None,
     VisioRefusalReason.MISSING_SCOPE, 403),
]
TOKEN_LEVEL = 8


@pytest.mark.parametrize(("host", "client", "level", "configuration", "reason", "status", "at_token"),
                         [(*case[1:], index < TOKEN_LEVEL) for index, case in enumerate(CREATE_REFUSALS)],
                         ids=[case[0] for case in CREATE_REFUSALS])
def test_every_documented_refusal_is_a_value_with_its_reason(
        server: SandboxServer, meet: MeetState, host: Callable[[MeetState], str], client: tuple[str, str],
        level: AccessLevel, configuration: Any, reason: VisioRefusalReason, status: int, at_token: bool) -> None:
    email = host(meet)
    rooms_before = len(meet.rooms())
    with make_target(server, client_id=client[0], client_secret=client[1]) as target:
        outcome = target.create_room(email, access_level=level, configuration=configuration)
        assert isinstance(outcome, VisioRefusal), outcome
        assert (outcome.reason, outcome.status) == (reason, status)
        if at_token:
            assert _iter_refusal(target, email) == outcome
    assert len(meet.rooms()) == rooms_before


def _iter_refusal(target: VisioRoomTarget, email: str) -> VisioRefusal:
    with pytest.raises(VisioRefused) as raised:
        list(target.iter_rooms(email))
    return raised.value.refusal


def test_public_and_configuration_refusals_concern_the_room_only(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    with make_target(server) as target:
        assert list(target.iter_rooms(email)) == []
        refused = target.create_room(email, access_level=AccessLevel.PUBLIC)
        assert isinstance(refused, VisioRefusal) and refused.concerns_host
        assert refused.detail == "access_level: Public rooms are disabled for the external API."


@pytest.mark.parametrize(("configuration", "detail"), [
    ({"recording": True}, "configuration: recording: Extra inputs are not permitted"),
    ({"can_publish_sources": ["camera", "hologram"], "mute": 1},
     "configuration: can_publish_sources.1: Input should be 'camera', 'microphone', 'screen_share' or "
     "'screen_share_audio' mute: Extra inputs are not permitted"),
], ids=["extra key", "two errors"])
def test_pydantic_error_objects_are_read_into_the_refusal(server: SandboxServer, meet: MeetState,
                                                          configuration: dict[str, Any], detail: str) -> None:
    email = new_host(meet)
    with make_target(server) as target:
        refused = target.create_room(email, access_level=AccessLevel.TRUSTED, configuration=configuration)
    assert isinstance(refused, VisioRefusal)
    assert (refused.reason, refused.status, refused.detail) == (VisioRefusalReason.INVALID_CONFIGURATION, 400, detail)
    assert refused.concerns_host and meet.rooms_of(user_id(meet, email)) == []


def test_a_single_creation_race_is_retried_once(server: SandboxServer, meet: MeetState) -> None:
    meet.configure(allow_user_creation=True, fallback_to_email=True, sub_immutable=False)
    email = unknown_address()
    meet.simulate_creation_race(email, times=1)
    with make_target(server) as target:
        made = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
    (user,) = meet.users_with_email(email)
    assert (user.origin, user.sub, made.owner_user_id) == ("provisional", None, user.id)


def test_refusals_on_room_calls_after_the_token_was_issued(server: SandboxServer, meet: MeetState) -> None:
    email, other = new_host(meet), new_host(meet)
    with make_target(server) as target:
        mine = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
        foreign = target.retrieve_room(other, mine.id)
        assert isinstance(foreign, VisioRefusal) and (foreign.reason, foreign.status) == (
            VisioRefusalReason.FORBIDDEN, 403)
        for wrong in (mine.slug, str(uuid.uuid4())):
            missing = target.retrieve_room(email, wrong)
            assert isinstance(missing, VisioRefusal) and missing.reason is VisioRefusalReason.NOT_FOUND

        meet.set_application(SANDBOX_CLIENT_ID, active=False)              # the cached token now names it
        inactive = target.create_room(email, access_level=AccessLevel.TRUSTED)
        assert isinstance(inactive, VisioRefusal) and inactive.reason is VisioRefusalReason.APPLICATION_INACTIVE
        assert not inactive.concerns_host
        meet.set_application(SANDBOX_CLIENT_ID, active=True)

        meet.set_user_active(user_id(meet, email), False)
        assert _iter_refusal(target, email).reason is VisioRefusalReason.USER_INACTIVE


# ----------------------------------------------------------------------------------------------- domains

def test_check_domain_verdicts(server: SandboxServer, meet: MeetState) -> None:
    with make_target(server) as target:
        email = new_host(meet)
        allowed = target.check_domain(email)
        assert (allowed.domain, allowed.verdict, allowed.user_id) == (DOMAIN, DomainVerdict.ALLOWED,
                                                                      user_id(meet, email))
        assert allowed.domain_allowed and allowed.may_have_created_user

        alias = target.check_domain(new_host(meet, domain=ALIAS))
        assert (alias.domain, alias.verdict, alias.domain_allowed) == (ALIAS, DomainVerdict.NOT_ALLOWED, False)
        assert alias.refusal is not None and alias.refusal.reason is VisioRefusalReason.DOMAIN_NOT_ALLOWED

        first = target.check_domain(unknown_address())
        assert (first.verdict, first.domain_allowed, first.precreation_enabled) == (
            DomainVerdict.USER_MUST_LOG_IN_FIRST, True, False)

        shared = target.check_domain(_shared(meet))
        assert (shared.verdict, shared.domain_allowed) == (DomainVerdict.DUPLICATE_USERS, True)

    with make_target(server, client_secret="wrong") as wrong:
        refused = wrong.check_domain(new_host(meet))
        assert (refused.verdict, refused.domain_allowed) == (DomainVerdict.REFUSED, False)


# ----------------------------------------------------------------------------------------------- faults

THROTTLE = FaultRates(throttle=1.0, retry_after_seconds=1)
SERVER_ERROR = FaultRates(server_error=1.0)
TRUNCATE = FaultRates(truncate=1.0)
TIMEOUT = FaultRates(timeout=1.0)       # the sandbox's default: held until the client's own timeout fires


def test_token_calls_are_retried_through_injected_faults(server: SandboxServer, meet: MeetState) -> None:
    stats, sleeps = RetryStats(), Sleeps()
    plan = FaultPlan(server, [THROTTLE, SERVER_ERROR, TRUNCATE, TIMEOUT])
    email = new_host(meet)
    with make_target(server, throttle=plan, stats=stats, sleep=sleeps, timeout=0.2) as target:
        assert token(target, email).user_id == user_id(meet, email)
    assert plan.attempts == 5
    assert (stats.counts["rate_limited"], stats.counts["transient"]) == (1, 3)
    assert sleeps.waits[0] == 1.0                                           # Retry-After honoured


def test_list_pages_are_retried_and_each_room_comes_once(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    with make_target(server) as target:
        made = {room(target.create_room(email, access_level=AccessLevel.TRUSTED)).id for _ in range(25)}
    # Attempts: page 1 truncated, page 1, page 2 throttled, page 2 answered 500, page 2.
    plan_after_token = [TRUNCATE, NO_FAULTS, THROTTLE, SERVER_ERROR]
    plan = FaultPlan(server)
    stats = RetryStats()
    with make_target(server, throttle=plan, stats=stats) as target:
        target.token_for(email)
        plan.schedule(plan_after_token)
        listed = [item.id for item in target.iter_rooms(email)]
    assert sorted(listed) == sorted(made) and len(listed) == 25
    assert plan.attempts == 5 and stats.counts["transient"] == 2 and stats.throttled == 1


# (id, fault on the creation attempt, rooms afterwards). A timed-out creation is processed once the client has
# given up, as a slow real server would: the room exists though the client never heard of it.
UNCERTAIN = [("server error", SERVER_ERROR, 0), ("truncated 201", TRUNCATE, 1), ("timeout", TIMEOUT, 1)]


@pytest.mark.parametrize(("fault", "rooms"), [case[1:] for case in UNCERTAIN], ids=[case[0] for case in UNCERTAIN])
def test_a_creation_that_may_have_happened_is_uncertain_and_not_retried(server: SandboxServer, meet: MeetState,
                                                                        fault: FaultRates, rooms: int) -> None:
    email = new_host(meet)
    owner = user_id(meet, email)
    plan = FaultPlan(server, [NO_FAULTS, fault])                             # the token, then the creation
    started = time.monotonic()
    with make_target(server, throttle=plan, timeout=0.3) as target, pytest.raises(RoomCreationUncertain):
        target.create_room(email, access_level=AccessLevel.TRUSTED)
    assert time.monotonic() - started < 10                                   # our timeout fired, not the sandbox's cap
    assert plan.attempts == 2                                                # no second creation attempt
    deadline = time.monotonic() + 10
    while len(meet.rooms_of(owner)) < rooms and time.monotonic() < deadline:
        time.sleep(0.02)                                                     # the abandoned request lands
    assert len(meet.rooms_of(owner)) == rooms
    if fault is TIMEOUT:
        assert server.sandbox.stats["meet:timeout:client_gave_up"] >= 1
        server.sandbox.faults.configure(NO_FAULTS)                            # the plan leaves its last rates
        with make_target(server) as target:                                   # reconciliation finds it
            assert [item.id for item in target.iter_rooms(email)] == [item.id for item in meet.rooms_of(owner)]


def test_a_throttled_creation_is_retried_and_creates_one_room(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    plan = FaultPlan(server, [NO_FAULTS, THROTTLE])
    sleeps = Sleeps()
    with make_target(server, throttle=plan, sleep=sleeps) as target:
        made = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
    assert plan.attempts == 3 and sleeps.waits == [1.0]
    assert [item.id for item in meet.rooms_of(user_id(meet, email))] == [made.id]


def test_a_creation_whose_connection_was_never_made_is_retried(server: SandboxServer, meet: MeetState) -> None:
    email = new_host(meet)
    refused = {"done": False}

    class RefuseFirstCreation(Recording):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path.endswith("/rooms/") and not refused["done"]:
                refused["done"] = True
                raise httpx.ConnectError("connection refused", request=request)
            return super().handle_request(request)

    transport = RefuseFirstCreation()
    with make_target(server, transport=transport) as target:
        made = room(target.create_room(email, access_level=AccessLevel.TRUSTED))
    assert refused["done"] and transport.count("POST", "/rooms/") == 1
    assert [item.id for item in meet.rooms_of(user_id(meet, email))] == [made.id]


# ----------------------------------------------------------------------------------------------- privacy

def test_logs_and_errors_carry_no_address_token_or_secret(server: SandboxServer, meet: MeetState,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hosts = [new_host(meet, "Claire.Martin"), new_host(meet, domain=ALIAS), unknown_address(), _shared(meet)]
    texts: list[str] = []
    tokens: list[str] = []
    plan = FaultPlan(server)
    with make_target(server, clock=server.sandbox.now, throttle=plan) as target:
        for email in hosts:
            outcome = target.create_room(email, access_level=AccessLevel.PUBLIC)
            if isinstance(outcome, VisioRefusal):
                texts.append(outcome.detail)
            try:
                list(target.iter_rooms(email))
            except ConnectorError as error:
                texts.append(str(error))
        made = room(target.create_room(hosts[0], access_level=AccessLevel.TRUSTED))
        tokens.append(token(target, hosts[0]).access_token)
        meet.advance_clock(3600)                                              # a renewal is logged
        room(target.create_room(hosts[0], access_level=AccessLevel.TRUSTED))
        tokens.append(token(target, hosts[0]).access_token)
        plan.schedule([SERVER_ERROR])
        with pytest.raises(RoomCreationUncertain) as uncertain:
            target.create_room(hosts[0], access_level=AccessLevel.TRUSTED)
        server.sandbox.faults.configure(NO_FAULTS)                            # the plan leaves its last rates
        texts.append(str(uncertain.value))
        texts.append(repr(target.config))
        texts.append(repr(token(target, hosts[0])))
    with make_target(server, client_secret=SANDBOX_CLIENT_SECRET[::-1]) as wrong:
        refused = wrong.create_room(hosts[0], access_level=AccessLevel.TRUSTED)
        assert isinstance(refused, VisioRefusal)
        texts.append(refused.detail)

    texts.extend(record.getMessage() for record in caplog.records)
    assert any(made.id in text for text in texts)                             # the logs do say what happened
    corpus = "\n".join(texts).lower()
    for secret in [*hosts, *tokens, SANDBOX_CLIENT_SECRET, SANDBOX_CLIENT_SECRET[::-1]]:
        assert secret.lower() not in corpus
    assert "@" not in corpus


def test_a_refusal_that_quotes_an_address_is_redacted() -> None:
    """Meet's documented answers quote no address; a future one that does must not leak it into reports."""
    quoted = "claire.martin@culture.example.gouv.fr"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"detail": f"No user for {quoted}."})

    config = VisioConfig(api_url="http://visio.test/external-api/v1.0/", client_id="c", client_secret="s")
    with VisioRoomTarget(config, throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(),
                         transport=httpx.MockTransport(answer)) as target:
        refused = target.token_for(quoted)
    assert isinstance(refused, VisioRefusal)
    assert refused.detail == "no token endpoint here: applications disabled, External API off or a wrong api_url"
    with VisioRoomTarget(config, throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(),
                         transport=httpx.MockTransport(
                             lambda _r: httpx.Response(403, json={"error": f"{quoted} is not allowed"}))) as target:
        forbidden = target.token_for(quoted)
    assert isinstance(forbidden, VisioRefusal) and forbidden.reason is VisioRefusalReason.DOMAIN_NOT_ALLOWED
    assert forbidden.detail == "<e-mail> is not allowed"


# ----------------------------------------------------------------------------------------------- listing bound

def _host_with_rooms(state: MeetState, count: int) -> str:
    email = new_host(state)
    (owner,) = state.users_with_email(email)
    for _ in range(count):
        state.create_room(owner, client_id=SANDBOX_CLIENT_ID, access_level="trusted", configuration={})
    return email


@pytest.mark.parametrize(("bug", "reason"), [("repeat_page_token", ReasonCode.LISTING_CURSOR_REPEATED),
                                             ("endless_pages", ReasonCode.LISTING_UNBOUNDED)])
def test_a_listing_that_does_not_end_as_announced_fails_with_its_reason(sandbox_factory: Any, bug: str,
                                                                        reason: ReasonCode) -> None:
    broken = sandbox_factory(systems=frozenset({"meet"}), tls_port=None, broken=frozenset({bug}))
    email = _host_with_rooms(state_of(broken.sandbox), 25)                  # count 25: two pages of 20
    transport = Recording()
    listed: list[VisioRoom] = []
    with make_target(broken, transport=transport) as target, pytest.raises(ListingFailed) as raised:
        listed.extend(target.iter_rooms(email))
    assert raised.value.reason is reason
    pages = transport.count("GET", "/rooms/")
    assert pages == (2 if bug == "repeat_page_token" else 5)                # stopped at once, or past 2 + 2 pages
    assert len({item.id for item in listed}) == 25


def test_the_same_listing_ends_on_a_sound_sandbox(server: SandboxServer, meet: MeetState) -> None:
    email = _host_with_rooms(meet, 25)
    with make_target(server) as target:
        assert len({item.id for item in target.iter_rooms(email)}) == 25


# ----------------------------------------------------------------------------------------------- unexpected answers

QUOTED = "claire.martin@culture.example.gouv.fr"


def _token_answer() -> httpx.Response:
    claims = {"user_id": str(uuid.uuid4()), "iat": 1, "exp": 3601, "scope": " ".join(APPLICATION_SCOPES)}
    return httpx.Response(200, json={"access_token": encode_jwt(claims, "k"), "token_type": "Bearer",
                                     "expires_in": 3600, "scope": " ".join(APPLICATION_SCOPES)})


def _mocked(rooms: Callable[[httpx.Request], httpx.Response],
            token: Callable[[], httpx.Response] = _token_answer) -> tuple[VisioRoomTarget, list[str]]:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        return token() if request.url.path.endswith("/application/token/") else rooms(request)

    config = VisioConfig(api_url="http://visio.test/external-api/v1.0/", client_id="c", client_secret="s")
    target = VisioRoomTarget(config, throttle=NoThrottle(), retry=TEST_RETRY, stats=RetryStats(),
                             transport=httpx.MockTransport(answer), sleep=Sleeps())
    return target, seen


# (id, token answer, room answer, where, status, excerpt)
UNEXPECTED: list[tuple[str, Callable[[], httpx.Response], Callable[[httpx.Request], httpx.Response], str, int,
                       str]] = [
    ("token 415", lambda: httpx.Response(415, json={"detail": "Unsupported media type \"x\" in request."}),
     lambda _r: httpx.Response(201), "POST application/token/", 415, 'Unsupported media type "x" in request.'),
    ("token redirected", lambda: httpx.Response(301, headers={"Location": "https://visio.test/x/"}),
     lambda _r: httpx.Response(201), "POST application/token/", 301, ""),
    ("token behind a proxy page", lambda: httpx.Response(
        407, text=f"<html><body><h1>Proxy Authentication Required</h1><p>{QUOTED}</p></body></html>",
        headers={"Content-Type": "text/html"}),
     lambda _r: httpx.Response(201), "POST application/token/", 407, "Proxy Authentication Required <e-mail>"),
    ("rooms 405", _token_answer, lambda _r: httpx.Response(405, json={"detail": 'Method "POST" not allowed.'}),
     "POST rooms/", 405, 'Method "POST" not allowed.'),
    ("rooms 415 quoting an address", _token_answer,
     lambda _r: httpx.Response(415, json={"detail": f"{QUOTED} may not send this"}), "POST rooms/", 415,
     "<e-mail> may not send this"),
]


@pytest.mark.parametrize(("token_answer", "room_answer", "where", "status", "excerpt"),
                         [case[1:] for case in UNEXPECTED], ids=[case[0] for case in UNEXPECTED])
def test_an_undocumented_status_is_an_unexpected_response(token_answer: Callable[[], httpx.Response],
                                                          room_answer: Callable[[httpx.Request], httpx.Response],
                                                          where: str, status: int, excerpt: str) -> None:
    target, seen = _mocked(room_answer, token_answer)
    with target, pytest.raises(UnexpectedResponse) as raised:
        target.create_room(QUOTED, access_level=AccessLevel.TRUSTED)
    error = raised.value
    assert (error.status, error.body) == (status, excerpt)
    assert str(error).startswith(f"visio: {where}: unexpected HTTP {status}")
    assert "@" not in str(error)
    assert len(seen) == (1 if where.startswith("POST application") else 2)  # no retry, no redirect followed


def test_a_listing_answered_with_an_undocumented_status() -> None:
    target, seen = _mocked(lambda _r: httpx.Response(302, headers={"Location": "http://visio.test/login/"}))
    with target, pytest.raises(UnexpectedResponse) as raised:
        list(target.iter_rooms(QUOTED))
    assert raised.value.status == 302 and seen == ["POST /external-api/v1.0/application/token/",
                                                   "GET /external-api/v1.0/rooms/"]


def test_a_5xx_left_after_the_retries_stays_transient() -> None:
    target, seen = _mocked(lambda _r: httpx.Response(201), lambda: httpx.Response(502, text="Bad Gateway"))
    with target, pytest.raises(ConnectorError) as raised:
        target.token_for(QUOTED)
    assert not isinstance(raised.value, UnexpectedResponse) and "HTTP 502" in str(raised.value)
    assert len(seen) == TEST_RETRY.attempts
