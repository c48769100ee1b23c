"""The Teams block of an Outlook body replaced by the Visio block, every other byte kept; refusals as values.

Bodies are the synthetic ministry's own (sandbox.generator.platforms.teams_body). The expected result is built
from the generator's layout, not from core.calendar: the generator writes `head + block + tail`, where the head
ends with the agenda's `<br>\r\n`, the tail is `</body>\r\n</html>\r\n` and the block ends with a CRLF that stays.
"""

from __future__ import annotations

import html
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.calendar import (
    BlockRefusal,
    BodyRefused,
    CalendarEvent,
    rewrite_event,
    rewrite_teams_block,
    shows_visio,
    visio_block,
    visio_location,
)
from sandbox.generator.platforms import teams_body

VISIO = "https://visio.numerique.gouv.fr/abc-defg-hij"
OTHER_VISIO = "https://visio.numerique.gouv.fr/xyz-wxyz-xyz"
PHONE, PIN = "+33 1 84 88 00 00", "1234567890"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ORGANIZER = "bc55b173-cff6-457d-b7a1-64bda7d7581a"
CLASSIC = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZjA4NzFlYjEtMWQ1Ny00ZWE1LWE3YzgtMjQxODA3ZDNm"
           f"%40thread.v2/0?context=%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{ORGANIZER}%22%7d")
SHORT = "https://teams.microsoft.com/meet/33856791692521?p=Ab3xYz"
# The older thread.skype form carries two query parameters: bodies write its `&` as `&amp;`.
AMPERSAND = (f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjQ1OTE0%40thread.skype/1603878954120"
             f"?tenantId={TENANT}&threadId=19%3ameeting_NjQ1OTE0")
URLS = {"classic": (CLASSIC, None), "short": (SHORT, "33856791692521"), "ampersand": (AMPERSAND, None)}
VARIANTS = ("modern", "legacy", "edited")
AGENDA = "Point hebdomadaire <bureau 3B> & suivi des dossiers"
TAIL = "</body>\r\n</html>\r\n"


def body_of(variant: str, url_shape: str, *, agenda: str = AGENDA) -> str:
    """The generator's body; the `&` of a URL escaped as an HTML body carries it."""
    url, number = URLS[url_shape]
    return teams_body(join_url=html.escape(url), meeting_number=number, passcode="Ab3xYz", agenda=agenda,
                      variant=variant, conference_id="177513992")


def split(body: str) -> tuple[str, str]:
    """(head, block) of a generated body, the block's own trailing CRLF left out."""
    head = body[: body.index("<br>\r\n") + len("<br>\r\n")]
    block = body[len(head): -len(TAIL)]
    assert block.endswith("\r\n")
    return head, block[:-2]


def event(body: str, *, join_url: str | None = CLASSIC, organizer: bool = True,
          content_type: str = "html") -> CalendarEvent:
    location = {"displayName": "Réunion Microsoft Teams", "locationType": "default",
                "uniqueId": "Réunion Microsoft Teams", "uniqueIdType": "private"}
    return CalendarEvent(mailbox="0b9c3e5a-7d41-4c2e-9a6f-2f1d8e7c6b54", event_id="AAMkAGI2", is_organizer=organizer,
                         event_type="seriesMaster", body_content_type=content_type, body=body, location=location,
                         locations=(location,), join_url=join_url)


CASES = [(variant, shape) for variant in VARIANTS for shape in URLS]


@pytest.mark.parametrize(("variant", "shape"), CASES, ids=[f"{v}-{s}" for v, s in CASES])
def test_only_the_teams_block_changes(variant: str, shape: str) -> None:
    body = body_of(variant, shape)
    head, block = split(body)

    rewritten = rewrite_teams_block(body, join_url=URLS[shape][0], visio_url=VISIO, phone=PHONE, pin=PIN)

    assert rewritten == head + visio_block(VISIO, phone=PHONE, pin=PIN) + "\r\n" + TAIL
    assert isinstance(rewritten, str)
    assert rewritten.startswith(head) and rewritten.endswith("\r\n" + TAIL)
    assert html.escape(URLS[shape][0]) in block and html.escape(URLS[shape][0]) not in rewritten
    assert rewritten.count("\r\n") == body.count("\r\n") - block.count("\r\n") + visio_block(
        VISIO, phone=PHONE, pin=PIN).count("\r\n")


