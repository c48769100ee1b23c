"""Join URLs and pasted references into link keys: real-world shapes from the contract notes, and their variants."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.links import (
    MAX_REFERENCE,
    JoinLink,
    UnknownLink,
    lookup_keys,
    parse_join_url,
    parse_meeting_reference,
)
from core.records import Platform

THREAD = "19:meeting_ZjA4NzFlYjEtMWQ1Ny00ZWE1LWE3YzgtMjQxODA3ZDNmN2Yw@thread.v2"
ENCODED_THREAD = "19%3ameeting_ZjA4NzFlYjEtMWQ1Ny00ZWE1LWE3YzgtMjQxODA3ZDNmN2Yw%40thread.v2"
CONTEXT = ("%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22"
           "bc55b173-cff6-457d-b7a1-64bda7d7581a%22%7d")
MTID = "m0f3b1c9d8e7a6b5c4d3e2f1a0b9c8d7e"

VALID: list[tuple[str, Platform, str, str | None]] = [
    # Zoom (zoom.md 4.6)
    ("https://zoom.us/j/84120036571?pwd=Zk9aR1VvT2hhd0xWbE5kQT09", Platform.ZOOM, "zoom:84120036571",
     "Zk9aR1VvT2hhd0xWbE5kQT09"),
    ("https://us02web.zoom.us/j/84120036571", Platform.ZOOM, "zoom:84120036571", None),
    ("https://culture-gouv.zoom.us/j/5003796083?pwd=abc", Platform.ZOOM, "zoom:5003796083", "abc"),
    ("https://ministere.zoomgov.com/j/1601234567", Platform.ZOOM, "zoom:1601234567", None),
    ("https://zoom.us/w/98765432101?tk=abc&pwd=xyz", Platform.ZOOM, "zoom:98765432101", "xyz"),  # webinar
    ("https://zoom.us/wc/join/841200365", Platform.ZOOM, "zoom:841200365", None),
    ("https://zoom.us/wc/84120036571/join?pwd=p", Platform.ZOOM, "zoom:84120036571", "p"),
    ("zoommtg://zoom.us/join?action=join&confno=84120036571&pwd=p1", Platform.ZOOM, "zoom:84120036571", "p1"),
    ("https://zoom.us/j/84120036571?pwd=Zk9a.1#success", Platform.ZOOM, "zoom:84120036571", "Zk9a.1"),
    # Teams (graph.md 5.3)
    (f"https://teams.microsoft.com/l/meetup-join/{ENCODED_THREAD}/0?context={CONTEXT}", Platform.TEAMS,
     f"teams:{THREAD}", None),
    ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjQ1OTE0%40thread.skype/1603878954120?tenantId=x",
     Platform.TEAMS, "teams:19:meeting_NjQ1OTE0@thread.skype", None),
    ("https://teams.microsoft.com/meet/33856791692521?p=Ab3xYz", Platform.TEAMS, "teams:meet:33856791692521",
     "Ab3xYz"),
    (f"https://teams.microsoft.com/_#/l/meetup-join/{ENCODED_THREAD}/0?context={CONTEXT}", Platform.TEAMS,
     f"teams:{THREAD}", None),
    ("https://teams.microsoft.com/dl/launcher/launcher.html?url=" + quote(f"/_#/l/meetup-join/{THREAD}/0?context=x",
                                                                          safe="")
     + "&type=meetup-join&deeplinkId=1&directDl=true&msLaunch=true", Platform.TEAMS, f"teams:{THREAD}", None),
    ("https://teams.cloud.microsoft/meet/33856791692521?p=Ab3xYz", Platform.TEAMS, "teams:meet:33856791692521",
     "Ab3xYz"),
    # Webex (webex.md 5)
    (f"https://ministere-example.webex.com/ministere-example/j.php?MTID={MTID}", Platform.WEBEX,
     f"webex:mtid:{MTID}", None),
    ("https://culture-gouv.webex.com/meet/jean.dupont", Platform.WEBEX,
     "webex:room:culture-gouv.webex.com/jean.dupont", None),
    ("23791846521@ministere-example.webex.com", Platform.WEBEX, "webex:number:23791846521", None),
    ("sip:23791846521@ministere-example.webex.com", Platform.WEBEX, "webex:number:23791846521", None),
    ("jean.dupont@culture-gouv.webex.com", Platform.WEBEX, "webex:room:culture-gouv.webex.com/jean.dupont", None),
    (f"https://culture-gouv.webex.com/wbxmjs/joinservice/sites/culture-gouv/meeting/download/abc?MTID={MTID}"
     "&siteurl=culture-gouv", Platform.WEBEX, f"webex:mtid:{MTID}", None),
    # Outlook Safe Links around a Teams link
    ("https://eur02.safelinks.protection.outlook.com/?url=" + quote(
        "https://teams.microsoft.com/meet/33856791692521?p=Ab3xYz", safe="") + "&data=05%7C02&reserved=0",
     Platform.TEAMS, "teams:meet:33856791692521", "Ab3xYz"),
]


@pytest.mark.parametrize(("url", "platform", "key", "passcode"), VALID, ids=[case[2] for case in VALID])
def test_join_urls_give_their_link_key(url: str, platform: Platform, key: str, passcode: str | None) -> None:
    link = parse_join_url(url)
    assert link == JoinLink(platform, key, passcode)
    assert str(link) == key


SAME_KEY: list[tuple[str, list[str]]] = [
    ("zoom:84120036571", [
        "https://zoom.us/j/84120036571",
        "http://zoom.us/j/84120036571",
        "HTTPS://ZOOM.US/j/84120036571",
        "https://Us02Web.Zoom.US/J/84120036571/",
        "https://zoom.us/j/84120036571?pwd=x&from=addon&uname=Jean",
        "https://zoom.us/j/%38%34120036571",
        "https://zoom.us:443/j/84120036571",
        "  https://zoom.us/j/84120036571\n",
        "zoom.us/j/84120036571",
        "https://zoom.us.//j/84120036571",
    ]),
    (f"teams:{THREAD}", [
        f"https://teams.microsoft.com/l/meetup-join/{ENCODED_THREAD}/0?context={CONTEXT}",
        f"https://teams.microsoft.com/l/meetup-join/{ENCODED_THREAD.replace('%3a', '%3A').replace('%40', '%40')}/0",
        f"https://TEAMS.MICROSOFT.COM/l/meetup-join/{THREAD}/0",
        f"http://teams.microsoft.com/l/meetup-join/{ENCODED_THREAD}/0/?context={CONTEXT}&anon=true",
        f"https://teams.microsoft.com/l/meetup-join/{quote(ENCODED_THREAD, safe='')}/0",  # encoded twice
        "https://teams.microsoft.com/l/meetup-join/19%3AMEETING_"
        + THREAD.removeprefix("19:meeting_").replace("thread.v2", "Thread.V2") + "/0",
    ]),
    ("teams:meet:33856791692521", [
        "https://teams.microsoft.com/meet/33856791692521?p=Ab3xYz",
        "https://teams.microsoft.com/meet/33856791692521/?p=Ab3xYz&anon=true",
        "http://Teams.Microsoft.com/Meet/33856791692521",
    ]),
    (f"webex:mtid:{MTID}", [
        f"https://ministere-example.webex.com/ministere-example/j.php?MTID={MTID}",
        f"https://MINISTERE-EXAMPLE.webex.com/ministere-example/j.php?mtid={MTID.upper()}",
        f"http://ministere-example.webex.com/ministere-example/j.php?RT=MiMxMQ%3D%3D&MTID={MTID}",
        f"https://ministere-example.webex.com/ministere-example/j.php/?MTID={MTID}",
    ]),
    ("webex:room:culture-gouv.webex.com/jean.dupont", [
        "https://culture-gouv.webex.com/meet/jean.dupont",
        "https://Culture-Gouv.Webex.com/meet/Jean.Dupont/",
        "http://culture-gouv.webex.com/join/jean.dupont?launchApp=true",
        "sip:Jean.Dupont@culture-gouv.webex.com",
    ]),
]


@pytest.mark.parametrize(("key", "variants"), SAME_KEY, ids=[case[0] for case in SAME_KEY])
def test_spelling_variants_of_one_link_give_one_key(key: str, variants: list[str]) -> None:
    keys = set()
    for variant in variants:
        link = parse_join_url(variant)
        assert isinstance(link, JoinLink), (variant, link)
        keys.add(link.key)
    assert keys == {key}


@pytest.mark.parametrize(("url", "reason"), [
    ("https://zoom.us/s/84120036571?zak=eyJ0eXAiOiJKV1Qi", "start URL"),
    ("https://us02web.zoom.us/S/84120036571", "start URL"),
    ("https://zoom.us/wc/84120036571/start", "start URL"),
    ("https://zoom.us/my/jean.dupont", "/my/"),
    ("https://zoom.us/j/1234", "9 to 11 digits"),
    ("https://zoom.us/j/not-a-number", "9 to 11 digits"),
    ("https://zoom.us/signin", "/j/"),
    ("https://evilzoom.us/j/84120036571", "not a Zoom, Teams or Webex host"),
    ("https://zoom.us.example.org/j/84120036571", "not a Zoom, Teams or Webex host"),
    ("ftp://zoom.us/j/84120036571", "scheme"),
    ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.tacv2/0", "thread id"),
    ("https://teams.microsoft.com/l/meetup-join/", "without a thread id"),
    ("https://teams.microsoft.com/l/chat/0/0?users=a", "neither"),
    ("https://teams.microsoft.com/meet/123?p=x", "10 to 15 digits"),
    ("https://teams.live.com/meet/9876543210123?p=x", "consumer"),
    ("https://site.webex.com/site/j.php?MTID=zzz", "MTID"),
    ("https://site.webex.com/site/j.php?ED=123", "without an MTID"),
    ("https://outlook.office365.com/owa/?itemid=AAMk&exvsurl=1&path=/calendar/item", "not a Zoom"),
    ("claire.martin@example.gouv.fr", "outside Zoom and Webex"),
    ("", "empty"),
])
def test_unknown_links_say_why(url: str, reason: str) -> None:
    link = parse_join_url(url)
    assert isinstance(link, UnknownLink)
    assert link.text == url
    assert reason in link.reason
    assert "@" not in link.reason


@pytest.mark.parametrize(("text", "platform", "key"), [
    # numbers, without a hint: 9-11 digits are Zoom, 12-15 Teams, the Webex grouping dddd ddd dddd is Webex
    ("84120036571", None, "zoom:84120036571"),
    ("841 2003 6571", None, "zoom:84120036571"),
    ("841-2003-6571", None, "zoom:84120036571"),
    ("841\u00a02003\u00a06571", None, "zoom:84120036571"),
    ("Meeting ID: 841 2003 6571", None, "zoom:84120036571"),
    ("338 567 916 925 21", None, "teams:meet:33856791692521"),
    ("ID de réunion : 338 567 916 925 21", None, "teams:meet:33856791692521"),
    ("2379 184 6521", None, "webex:number:23791846521"),
    # numbers with a hint
    ("23791846521", Platform.WEBEX, "webex:number:23791846521"),
    ("841 2003 6571", Platform.WEBEX, "webex:number:84120036571"),
    ("2379 184 6521", Platform.ZOOM, "zoom:23791846521"),
    ("84120036571", Platform.TEAMS, "teams:meet:84120036571"),
    # addresses and URLs; a hint never overrides them
    ("23791846521@ministere-example.webex.com", Platform.ZOOM, "webex:number:23791846521"),
    ("84120036571.123456@zoomcrc.com", None, "zoom:84120036571"),
    ("https://zoom.us/j/84120036571?pwd=x", Platform.TEAMS, "zoom:84120036571"),
    ("Rejoindre : <https://teams.microsoft.com/meet/33856791692521?p=Ab3xYz>.", None, "teams:meet:33856791692521"),
    ("zoom.us/j/84120036571", None, "zoom:84120036571"),
])
def test_meeting_references(text: str, platform: Platform | None, key: str) -> None:
    link = parse_meeting_reference(text, platform=platform)
    assert isinstance(link, JoinLink), link
    assert link.key == key


def test_zoom_sip_address_carries_its_passcode() -> None:
    assert parse_meeting_reference("84120036571.123456@zoomcrc.com") == JoinLink(Platform.ZOOM, "zoom:84120036571",
                                                                                "123456")


@pytest.mark.parametrize(("text", "platform", "reason"), [
    ("", None, "empty"),
    ("12345", None, "neither"),
    ("1234567890123456", None, "neither"),
    ("84120036571", Platform.ZOOM, None),  # control: accepted
    ("338 567 916 925 21", Platform.ZOOM, "9 to 11 digits"),
    ("338 567 916 925 21", Platform.WEBEX, "8 to 12 digits"),
    ("123 456", Platform.TEAMS, "10 to 15 digits"),
    ("call me tomorrow", None, "not a join URL"),
    ("jean.dupont@culture.gouv.fr", None, "outside Zoom and Webex"),
    ("https://zoom.us/s/84120036571?zak=x", None, "start URL"),
])
def test_meeting_references_that_name_nothing(text: str, platform: Platform | None, reason: str | None) -> None:
    link = parse_meeting_reference(text, platform=platform)
    if reason is None:
        assert isinstance(link, JoinLink)
        return
    assert isinstance(link, UnknownLink)
    assert reason in link.reason
    assert link.text == text


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=120) | st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}/{path}?{query}",
    st.sampled_from(["http", "https", "HTTPS", "zoommtg", "ftp"]),
    st.sampled_from(["zoom.us", "x.zoomgov.com", "teams.microsoft.com", "s.webex.com", "evil.com", ""]),
    st.text(max_size=40), st.text(max_size=40)))
def test_parsing_never_crashes(text: str) -> None:
    for result in (parse_join_url(text), parse_meeting_reference(text)):
        assert isinstance(result, JoinLink | UnknownLink)
        if isinstance(result, JoinLink):
            assert result.key.startswith(f"{result.platform}:")


@pytest.mark.parametrize(("text", "keys"), [
    # A bare number is read by every platform that could have given it, the reading without a hint first.
    ("26341234567", ("zoom:26341234567", "webex:number:26341234567", "teams:meet:26341234567")),
    ("2634 123 4567", ("webex:number:26341234567", "zoom:26341234567", "teams:meet:26341234567")),
    ("338 567 916 925", ("teams:meet:338567916925", "webex:number:338567916925")),
    ("12345678", ("webex:number:12345678",)),
    # A link or an address names one meeting, whatever the hint.
    ("26341234567@culture-gouv.webex.com", ("webex:number:26341234567",)),
    ("sip:26341234567@culture-gouv.webex.com", ("webex:number:26341234567",)),
    ("https://zoom.us/j/84120036571?pwd=x", ("zoom:84120036571",)),
    ("call me tomorrow", ()),
    ("8" * (MAX_REFERENCE + 1), ()),
])
def test_lookup_keys(text: str, keys: tuple[str, ...]) -> None:
    assert lookup_keys(text) == keys


def test_a_huge_reference_is_refused_without_being_kept_whole() -> None:
    huge = "https://zoom.us/j/84120036571 " + "x" * MAX_REFERENCE
    found = parse_meeting_reference(huge)
    assert isinstance(found, UnknownLink) and "longer than" in found.reason and len(found.text) <= 80
