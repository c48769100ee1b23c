"""Join URLs and pasted meeting references into stable link keys (Zoom, Teams, Webex).

Keys:
- Zoom `zoom:<meeting id>` from `/j/<id>`, `/w/<id>` (webinars), `/wc/join/<id>`, `zoommtg://…/join?confno=<id>` on
  any host under zoom.us or zoomgov.com, `pwd` as passcode; start URLs (`/s/<id>`) and personal links
  (`/my/<name>`) are refused.
- Teams `teams:19:meeting_<…>@thread.v2` (or `@thread.skype`) from meetup-join links, percent-decoded, also behind
  `/_#/` or the launcher; `teams:meet:<digits>` from the short form `/meet/<digits>?p=<passcode>`.
- Webex `webex:mtid:<MTID>` from any link carrying an MTID (`j.php`, join service), `webex:room:<site>/<name>` from
  personal rooms (`/meet/<name>`, `/join/<name>`, or `<name>@<site>`), `webex:number:<n>` from `<n>@<site>`.
Outlook Safe Links wrappers are opened first. Case, percent-encoding, a trailing slash, `http` or extra query
parameters never change a key.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlsplit

from core.records import Platform

__all__ = ["MAX_REFERENCE", "JoinLink", "UnknownLink", "lookup_keys", "parse_join_url", "parse_meeting_reference"]

# Longer than any join link (Safe Links wrappers included): what the helpdesk pasted is not one reference.
MAX_REFERENCE = 4096

_ZOOM_DOMAINS = ("zoom.us", "zoomgov.com")
_ZOOM_SIP_DOMAINS = ("zoomcrc.com", "zoomgov.com", "zoom.us")
_TEAMS_HOSTS = frozenset({"teams.microsoft.com", "teams.cloud.microsoft", "teams.microsoft.us",
                          "gov.teams.microsoft.us", "dod.teams.microsoft.us"})
_WEBEX_DOMAIN = "webex.com"
_ZOOM_ID_RE = re.compile(r"\d{9,11}")
_TEAMS_ID_RE = re.compile(r"\d{10,15}")
_WEBEX_NUMBER_RE = re.compile(r"\d{8,12}")
_THREAD_RE = re.compile(r"19:(meeting_[A-Za-z0-9_\-+/=]+)@(thread\.v2|thread\.skype)", re.IGNORECASE)
_MTID_RE = re.compile(r"m?[0-9a-f]{32}", re.IGNORECASE)
_ROOM_NAME_RE = re.compile(r"[\w.\-]+")
_URL_IN_TEXT_RE = re.compile(r"(?:https?|zoommtg|zoomus)://[^\s<>\"']+", re.IGNORECASE)
_SEPARATORS_RE = re.compile(r"[\s\-.\u00a0\u202f]+")
_WEBEX_GROUPING_RE = re.compile(r"\d{4}[ \u00a0\u202f]\d{3}[ \u00a0\u202f]\d{4}")
_MAX_UNWRAP = 3


@dataclass(frozen=True, slots=True)
class JoinLink:
    """A meeting as the helpdesk names it: `key` is stable across spellings of the same link."""

    platform: Platform
    key: str
    passcode: str | None = None

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class UnknownLink:
    """Text that names no meeting bascule can key, and why."""

    text: str
    reason: str


def parse_join_url(url: str) -> JoinLink | UnknownLink:
    """The link key of a Zoom, Teams or Webex join URL (or SIP address), or why there is none."""
    return _parse_url(url, url.strip(), depth=0)


def parse_meeting_reference(text: str, *, platform: Platform | None = None) -> JoinLink | UnknownLink:
    """What a helpdesk agent pastes, as a link key.

    Accepted: a join URL, also inside surrounding text (the first URL wins); a SIP address (`<n>@<site>.webex.com`,
    `<id>@zoomcrc.com`); a bare meeting number, digits with spaces, dots or dashes. Numbers are told apart so:
    `platform` decides when given; otherwise 12 to 15 digits are a Teams meeting id, 9 to 11 digits are a Zoom
    meeting id — except when written the Webex way, `dddd ddd dddd`, which is a Webex meeting number. A hint never
    overrides what a URL or SIP address says.
    """
    if len(text) > MAX_REFERENCE:
        return UnknownLink(text[:80], f"longer than {MAX_REFERENCE} characters: not one link")
    stripped = unicodedata.normalize("NFKC", text).strip().strip("<>\"'")
    if not stripped:
        return UnknownLink(text, "empty reference")
    found = _URL_IN_TEXT_RE.search(stripped)
    if found is not None:
        return _parse_url(text, found.group(0).rstrip(").,;:!?]}>"), depth=0)
    if "@" in stripped or stripped.lower().startswith(("sip:", "sips:")):
        return _parse_sip(text, stripped)
    if "/" in stripped and "." in stripped.split("/", 1)[0]:  # a URL pasted without its scheme
        return _parse_url(text, "https://" + stripped, depth=0)
    raw_number = stripped
    for label in ("meeting id", "id de réunion", "numéro de réunion", "meeting number", "id"):
        if raw_number.lower().startswith(label):
            raw_number = raw_number[len(label):].lstrip(" :#\u00a0\u202f")
            break
    digits = _SEPARATORS_RE.sub("", raw_number)
    if not digits.isdigit() or not digits.isascii():
        return UnknownLink(text, "not a join URL, SIP address or meeting number")
    return _parse_number(text, digits, platform=platform, webex_grouping=bool(_WEBEX_GROUPING_RE.fullmatch(raw_number)))


def lookup_keys(text: str) -> tuple[str, ...]:
    """Every link key a pasted reference may be stored under, the likeliest first.

    A URL or a SIP address names one meeting. A bare number is read as each platform would read it, the reading
    without a hint first: 11 digits without the Webex grouping are a Zoom meeting id, then a Webex meeting number
    (`26341234567`), then a Teams id. Nothing for what names no meeting, or for text longer than MAX_REFERENCE.
    """
    if len(text) > MAX_REFERENCE:
        return ()
    keys: list[str] = []
    for platform in (None, Platform.ZOOM, Platform.WEBEX, Platform.TEAMS):
        parsed = parse_meeting_reference(text, platform=platform)
        if isinstance(parsed, JoinLink) and parsed.key not in keys:
            keys.append(parsed.key)
    return tuple(keys)


# ------------------------------------------------------------------------------------------------ URLs

def _parse_url(original: str, url: str, *, depth: int) -> JoinLink | UnknownLink:
    if not url:
        return UnknownLink(original, "empty URL")
    lowered = url.lower()
    if lowered.startswith(("sip:", "sips:")) or ("@" in url and "://" not in url):
        return _parse_sip(original, url)
    if "://" not in url:
        url = "https://" + url
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return UnknownLink(original, "malformed URL")
    scheme = parts.scheme.lower()
    query = _query(parts.query)
    if scheme in ("zoommtg", "zoomus"):
        return _zoom(original, host or "zoom.us", _segments(parts.path), query)
    if scheme not in ("http", "https"):
        return UnknownLink(original, f"unsupported URL scheme “{scheme[:20]}”")
    if not host:
        return UnknownLink(original, "URL without a host")
    if host.endswith("safelinks.protection.outlook.com") and "url" in query:
        if depth >= _MAX_UNWRAP:
            return UnknownLink(original, "too many nested Safe Links")
        return _parse_url(original, query["url"].strip(), depth=depth + 1)
    if _under(host, _ZOOM_DOMAINS):
        return _zoom(original, host, _segments(parts.path), query)
    if host in _TEAMS_HOSTS:
        return _teams(original, parts.path, parts.fragment, query, depth=depth)
    if host == "teams.live.com":
        return UnknownLink(original, "Teams consumer link (teams.live.com), outside the ministry's tenant")
    if _under(host, (_WEBEX_DOMAIN,)):
        return _webex(original, host, _segments(parts.path), query)
    return UnknownLink(original, "not a Zoom, Teams or Webex host")


def _zoom(original: str, host: str, segments: list[str], query: dict[str, str]) -> JoinLink | UnknownLink:
    lowered = [segment.lower() for segment in segments]
    meeting_id: str | None = None
    if len(lowered) >= 2 and lowered[0] in ("j", "w"):
        meeting_id = segments[1]
    elif len(lowered) >= 2 and lowered[0] == "s":
        return UnknownLink(original, "start URL: a host-only secret, never stored")
    elif lowered[:1] == ["my"]:
        return UnknownLink(original, "Zoom personal link name (/my/<name>): no meeting id to key on")
    elif len(lowered) >= 3 and lowered[0] == "wc" and lowered[1] == "join":
        meeting_id = segments[2]
    elif len(lowered) >= 3 and lowered[0] == "wc" and lowered[2] == "join":
        meeting_id = segments[1]
    elif len(lowered) >= 3 and lowered[0] == "wc" and lowered[2] == "start":
        return UnknownLink(original, "start URL: a host-only secret, never stored")
    elif lowered in (["join"], []) and "confno" in query:
        meeting_id = query["confno"]
    if meeting_id is None:
        return UnknownLink(original, "Zoom URL without a /j/<meeting id> path")
    meeting_id = meeting_id.replace("-", "").replace(" ", "")
    if not _ZOOM_ID_RE.fullmatch(meeting_id):
        return UnknownLink(original, "Zoom meeting id is not 9 to 11 digits")
    return JoinLink(Platform.ZOOM, f"zoom:{meeting_id}", query.get("pwd") or None)


def _teams(original: str, path: str, fragment: str, query: dict[str, str], *, depth: int) -> JoinLink | UnknownLink:
    segments = _segments(path)
    lowered = [segment.lower() for segment in segments]
    if len(lowered) >= 2 and lowered[0] == "meet":
        number = segments[1]
        if not _TEAMS_ID_RE.fullmatch(number):
            return UnknownLink(original, "Teams meeting id is not 10 to 15 digits")
        return JoinLink(Platform.TEAMS, f"teams:meet:{number}", query.get("p") or None)
    if lowered[:3] == ["dl", "launcher", "launcher.html"] and "url" in query and depth < _MAX_UNWRAP:
        inner = query["url"]
        return _teams(original, *_split_fragment(inner), query={}, depth=depth + 1)
    if "meetup-join" not in lowered and "/meetup-join/" in fragment.lower():
        segments = _segments(fragment.split("?", 1)[0])
        lowered = [segment.lower() for segment in segments]
    if "meetup-join" not in lowered:
        return UnknownLink(original, "Teams URL that is neither a meetup-join nor a /meet/ link")
    position = lowered.index("meetup-join")
    if position + 1 >= len(segments):
        return UnknownLink(original, "Teams meetup-join URL without a thread id")
    thread = segments[position + 1]
    for _ in range(_MAX_UNWRAP):  # some mailers encode the link twice
        if "%" not in thread:
            break
        thread = unquote(thread)
    match = _THREAD_RE.fullmatch(thread)
    if match is None:
        return UnknownLink(original, "Teams thread id is not a 19:meeting_ thread (thread.v2 or thread.skype)")
    return JoinLink(Platform.TEAMS, f"teams:19:{match.group(1)[:8].lower()}{match.group(1)[8:]}@"
                                    f"{match.group(2).lower()}")


def _split_fragment(inner: str) -> tuple[str, str]:
    """A launcher's `url` parameter (`/_#/l/meetup-join/…`) as (path, fragment)."""
    path, _, fragment = inner.partition("#")
    return path, fragment


