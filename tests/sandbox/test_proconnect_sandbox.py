"""The sandbox's ProConnect against shared/contracts/proconnect-login.md: discovery, a whole login with authlib's
OAuth2 client, each refusal of §2–§4 and §9 over HTTP (redirect URI exact, state/nonce length, scopes, PKCE S256,
prompt=none, essential ACR, client_secret_post only, single-use expiring codes revoking on replay), signed ID token
and userinfo (RS256, ES256, HS256, JSON), key rotation, end-session, and the login page a person or a browser test
uses."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey

from sandbox.meet import state_of
from sandbox.proconnect import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ProConnectClient, provider_of
from sandbox.server import SandboxConfig, SandboxServer

CALLBACK = "http://127.0.0.1:8080/login/callback"
LOGOUT = "http://127.0.0.1:8080/logout/callback"


@pytest.fixture(scope="module")
def server(contract_ministry: tuple[Path, dict[str, Any]]) -> Iterator[SandboxServer]:
    config = SandboxConfig(data_dir=contract_ministry[0], tls_port=None, systems=frozenset({"proconnect", "meet"}))
    with SandboxServer(config) as started:
        provider = provider_of(started.sandbox)
        for alg, userinfo in (("ES256", "ES256"), ("HS256", "HS256"), ("RS256", None)):
            provider.register_client(ProConnectClient(f"client-{alg}-{userinfo}", f"secret-{alg}-" + "x" * 32,
                                                      (CALLBACK,), (LOGOUT,), alg, userinfo))
        provider.register_client(ProConnectClient("no-ou", "secret-no-ou", (CALLBACK,), (LOGOUT,)))
        yield started


def _issuer(server: SandboxServer) -> str:
    return f"{server.url}/proconnect/api/v2"


def _agent(server: SandboxServer, index: int = 0) -> str:
    return provider_of(server.sandbox).agents(limit=index + 1)[index].email


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _params(**changes: Any) -> dict[str, str]:
    params = {"response_type": "code", "client_id": DEFAULT_CLIENT_ID, "redirect_uri": CALLBACK,
              "scope": "openid email given_name usual_name uid siret idp_id organizational_unit",
              "state": secrets.token_urlsafe(32), "nonce": secrets.token_urlsafe(32)}
    params.update(changes)
    return {key: value for key, value in params.items() if value is not None}


def _authorize(server: SandboxServer, email: str | None = None, **changes: Any) -> httpx.Response:
    """An authorization request (the next identity set first when `email` is given); the answer, not followed."""
    if email is not None:
        provider_of(server.sandbox).set_next_identity(email)
    return httpx.get(f"{_issuer(server)}/authorize", params=_params(**changes), follow_redirects=False)


def _code(server: SandboxServer, email: str, **changes: Any) -> str:
    answer = _authorize(server, email, **changes)
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert "code" in query, query
    return query["code"][0]


def _redeem(server: SandboxServer, code: str, *, client_id: str = DEFAULT_CLIENT_ID,
            secret: str = DEFAULT_CLIENT_SECRET, **changes: Any) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": client_id,
            "client_secret": secret}
    form.update(changes)
    return httpx.post(f"{_issuer(server)}/token", data={k: v for k, v in form.items() if v is not None})


def _keys(server: SandboxServer) -> KeySet:
    return KeySet.import_key_set(httpx.get(f"{_issuer(server)}/jwks").json())


def _error(answer: httpx.Response) -> str:
    assert answer.status_code == 303, answer.text
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    return query["error"][0]


def test_discovery_advertises_what_the_federation_does(server: SandboxServer) -> None:
    document = httpx.get(f"{_issuer(server)}/.well-known/openid-configuration").json()
    assert document["issuer"] == _issuer(server) and document["issuer"].endswith("/api/v2")
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_post", "private_key_jwt"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert set(document["id_token_signing_alg_values_supported"]) == {"HS256", "ES256", "RS256"}
    assert {"eidas1", "eidas1-mfa", "eidas2"} <= set(document["acr_values_supported"])
    assert "offline_access" not in document["scopes_supported"]
    assert document["end_session_endpoint"] == f"{_issuer(server)}/session/end"


def test_a_whole_login_with_authlib_gives_signed_tokens_with_the_contract_s_claims(server: SandboxServer) -> None:
    from authlib.integrations.httpx_client import OAuth2Client

    email = _agent(server)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(32)
    client = OAuth2Client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, scope=_params()["scope"],
                          redirect_uri=CALLBACK, token_endpoint_auth_method="client_secret_post",
                          code_challenge_method="S256")
    url, state = client.create_authorization_url(f"{_issuer(server)}/authorize", code_verifier=verifier,
                                                 nonce=nonce, state=secrets.token_urlsafe(32))
    provider_of(server.sandbox).set_next_identity(email)
    back = httpx.get(url, follow_redirects=False).headers["location"]
    assert back.startswith(CALLBACK) and parse_qs(urlsplit(back).query)["state"] == [state]
    token = client.fetch_token(f"{_issuer(server)}/token", authorization_response=back, code_verifier=verifier)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600 and token["refresh_token"]
    keys = _keys(server)
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert id_token.header["kid"].startswith("rsa-")
    claims = id_token.claims
    assert set(claims) == {"iss", "aud", "exp", "iat", "sub", "nonce", "acr", "auth_time", "sid", "at_hash"}
    assert claims["nonce"] == nonce and claims["acr"] == "eidas1" and claims["aud"] == DEFAULT_CLIENT_ID
    assert claims["iss"] == _issuer(server)
    digest = hashlib.sha256(token["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # The sub Visio will see for this agent.
    assert claims["sub"] == state_of(server.sandbox).sub_for(email)
    answer = client.get(f"{_issuer(server)}/userinfo")
    assert answer.headers["content-type"] == "application/jwt; charset=utf-8"
    userinfo = jwt.decode(answer.text, keys, algorithms=["RS256"]).claims
    assert userinfo["sub"] == claims["sub"] and userinfo["email"] == email and userinfo["aud"] == DEFAULT_CLIENT_ID
    assert userinfo["siret"] == server.sandbox.manifest["tenant"]["siret"] and userinfo["idp_acr"] == "eidas1"
    assert userinfo["organizational_unit"] and userinfo["given_name"] and userinfo["usual_name"]
    assert "phone_number" not in userinfo


@pytest.mark.parametrize("changes, error", [
    ({"state": "short"}, "invalid_request"),
    ({"nonce": "short"}, "invalid_request"),
    ({"nonce": None}, "invalid_request"),
    ({"scope": "openid email offline_access"}, "invalid_scope"),
    ({"scope": "email"}, "invalid_request"),
    ({"client_id": "no-ou"}, "invalid_scope"),                       # organizational_unit is granted, not given
    ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
    ({"prompt": "none"}, "login_required"),
    ({"claims": '{"id_token":{"acr":{"essential":true,"values":["eidas2"]}}}'}, "access_denied"),
    ({"claims": "{not json"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_authorize_refusals_go_back_to_the_registered_uri_with_the_state(server: SandboxServer,
                                                                         changes: dict[str, Any], error: str) -> None:
    params = _params(**changes)
    answer = httpx.get(f"{_issuer(server)}/authorize", params=params, follow_redirects=False)
    assert _error(answer) == error
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    if "state" in params:
        assert parse_qs(urlsplit(location).query)["state"] == [params["state"]]


@pytest.mark.parametrize("changes", [{"redirect_uri": CALLBACK + "/"}, {"redirect_uri": "https://evil.example/cb"},
                                     {"client_id": "unknown-client"}])
def test_an_unregistered_redirect_uri_or_client_is_a_page_never_a_redirect(server: SandboxServer,
                                                                           changes: dict[str, Any]) -> None:
    answer = _authorize(server, **changes)
    assert answer.status_code == 400 and "location" not in answer.headers
    assert 'id="problem"' in answer.text


def test_codes_are_single_use_bound_and_short_lived(server: SandboxServer) -> None:
    email = _agent(server)
    code = _code(server, email)
    assert _redeem(server, code, redirect_uri=CALLBACK + "/").json()["error"] == "invalid_grant"
    code = _code(server, email)
    first = _redeem(server, code)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert httpx.get(f"{_issuer(server)}/userinfo", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    replay = _redeem(server, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refused = httpx.get(f"{_issuer(server)}/userinfo", headers={"Authorization": f"Bearer {access}"})
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    # Expiry on the stand-in's clock.
    code = _code(server, email)
    httpx.post(f"{server.url}/_sandbox/proconnect/clock", json={"advance_seconds": 61})
    assert _redeem(server, code).json()["error"] == "invalid_grant"
    # Another client's code.
    code = _code(server, email)
    other = _redeem(server, code, client_id="client-ES256-ES256", secret="secret-ES256-" + "x" * 32)
    assert other.json()["error"] == "invalid_grant"


def test_the_token_endpoint_takes_client_secret_post_only_and_checks_pkce(server: SandboxServer) -> None:
    email = _agent(server)
    code = _code(server, email)
    basic = httpx.post(f"{_issuer(server)}/token", auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
                       data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    assert basic.status_code == 401 and basic.json()["error"] == "invalid_client"
    both = httpx.post(f"{_issuer(server)}/token", auth=(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET})
    assert both.status_code == 401 and both.json()["error"] == "invalid_client"   # Basic refused even so
    assert _redeem(server, _code(server, email), secret="wrong").status_code == 401
    verifier, challenge = _pkce()
    with_challenge = {"code_challenge": challenge, "code_challenge_method": "S256"}
    assert _redeem(server, _code(server, email, **with_challenge)).json()["error"] == "invalid_grant"
    assert _redeem(server, _code(server, email, **with_challenge),
                   code_verifier=secrets.token_urlsafe(48)).json()["error"] == "invalid_grant"
    assert _redeem(server, _code(server, email), code_verifier=verifier).json()["error"] == "invalid_grant"
    assert _redeem(server, _code(server, email, **with_challenge), code_verifier=verifier).status_code == 200


@pytest.mark.parametrize("client_id, alg, userinfo", [("client-ES256-ES256", "ES256", "ES256"),
                                                      ("client-HS256-HS256", "HS256", "HS256"),
                                                      ("client-RS256-None", "RS256", None)])
def test_each_client_gets_its_algorithms(server: SandboxServer, client_id: str, alg: str,
                                         userinfo: str | None) -> None:
    secret = next(c.client_secret for c in provider_of(server.sandbox).clients() if c.client_id == client_id)
    code = _code(server, _agent(server, 1), client_id=client_id, scope="openid email")
    token = _redeem(server, code, client_id=client_id, secret=secret).json()
    keys: Any = OctKey.import_key(secret) if alg == "HS256" else _keys(server)
    assert jwt.decode(token["id_token"], keys, algorithms=[alg]).claims["aud"] == client_id
    answer = httpx.get(f"{_issuer(server)}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    if userinfo is None:
        assert answer.headers["content-type"] == "application/json" and answer.json()["email"]
        assert "given_name" not in answer.json()      # only what the scopes release
    else:
        assert jwt.decode(answer.text, keys, algorithms=[userinfo]).claims["email"] == _agent(server, 1)


def test_rotation_publishes_a_new_key_and_keeps_the_old_one(server: SandboxServer) -> None:
    email = _agent(server)
    before = _redeem(server, _code(server, email)).json()["id_token"]
    new_kid = httpx.post(f"{server.url}/_sandbox/proconnect/keys").json()["kid"]
    after = _redeem(server, _code(server, email)).json()["id_token"]
    keys = _keys(server)
    assert jwt.decode(after, keys, algorithms=["RS256"]).header["kid"] == new_kid
    assert jwt.decode(before, keys, algorithms=["RS256"]).header["kid"] != new_kid


def test_end_session_checks_the_logout_uri_exactly_and_echoes_the_state(server: SandboxServer) -> None:
    id_token = _redeem(server, _code(server, _agent(server))).json()["id_token"]
    state = secrets.token_urlsafe(32)
    answer = httpx.get(f"{_issuer(server)}/session/end", params={
        "id_token_hint": id_token, "post_logout_redirect_uri": LOGOUT, "state": state}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == f"{LOGOUT}?state={state}"
    for target in (LOGOUT + "/", CALLBACK, "https://evil.example/"):
        refused = httpx.get(f"{_issuer(server)}/session/end", params={
            "id_token_hint": id_token, "post_logout_redirect_uri": target, "state": state}, follow_redirects=False)
        assert refused.status_code == 400 and "not registered" in refused.text
    forged = id_token[:-4] + ("AAAA" if not id_token.endswith("AAAA") else "BBBB")
    assert httpx.get(f"{_issuer(server)}/session/end", params={"id_token_hint": forged}).status_code == 400


def test_the_login_page_lists_the_directory_and_takes_a_fia1_address(server: SandboxServer) -> None:
    browser = httpx.Client(base_url=server.url, follow_redirects=False)
    answer = browser.get("/proconnect/api/v2/authorize", params=_params())
    page = browser.get(answer.headers["location"])
    assert page.status_code == 200 and '<html lang="fr">' in page.text and "<title>" in page.text
    listed = re.findall(r'<form id="agents".*?</form>', page.text, re.S)[0]
    emails = re.findall(r'button type="submit" name="email" value="[^"]+" data-email="([^"]+)"', listed)
    assert emails == [agent.email for agent in provider_of(server.sandbox).agents(limit=20)]
    assert 'id="next-page"' in page.text and 'for="free-email"' in page.text and 'id="free-login-submit"' in page.text
    action = re.search(r'<form id="free" method="post" action="([^"]+)"', page.text)
    assert action is not None
    unknown = browser.post(action.group(1), data={"email": "nobody@elsewhere.example"})
    assert unknown.status_code == 400 and 'role="alert"' in unknown.text
    chosen = browser.post(action.group(1), data={"email": "jeanne.test@test.proconnect.gouv.fr"})
    assert chosen.status_code == 303 and chosen.headers["location"].startswith(CALLBACK + "?code=")
    again = browser.post(action.group(1), data={"email": "jeanne.test@test.proconnect.gouv.fr"})
    assert again.status_code == 400                                 # the request was used
    token = _redeem(server, parse_qs(urlsplit(chosen.headers["location"]).query)["code"][0]).json()
    userinfo = httpx.get(f"{_issuer(server)}/userinfo", headers={"Authorization": f"Bearer {token['access_token']}"})
    claims = jwt.decode(userinfo.text, _keys(server), algorithms=["RS256"]).claims
    assert claims["email"] == "jeanne.test@test.proconnect.gouv.fr" and claims["given_name"] == "Jeanne"


def test_the_control_routes(server: SandboxServer) -> None:
    created = httpx.post(f"{server.url}/_sandbox/proconnect/clients", json={
        "client_id": "over-http", "client_secret": "s" * 40, "redirect_uris": ["http://127.0.0.1:9/cb"],
        "post_logout_redirect_uris": []})
    assert created.status_code == 201
    listed = httpx.get(f"{server.url}/_sandbox/proconnect/clients").json()["clients"]
    assert {"over-http", DEFAULT_CLIENT_ID} <= {c["client_id"] for c in listed}
    assert all(c["client_secret"] == "***" for c in listed)
    assert httpx.post(f"{server.url}/_sandbox/proconnect/next-identity",
                      json={"email": "nobody@elsewhere.example"}).status_code == 404
    agents = httpx.get(f"{server.url}/_sandbox/proconnect/agents", params={"limit": 2}).json()
    assert agents["total"] == provider_of(server.sandbox).agent_count() > 300 and len(agents["agents"]) == 2
