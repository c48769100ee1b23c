"""E-mail and domain normal forms: table-driven cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import EmailAddress, InvalidEmail, normalise_email, parse_email
from core.emails import normalise_domain


@pytest.mark.parametrize(("raw", "expected"), [
    ("jean.dupont@culture.gouv.fr", "jean.dupont@culture.gouv.fr"),
    ("Jean.Dupont@Culture.Gouv.FR", "jean.dupont@culture.gouv.fr"),
    ("  jean.dupont@culture.gouv.fr \t", "jean.dupont@culture.gouv.fr"),
    ("JEAN.DUPONT@CULTURE.GOUV.FR", "jean.dupont@culture.gouv.fr"),
    ("o'neill.sean@culture.gouv.fr", "o'neill.sean@culture.gouv.fr"),
    ("jean-baptiste.de-la-fontaine@culture.gouv.fr", "jean-baptiste.de-la-fontaine@culture.gouv.fr"),
    ("anne@mairie-écouen.fr", "anne@xn--mairie-couen-heb.fr"),
    ("anne@xn--mairie-couen-heb.fr", "anne@xn--mairie-couen-heb.fr"),
    ("e\u0301lise@culture.gouv.fr", "élise@culture.gouv.fr"),  # NFD in, NFC out
    ("pierre.martin@culture.gouv.fr.", "pierre.martin@culture.gouv.fr"),
])
def test_valid_addresses_normalise(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected
    assert isinstance(parse_email(raw), EmailAddress)


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"),
    ("   ", "empty"),
    ("jean.dupont@", "invalid domain"),
    ("@culture.gouv.fr", "no local part"),
    ("jean.dupont.culture.gouv.fr", "no local part"),
    ("jean dupont@culture.gouv.fr", "whitespace"),
    ("jean.dupont@@culture.gouv.fr", "more than one @"),
    ("jean.dupont@culture", "invalid domain"),
    ("jean..dupont@culture.gouv.fr", "invalid local part"),
    (".jean@culture.gouv.fr", "invalid local part"),
    ("jean.dupont@culture..gouv.fr", "invalid domain"),
    ("jean.dupont@culture.gouv.f", "invalid domain"),
    ("x" * 65 + "@culture.gouv.fr", "invalid local part"),
])
def test_invalid_addresses_say_why(raw: str, reason: str) -> None:
    result = parse_email(raw)
    assert isinstance(result, InvalidEmail)
    assert reason in result.reason
    assert normalise_email(raw) is None


@given(st.text())
def test_never_crashes_on_arbitrary_text(raw: str) -> None:
    assert isinstance(parse_email(raw), EmailAddress | InvalidEmail)


_local = st.from_regex(r"[a-z][a-z0-9'-]{0,15}(\.[a-z][a-z0-9-]{0,15}){0,2}", fullmatch=True)
_label = r"[a-z](?:[a-z0-9-]{0,8}[a-z0-9])?"  # DNS labels neither start nor end with a hyphen
_domain = st.from_regex(rf"{_label}(\.{_label}){{0,2}}\.(fr|com|org)", fullmatch=True)


@given(_local, _domain)
def test_normalisation_is_idempotent_and_case_insensitive(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    once = normalise_email(address)
    assert once is not None
    assert normalise_email(once) == once
    assert normalise_email(address.upper()) == once
    assert normalise_email(f"  {address.title()}  ") == once


@given(st.text())
def test_normal_form_is_a_fixed_point(raw: str) -> None:
    once = normalise_email(raw)
    if once is not None:
        assert normalise_email(once) == once


@pytest.mark.parametrize(("raw", "expected"), [
    ("culture.gouv.fr", "culture.gouv.fr"),
    (" CULTURE.Gouv.FR. ", "culture.gouv.fr"),
    ("défense.gouv.fr", "xn--dfense-bva.gouv.fr"),
    ("DÉFENSE.GOUV.FR", "xn--dfense-bva.gouv.fr"),
    ("de\u0301fense.gouv.fr", "xn--dfense-bva.gouv.fr"),  # NFD
    ("xn--dfense-bva.gouv.fr", "xn--dfense-bva.gouv.fr"),
    ("XN--DFENSE-BVA.GOUV.FR", "xn--dfense-bva.gouv.fr"),
    ("culture", None),
    ("", None),
    ("culture gouv.fr", None),
    ("@culture.gouv.fr", None),
    ("jean@culture.gouv.fr", None),
    ("culture..gouv.fr", None),
    ("-culture.gouv.fr", None),
    ("xn--zz.fr", None),                 # punycode that does not decode
    ("culture.gouv.f", None),
    (("a" * 63 + ".") * 4 + "fr", None),  # over 253 characters
])
def test_domains_have_one_normal_form(raw: str, expected: str | None) -> None:
    assert normalise_domain(raw) == expected


@given(_local, _domain)
def test_an_address_domain_is_the_normal_form_of_its_domain(local: str, domain: str) -> None:
    for spelled in (domain, domain.upper(), f"{domain}."):
        parsed = parse_email(f"{local}@{spelled}")
        assert isinstance(parsed, EmailAddress) and parsed.domain == normalise_domain(spelled) == domain