def _webex(original: str, host: str, segments: list[str], query: dict[str, str]) -> JoinLink | UnknownLink:
    mtid = query.get("mtid")
    if mtid:
        if not _MTID_RE.fullmatch(mtid):
            return UnknownLink(original, "Webex MTID is not m followed by 32 hexadecimal digits")
        return JoinLink(Platform.WEBEX, f"webex:mtid:{mtid.lower()}")
    lowered = [segment.lower() for segment in segments]
    if len(lowered) >= 2 and lowered[-2] in ("meet", "join") and len(lowered) <= 3:
        return _webex_room(original, host, segments[-1])
    return UnknownLink(original, "Webex URL without an MTID or a personal room name")


def _webex_room(original: str, site: str, name: str) -> JoinLink | UnknownLink:
    if not _ROOM_NAME_RE.fullmatch(name):
        return UnknownLink(original, "Webex personal room name has unexpected characters")
    return JoinLink(Platform.WEBEX, f"webex:room:{site.lower()}/{name.lower()}")


# ------------------------------------------------------------------------------------------------ SIP, numbers

def _parse_sip(original: str, text: str) -> JoinLink | UnknownLink:
    address = text.strip()
    if address.lower().startswith(("sip:", "sips:")):
        address = address.split(":", 1)[1]
    local, sep, domain = address.partition("@")
    domain = domain.split(";", 1)[0].split(">", 1)[0].strip().lower().rstrip(".")
    if not sep or not local or not domain:
        return UnknownLink(original, "not a SIP address")
    if _under(domain, (_WEBEX_DOMAIN,)):
        if _WEBEX_NUMBER_RE.fullmatch(local):
            return JoinLink(Platform.WEBEX, f"webex:number:{local}")
        return _webex_room(original, domain, local)
    if _under(domain, _ZOOM_SIP_DOMAINS):
        meeting_id, _, passcode = local.partition(".")
        if _ZOOM_ID_RE.fullmatch(meeting_id):
            return JoinLink(Platform.ZOOM, f"zoom:{meeting_id}", passcode or None)
        return UnknownLink(original, "Zoom SIP address without a meeting id")
    return UnknownLink(original, "an address outside Zoom and Webex (an e-mail address?)")