@pytest.mark.parametrize(("variant", "shape"), CASES, ids=[f"{v}-{s}" for v, s in CASES])
def test_an_event_is_rewritten_then_shows_visio(variant: str, shape: str) -> None:
    source = event(body_of(variant, shape), join_url=URLS[shape][0])

    result = rewrite_event(source, visio_url=VISIO)

    assert not isinstance(result, BodyRefused)
    body, location = result
    assert location == {"displayName": "Visio", "locationUri": VISIO}
    assert not shows_visio(source, VISIO)
    assert shows_visio(replace(source, body=body, location=location), VISIO)
    assert not shows_visio(replace(source, body=body, location=location), OTHER_VISIO)
    assert not shows_visio(replace(source, body=body), VISIO)            # the location still says Teams


@pytest.mark.parametrize("variant", VARIANTS)
def test_rewriting_twice_is_idempotent_for_the_same_room_and_refused_for_another(variant: str) -> None:
    once = rewrite_teams_block(body_of(variant, "short"), join_url=SHORT, visio_url=VISIO)
    assert isinstance(once, str)

    assert rewrite_teams_block(once, join_url=SHORT, visio_url=VISIO) == once
    again = rewrite_event(replace(event(once, join_url=SHORT), location=visio_location(VISIO)), visio_url=VISIO)
    assert again == (once, visio_location(VISIO))
    other = rewrite_teams_block(once, join_url=SHORT, visio_url=OTHER_VISIO)
    assert other == BodyRefused(BlockRefusal.BLOCK_NOT_FOUND, "the body already shows another Visio block")
    # A different dial-in is another block: refused rather than silently kept.
    assert isinstance(rewrite_teams_block(once, join_url=SHORT, visio_url=VISIO, phone=PHONE, pin=PIN), BodyRefused)


MODERN = body_of("modern", "classic")
MODERN_HEAD, MODERN_BLOCK = split(MODERN)
EDITED_LINK = f'<p>Lien Teams : <a href="{CLASSIC}">{CLASSIC}</a></p>'

REFUSALS: list[tuple[str, CalendarEvent, BlockRefusal]] = [
    ("text body", event("Rejoindre : " + CLASSIC, content_type="text"), BlockRefusal.NOT_HTML),
    ("not the organiser's copy", event(MODERN, organizer=False), BlockRefusal.NOT_ORGANIZER),
    ("no join URL on the event", event(MODERN, join_url=None), BlockRefusal.BLOCK_NOT_FOUND),
    ("no link in the body", event(f"<html><body>{MODERN_HEAD}{TAIL}"), BlockRefusal.BLOCK_NOT_FOUND),
    ("two blocks with the URL", event(MODERN_HEAD + MODERN_BLOCK + "\r\n<div>Rappel :</div>\r\n" + MODERN_BLOCK
                                      + "\r\n" + TAIL), BlockRefusal.AMBIGUOUS),
    ("the URL also in the agenda", event(MODERN.replace("<br>", f"<br>Ancien lien : {CLASSIC}<br>")),
     BlockRefusal.AMBIGUOUS),
    ("edited link twice", event(f"<html><body>{EDITED_LINK}\r\n<div>Rappel</div>\r\n{EDITED_LINK}</body></html>"),
     BlockRefusal.AMBIGUOUS),
    ("link loose in a container", event(f"<html><body><div><div>Ordre du jour</div>Teams : <a href=\"{CLASSIC}\">"
                                        "ici</a></div></body></html>"), BlockRefusal.BLOCK_NOT_FOUND),
    ("link straight in body", event(f'<html><body>Teams : <a href="{CLASSIC}">ici</a></body></html>'),
     BlockRefusal.BLOCK_NOT_FOUND),
    ("a longer URL is another meeting", event(MODERN.replace(CLASSIC, CLASSIC + "%22x")),
     BlockRefusal.BLOCK_NOT_FOUND),
]


@pytest.mark.parametrize(("source", "reason"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS])
def test_unsafe_bodies_are_refused(source: CalendarEvent, reason: BlockRefusal) -> None:
    result = rewrite_event(source, visio_url=VISIO)

    assert isinstance(result, BodyRefused)
    assert result.reason is reason
    assert result.detail


