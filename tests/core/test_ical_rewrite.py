"""core.ical_rewrite: the link block of a stored iCalendar object replaced, every other byte kept."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ical_rewrite import (
    IcalRefusal,
    IcalRefused,
    Rewritten,
    _fold,
    occurs_between,
    read_object,
    restore_object,
    rewrite_object,
    unrewrite_object,
)

ZOOM = "https://culture-gouv.zoom.us/j/81234567890?pwd=abc"
WEBEX = "https://culture-gouv.webex.com/culture-gouv/j.php?MTID=m0123456789abcdef0123456789abcdef"
VISIO = "https://visio.numerique.gouv.fr/abc-defg-hij"


def _object(description: str, *, location: str = ZOOM, sequence: str | None = "SEQUENCE:3",
            ending: str = "\r\n", extra: tuple[str, ...] = ()) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "BEGIN:VEVENT", "UID:series-1@zoom.us",
             "DTSTART:20261207T090000Z", "RRULE:FREQ=WEEKLY", "SUMMARY:Réunion d'équipe", f"LOCATION:{location}",
             f"DESCRIPTION:{description}", "ORGANIZER:mailto:Alice@Example.gouv.fr",
             "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.gouv.fr", *extra,
             *([sequence] if sequence else []), "END:VEVENT", "END:VCALENDAR"]
    return (ending.join(lines) + ending).encode()


def _rewritten(data: bytes, **options: object) -> Rewritten:
    result = rewrite_object(data, join_key="zoom:81234567890", visio_url=VISIO, **options)  # type: ignore[arg-type]
    assert isinstance(result, Rewritten), result
    return result


def test_only_the_block_the_location_and_the_sequence_change() -> None:
    description = (f"Ordre du jour\\, points :\\n- budget\\n\\nRejoindre la réunion Zoom\\n{ZOOM}\\n\\n"
                   "ID de réunion : 812 3456 7890\\nCode secret : 123456\\n\\nMobile en un clic\\n"
                   "+33170379729\\,\\,81234567890# France\\n\\nÀ bientôt\\; Alice")
    data = _object(description)
    result = _rewritten(data)
    assert result.changed and result.components == 1 and result.sequence == 4
    before, after = data.split(b"\r\n"), re.sub(rb"\r\n ", b"", result.data).split(b"\r\n")
    changed = {line.split(b":", 1)[0] for line in set(after) - set(before)}
    assert changed == {b"LOCATION", b"DESCRIPTION", b"SEQUENCE"}
    text = next(line for line in after if line.startswith(b"DESCRIPTION")).decode()
    assert text == (f"DESCRIPTION:Ordre du jour\\, points :\\n- budget\\n\\nRéunion Visio\\nRejoindre : {VISIO}"
                    "\\n\\nÀ bientôt\\; Alice")
    assert f"LOCATION:{VISIO}".encode() in after
    parsed = read_object(result.data)
    assert not isinstance(parsed, IcalRefused) and parsed.join_keys == ()
    assert read_object(data).organizer == "alice@example.gouv.fr"  # type: ignore[union-attr]


def test_a_link_elsewhere_in_the_text_is_refused_not_guessed() -> None:
    data = _object(f"Rejoindre la réunion Zoom\\n{ZOOM}\\n\\nNotes\\n\\nLien de secours : {ZOOM}")
    result = rewrite_object(data, join_key="zoom:81234567890", visio_url=VISIO)
    assert isinstance(result, IcalRefused) and result.reason is IcalRefusal.LINK_OUTSIDE_BLOCK


def test_another_meeting_s_link_is_not_found_and_a_rerun_changes_nothing() -> None:
    other = rewrite_object(_object(f"Rejoindre\\n{WEBEX}", location="Salle 3"), join_key="zoom:81234567890",
                           visio_url=VISIO)
    assert isinstance(other, IcalRefused) and other.reason is IcalRefusal.LINK_NOT_FOUND
    once = _rewritten(_object(f"Rejoindre la réunion Zoom\\n{ZOOM}"))
    again = _rewritten(once.data)
    assert not again.changed and again.data == once.data


def test_a_missing_sequence_is_added_and_attendees_can_be_forced() -> None:
    result = _rewritten(_object(f"Zoom\\n{ZOOM}", sequence=None), force_send=True)
    text = re.sub(rb"\r\n ", b"", result.data).decode()
    assert "UID:series-1@zoom.us\r\nSEQUENCE:1\r\n" in text
    assert "ATTENDEE;PARTSTAT=ACCEPTED;SCHEDULE-FORCE-SEND=REQUEST:mailto:bob@example.gouv.fr" in text
    assert "ORGANIZER:mailto:Alice@Example.gouv.fr" in text          # the organiser is not an attendee


def test_line_endings_and_unchanged_folded_lines_are_kept() -> None:
    long_note = "X-NOTE:" + "é" * 60
    folded = _fold(long_note, b"\n")
    data = _object(f"Zoom\\n{ZOOM}", ending="\n").replace(b"END:VEVENT", folded + b"END:VEVENT")
    result = _rewritten(data)
    assert b"\r\n" not in result.data and folded in result.data


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=0, max_size=300))
def test_folding_never_cuts_a_character_and_unfolds_back(text: str) -> None:
    folded = _fold("DESCRIPTION:" + text, b"\r\n")
    assert all(len(line) <= 75 for line in folded.split(b"\r\n"))
    assert re.sub(rb"\r\n ", b"", folded).decode() == "DESCRIPTION:" + text + "\r\n"


def test_the_restore_raises_the_sequence_and_undoes_only_what_is_still_ours() -> None:
    original = _object(f"Rejoindre la réunion Zoom\\n{ZOOM}", location=f"Salle 3 / {ZOOM}")
    rewritten = _rewritten(original)
    back = restore_object(original, above=rewritten.sequence)
    assert back.replace(b"SEQUENCE:5", b"SEQUENCE:3") == original
    # The organiser changed the location after the rewrite: it stays theirs; the description is undone.
    edited = rewritten.data.replace(f"LOCATION:Salle 3 / {VISIO}".encode(), b"LOCATION:Salle 5")
    undone = unrewrite_object(edited, rewritten=rewritten.data, original=original, above=rewritten.sequence)
    assert undone.kept == ("LOCATION",)
    text = re.sub(rb"\r\n ", b"", undone.data).decode()
    assert "LOCATION:Salle 5" in text and f"Rejoindre la réunion Zoom\\n{ZOOM}" in text and "SEQUENCE:5" in text


@pytest.mark.parametrize("data", [b"", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", b"\xff\xfe garbage"])
def test_what_is_not_an_event_is_refused(data: bytes) -> None:
    assert isinstance(read_object(data), IcalRefused)
    result = rewrite_object(data, join_key="zoom:1", visio_url=VISIO)
    assert isinstance(result, IcalRefused) and result.reason is IcalRefusal.NOT_ICALENDAR


def _vevent(*lines: str) -> bytes:
    return ("\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", "BEGIN:VEVENT", "UID:w-1",
                         "DTSTAMP:20261201T090000Z", *lines, "END:VEVENT", "END:VCALENDAR"]) + "\r\n").encode()


@pytest.mark.parametrize(("lines", "inside"), [
    # A weekly series whose last occurrence (20 Dec) is before the window: out.
    (("DTSTART;TZID=Europe/Paris:20261206T100000", "DTEND;TZID=Europe/Paris:20261206T110000",
      "RRULE:FREQ=WEEKLY;COUNT=3"), False),
    # The same with more occurrences: its fourth falls in the window.
    (("DTSTART;TZID=Europe/Paris:20261206T100000", "DTEND;TZID=Europe/Paris:20261206T110000",
      "RRULE:FREQ=WEEKLY;COUNT=5"), True),
    # Its only occurrence in the window excluded: out.
    (("DTSTART;TZID=Europe/Paris:20261206T100000", "DTEND;TZID=Europe/Paris:20261206T110000",
      "RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Paris:20261227T100000"), False),
    # A single event in the window, one that ended the day before it.
    (("DTSTART:20261228T090000Z", "DTEND:20261228T100000Z"), True),
    (("DTSTART:20261220T090000Z", "DTEND:20261220T100000Z"), False),
    # What cannot be expanded is kept rather than dropped.
    (("DTSTART:20261206T090000Z", "RRULE:FREQ=SOMETIMES"), True),
])
def test_an_object_is_in_the_window_when_one_of_its_occurrences_is(lines: tuple[str, ...], inside: bool) -> None:
    window = (datetime(2026, 12, 21, tzinfo=UTC), datetime(2027, 1, 31, tzinfo=UTC))
    assert occurs_between(_vevent(*lines), *window) is inside