def _parse_number(original: str, digits: str, *, platform: Platform | None,
                  webex_grouping: bool) -> JoinLink | UnknownLink:
    if platform is None:
        if _ZOOM_ID_RE.fullmatch(digits):
            platform = Platform.WEBEX if webex_grouping else Platform.ZOOM
        elif _TEAMS_ID_RE.fullmatch(digits):
            platform = Platform.TEAMS
        else:
            return UnknownLink(original, "a number of neither 9 to 11 (Zoom, Webex) nor 12 to 15 digits (Teams)")
    if platform is Platform.ZOOM:
        if not _ZOOM_ID_RE.fullmatch(digits):
            return UnknownLink(original, "Zoom meeting id is not 9 to 11 digits")
        return JoinLink(Platform.ZOOM, f"zoom:{digits}")
    if platform is Platform.TEAMS:
        if not _TEAMS_ID_RE.fullmatch(digits):
            return UnknownLink(original, "Teams meeting id is not 10 to 15 digits")
        return JoinLink(Platform.TEAMS, f"teams:meet:{digits}")
    if not _WEBEX_NUMBER_RE.fullmatch(digits):
        return UnknownLink(original, "Webex meeting number is not 8 to 12 digits")
    return JoinLink(Platform.WEBEX, f"webex:number:{digits}")


# ------------------------------------------------------------------------------------------------ shared

def _under(host: str, domains: tuple[str, ...]) -> bool:
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def _segments(path: str) -> list[str]:
    """Path segments, each percent-decoded after splitting (an encoded slash stays inside its segment)."""
    return [unquote(segment) for segment in path.split("/") if segment]


def _query(query: str) -> dict[str, str]:
    """Query parameters by lower-cased name; the first value wins."""
    found: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(name.lower(), value)
    return found