def test_another_meetings_block_is_not_taken_for_this_one() -> None:
    other = body_of("modern", "short")
    assert rewrite_teams_block(other, join_url=CLASSIC, visio_url=VISIO) == BodyRefused(
        BlockRefusal.BLOCK_NOT_FOUND, "the join URL is not in the body")


WORD_SEPARATOR = ("<p class=MsoNormal><span style='color:#5F5F5F'>" + "_" * 80
                  + "</span><span style='color:#5F5F5F'><o:p></o:p></span></p>")
WORD_BODIES = [
    ("Word markup separators",
     "<div class=WordSection1><p class=MsoNormal>Bonjour<o:p></o:p></p>\r\n",
     f"{WORD_SEPARATOR}\r\n<p class=MsoNormal><a href=\"{CLASSIC}\"><span>Rejoindre</span></a></p>\r\n{WORD_SEPARATOR}",
     "\r\n<p class=MsoNormal>Cordialement<o:p></o:p></p></div>"),
    ("upper-case legacy tags",
     "<HTML><BODY><DIV>Ordre du jour</DIV>\r\n",
     f"<DIV>{'_' * 40}</DIV>\r\n<DIV><A HREF=\"{CLASSIC}\">Rejoindre</A></DIV>\r\n<DIV>{'_' * 40}</DIV>",
     "\r\n</BODY></HTML>"),
    ("edited link in a nested div",
     "<html><body><div><div>Ordre du jour</div>\n",
     f"<div>Teams&nbsp;: <a href='{CLASSIC}'>{CLASSIC}</a></div>",
     "\n<div>Merci</div></div></body></html>"),
]


@pytest.mark.parametrize(("head", "block", "tail"), [case[1:] for case in WORD_BODIES],
                         ids=[case[0] for case in WORD_BODIES])
def test_other_markups_of_the_block_are_found(head: str, block: str, tail: str) -> None:
    assert rewrite_teams_block(head + block + tail, join_url=CLASSIC, visio_url=VISIO) == (
        head + visio_block(VISIO) + tail)


def test_the_visio_block_says_where_and_how_to_join() -> None:
    block = visio_block("https://visio.example.gouv.fr/abc-defg-hij?x=1&y=2", phone=PHONE, pin=PIN)

    assert "Réunion Visio" in block
    assert 'href="https://visio.example.gouv.fr/abc-defg-hij?x=1&amp;y=2"' in block
    assert "Rejoindre : </span><a " in block
    assert f"Par téléphone : {PHONE} puis le code {PIN}" in block
    assert "Par téléphone" not in visio_block(VISIO)
    assert block.count("_" * 80) == 2
    assert visio_block(VISIO, pin=PIN) == visio_block(VISIO) == visio_block(VISIO, phone=PHONE)
    with pytest.raises(ValueError, match="non-empty"):
        visio_block("")


def test_an_event_can_be_hashed_and_hides_its_body_from_repr() -> None:
    source = event(MODERN)

    assert hash(source) == hash(replace(source))
    assert "Microsoft Teams</span>" not in repr(source) and CLASSIC not in repr(source)


# Text and markup without the URL and without a separator line (20 underscores), as HTML-ish as it gets.
SURROUNDINGS = st.lists(st.sampled_from([*"ab é<>/=\"'&;:_-\r\n\t", "<p>", "</p>", "<div>", "</div>", "<DIV class=x>",
                                         "<span>", "</span>", "<br>", "&amp;", "&nbsp;", '<a href="', "<p/>", "<!--",
                                         "-->", "<p ", "<div style=", "https://teams.microsoft.com/meet/",
                                         "_" * 19]),
                        max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(variant=st.sampled_from(VARIANTS), shape=st.sampled_from(sorted(URLS)), prefix=SURROUNDINGS,
       suffix=SURROUNDINGS)
def test_arbitrary_surroundings_are_kept_byte_for_byte(variant: str, shape: str, prefix: str, suffix: str) -> None:
    url = URLS[shape][0]
    for text in (prefix, suffix):
        assume(url not in text and html.escape(url) not in text and "_" * 20 not in text)
    _head, block = split(body_of(variant, shape))
    body = prefix + block + "\r\n" + suffix

    assert rewrite_teams_block(body, join_url=url, visio_url=VISIO) == prefix + visio_block(VISIO) + "\r\n" + suffix
