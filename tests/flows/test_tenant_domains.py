"""Tenant domains in any spelling (accents, capitals, punycode): validated once in the tenant file, compared in one
normal form by the connectors' internal-domain test (wiring) as by identity routing (tests/flows/test_identities.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.tenant import TenantConfig, TenantFileError
from tests.conftest import REPO

EXAMPLE = (REPO / "tenants" / "example.toml").read_text(encoding="utf-8")
DOMAINS = 'domains = ["culture.example.gouv.fr", "patrimoines.example.gouv.fr"]'
ALIASES = 'alias_domains = ["culture.example.fr"]'
ROUTES = '"culture.example.gouv.fr" = "fi-culture"'
SECRETS = ("BASCULE_ZOOM_CLIENT_SECRET", "BASCULE_GRAPH_CLIENT_SECRET", "BASCULE_WEBEX_ACCESS_TOKEN")


def _load(tmp_path: Path, *changes: tuple[str, str]) -> TenantConfig:
    """The example tenant with `changes`, the files it names beside it."""
    text = (EXAMPLE.replace("../.bascule/sandbox/directory.ldif", "x.ldif")
            .replace("../.bascule/sandbox/tls/cert.pem", "cert.pem"))
    (tmp_path / "x.ldif").write_text("version: 1\n", encoding="utf-8")
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    for old, new in changes:
        assert old in text
        text = text.replace(old, new, 1)
    path = tmp_path / "tenant.toml"
    path.write_text(text, encoding="utf-8")
    return TenantConfig.load(path)


SPELLED = (DOMAINS, 'domains = ["CULTURE.Example.GOUV.fr", "patrimoines.example.gouv.fr", "défense.example.gouv.fr", '
                    '"xn--mairie-couen-heb.fr"]')


def test_domains_in_any_spelling_load_as_written(tmp_path: Path) -> None:
    config = _load(tmp_path, SPELLED, (ALIASES, 'alias_domains = ["Culture.Example.FR."]'),
                   (ROUTES, '"CULTURE.EXAMPLE.GOUV.FR" = "fi-culture"\n"défense.example.gouv.fr" = "fi-armees"\n'
                            '"xn--dfense-bva.example.gouv.fr" = "fi-armees"'))
    assert config.domains[2] == "défense.example.gouv.fr"   # the file's spelling, for display
    assert config.identity.idp_by_domain["CULTURE.EXAMPLE.GOUV.FR"] == "fi-culture"


@pytest.mark.parametrize(("change", "message"), [
    ((DOMAINS, 'domains = ["culture.example.gouv.fr", "patrimoines example.gouv.fr"]'),
     "domains: .*'patrimoines example.gouv.fr' is not a mail domain"),
    ((DOMAINS, 'domains = ["@culture.example.gouv.fr"]'), "domains: .*is not a mail domain"),
    ((DOMAINS, 'domains = ["culture"]'), "domains: .*'culture' is not a mail domain"),
    ((ALIASES, 'alias_domains = ["culture..example.fr"]'), "alias_domains: .*is not a mail domain"),
    ((ROUTES, '"fi-culture" = "fi-culture"'), "idp_by_domain: .*'fi-culture' is not a mail domain"),
    ((ROUTES, '"défense.gouv.fr" = "fi-a"\n"DÉFENSE.GOUV.FR" = "fi-b"'),
     "idp_by_domain: .*one domain \\(xn--dfense-bva.gouv.fr\\) routed to two identity providers"),
])
def test_a_domain_that_is_not_one_is_refused_in_one_line(tmp_path: Path, change: tuple[str, str],
                                                        message: str) -> None:
    with pytest.raises(TenantFileError, match=message) as refused:
        _load(tmp_path, change)
    assert "\n" not in str(refused.value)


def test_connectors_are_given_the_normal_form_of_internal_domains(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.settings import Settings
    from flows.wiring import build_sources

    for name in SECRETS:
        monkeypatch.setenv(name, "not-used")
    config = _load(tmp_path, SPELLED, (ALIASES, 'alias_domains = ["MAIRIE-ÉCOUEN.FR"]'))
    sources = build_sources(config, Settings(), None)
    assert len(sources) == 3
    for source in sources:
        meetings: Any = source.meetings
        assert set(meetings.config.internal_domains) == {"culture.example.gouv.fr", "patrimoines.example.gouv.fr",
                                                         "xn--dfense-bva.example.gouv.fr",
                                                         "xn--mairie-couen-heb.fr"}, source.platform
