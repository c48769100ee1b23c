"""Real CalDAV servers on loopback for the calendar tests (contracts/calendars.md §3.5), started by the test session
from the packages the test extra installs:

- **Xandikos** (multi-user, RFC 6638 scheduling to local users; iMIP to external attendees through an SMTP port):
  users are named by the `X-Remote-User` header it trusts from 127.0.0.1; a user's first request creates
  `/{user}/calendars/calendar/`, its inbox and outbox; `calendar-user-address-set` is PROPPATCHed to its address
  (Xandikos keeps principals in memory: `warm()` after every start).
- **Radicale** (no scheduling), `[auth] type = none` (the Basic user name is taken as is, any password); calendars
  `/{user}/calendar/` made with MKCALENDAR.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

__all__ = ["CalDAVServer", "free_port", "seed_radicale", "start_radicale", "start_xandikos"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class CalDAVServer:
    """A running CalDAV server: its kind, base URL, where each user's calendar is, how to act as a user."""

    kind: str                          # "xandikos" or "radicale"
    url: str
    calendar_template: str             # e.g. "{url}/{user}/calendars/calendar/"
    scheduling: bool
    process: subprocess.Popen[bytes] = field(repr=False)
    domain: str = "example.gouv.fr"
    remote_user: bool = True               # Radicale: X-Remote-User (True) or the Basic user name

    def calendar_url(self, user: str) -> str:
        return self.calendar_template.format(url=self.url, user=user)

    def headers(self, user: str) -> dict[str, str]:
        return {"X-Remote-User": user} if self.remote_user else {}

    def auth(self, user: str) -> tuple[str, str] | None:
        return None if self.remote_user else (user, "unused")

    def client(self, user: str) -> httpx.Client:
        return httpx.Client(headers=self.headers(user), auth=self.auth(user), timeout=30)

    def warm(self, users: Iterable[str]) -> None:
        """Each user's calendar made and its address set (Xandikos: after every start)."""
        for user in users:
            with self.client(user) as client:
                if self.kind == "xandikos":
                    body = ('<?xml version="1.0" encoding="utf-8"?><d:propertyupdate xmlns:d="DAV:" '
                            'xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><c:calendar-user-address-set>'
                            f"<d:href>mailto:{user}@{self.domain}</d:href></c:calendar-user-address-set></d:prop>"
                            "</d:set></d:propertyupdate>")
                    answer = client.request("PROPPATCH", f"{self.url}/{user}/", content=body,
                                            headers={"Content-Type": "application/xml"})
                    assert answer.status_code == 207, answer.text
                else:
                    answer = client.request("MKCALENDAR", self.calendar_url(user))
                    assert answer.status_code in (201, 405), answer.text   # 405: it exists already

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _spawn(command: list[str], directory: Path) -> subprocess.Popen[bytes]:
    """The server with its output in `<directory>.log` beside its data: a pipe nobody reads fills up (64 KiB of
    request logs) and blocks the server in the middle of a request."""
    directory.mkdir(parents=True, exist_ok=True)
    with _log(directory).open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _log(directory: Path) -> Path:
    return directory.parent / f"{directory.name}.log"


def _wait(process: subprocess.Popen[bytes], url: str, name: str, directory: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = _log(directory).read_text(errors="replace")
            raise RuntimeError(f"{name} exited: {output[-2000:]}")
        try:
            httpx.request("OPTIONS", url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{name} did not answer within 30 s")


def _executable(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else (shutil.which(name) or name)


def start_xandikos(directory: Path, *, smtp_port: int | None = None, smtp_from: str = "agenda@example.gouv.fr",
                   port: int | None = None) -> CalDAVServer:
    """Xandikos on `port` (a free one by default: a caller that must name its URL first picks it, free_port)."""
    port = port or free_port()
    command = [_executable("xandikos"), "multi-user", "-d", str(directory), "-l", "127.0.0.1", "-p", str(port),
               "--defaults", "--trust-x-remote-user-from", "127.0.0.1", "--no-detect-systemd"]
    if smtp_port is not None:
        command += ["--imip-send", "smtp", "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_port),
                    "--smtp-from", smtp_from, "--smtp-encryption", "none"]
    process = _spawn(command, directory)
    url = f"http://127.0.0.1:{port}"
    _wait(process, url + "/", "xandikos", directory)
    return CalDAVServer("xandikos", url, "{url}/{user}/calendars/calendar/", scheduling=True, process=process)


def seed_radicale(directory: Path, items: Iterable[tuple[str, str, bytes]], *, users: Iterable[str] = ()) -> int:
    """Write calendar objects straight into the storage of a Radicale not started yet (its file layout:
    `collection-root/<user>/calendar/<name>`, the collection's `.Radicale.props`), and an empty calendar for each
    of `users`: thousands of PUTs through the server would take minutes. Returns how many objects were written."""
    root = directory / "collections" / "collection-root"

    def calendar(user: str) -> Path:
        folder = root / user / "calendar"
        if not folder.exists():
            folder.mkdir(parents=True)
            (folder / ".Radicale.props").write_text('{"tag": "VCALENDAR"}', encoding="utf-8")
        return folder

    for user in users:
        calendar(user)
    written = 0
    for user, name, data in items:
        (calendar(user) / name).write_bytes(data)
        written += 1
    return written


def start_radicale(directory: Path, *, remote_user: bool = False) -> CalDAVServer:
    """Radicale on a free port; `remote_user`: the user named by the X-Remote-User header (a trusted proxy), else
    the Basic user name (any password)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    config.write_text(f"""[server]
hosts = 127.0.0.1:{port}
[auth]
type = {"http_x_remote_user" if remote_user else "none"}
[storage]
filesystem_folder = {directory / "collections"}
[logging]
level = warning
""", encoding="utf-8")
    process = _spawn([sys.executable, "-m", "radicale", "--config", str(config)], directory)
    url = f"http://127.0.0.1:{port}"
    _wait(process, url + "/", "radicale", directory)
    server = CalDAVServer("radicale", url, "{url}/{user}/calendar/", scheduling=False, process=process)
    server.remote_user = remote_user
    return server
