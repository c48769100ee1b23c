"""OpenLDAP slapd for directory tests: its own config and data directory, a loopback port, test schema.

Used two ways: `.ci/run` starts one in the background (`python3 tests/support/slapd.py start …`, before the
project is installed: only the standard library and ldap-utils' `ldapadd` here) and exports its address; without
that, the test session starts a private one if the slapd binary exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SLAPD = "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
TEST_SCHEMA = Path(__file__).parent / "ldap" / "bascule-test.schema"
DEFAULT_SUFFIX = "dc=bascule,dc=test"
RELAX_RULES = ("1.3.6.1.4.1.4203.666.5.12", True, None)  # lets the root DN set entryUUID, as slapadd would


@dataclass(frozen=True, slots=True)
class SlapdServer:
    """Where a running slapd answers and how to bind as its root DN."""

    uri: str
    suffix: str
    bind_dn: str
    password: str

    def connect(self) -> Any:
        from ldap3 import Connection, Server

        return Connection(Server(self.uri), user=self.bind_dn, password=self.password, auto_bind=True,
                          raise_exceptions=True)


def available() -> bool:
    return Path(SLAPD).exists() and (SCHEMA_DIR / "core.schema").exists() and shutil.which("ldapadd") is not None


def write_config(directory: Path, *, suffix: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    config = directory / "slapd.conf"
    config.write_text(f"""
include {SCHEMA_DIR}/core.schema
include {SCHEMA_DIR}/cosine.schema
include {SCHEMA_DIR}/inetorgperson.schema
include {TEST_SCHEMA}
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
sizelimit unlimited
database mdb
suffix "{suffix}"
rootdn "cn=admin,{suffix}"
rootpw {password}
directory {data}
maxsize 4294967296
index objectClass eq
# Service accounts see at most 100 entries per plain search; only RFC 2696 paging reaches the rest.
limits users size.soft=100 size.hard=100 size.prtotal=unlimited
""", encoding="utf-8")
    return config


def start(directory: Path, *, port: int, suffix: str = DEFAULT_SUFFIX, password: str = "bascule-test",
          foreground: bool = True) -> tuple[SlapdServer, subprocess.Popen[bytes] | None]:
    """Start slapd (in the foreground for a test session, daemonised for CI) and create the suffix entry."""
    if directory.exists():
        shutil.rmtree(directory)
    config = write_config(directory, suffix=suffix, password=password)
    uri = f"ldap://127.0.0.1:{port}"
    command = [SLAPD, "-f", str(config), "-h", f"{uri}/"]
    log = (directory / "slapd.log").open("wb")
    process: subprocess.Popen[bytes] | None
    if foreground:
        process = subprocess.Popen([*command, "-d", "0"], stdout=log, stderr=subprocess.STDOUT)
    else:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
        process = None
    _wait_for_port(port, process, directory / "slapd.log")
    server = SlapdServer(uri, suffix, f"cn=admin,{suffix}", password)
    _rdn_type, _, rdn_value = suffix.split(",", 1)[0].partition("=")
    subprocess.run(["ldapadd", "-x", "-H", uri, "-D", server.bind_dn, "-w", password],
                   input=f"dn: {suffix}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\n"
                         f"dc: {rdn_value}\no: bascule tests\n".encode(), check=True, capture_output=True)
    return server, process


def stop(process: subprocess.Popen[bytes] | None, directory: Path) -> None:
    if process is not None:
        process.terminate()
        process.wait(timeout=10)
        return
    pidfile = directory / "slapd.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text().strip()), 15)


def load_entries(server: SlapdServer, entries: list[tuple[str, dict[str, list[bytes]]]]) -> int:
    """Add (dn, raw attributes) entries in order, keeping their entryUUID; returns how many were added."""
    added = 0
    with server.connect() as connection:
        for dn, attributes in entries:
            classes = [value.decode() for value in attributes["objectclass"]]
            rest = {name: values for name, values in attributes.items() if name != "objectclass"}
            connection.add(dn, classes, rest, controls=[RELAX_RULES])
            added += 1
    return added


def set_attribute(server: SlapdServer, dn: str, name: str, values: list[str]) -> None:
    from ldap3 import MODIFY_REPLACE

    with server.connect() as connection:
        connection.modify(dn, {name: [(MODIFY_REPLACE, values)]})


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"slapd exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"slapd did not listen on {port}: {log.read_text(errors='replace')[-2000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description="Start slapd for bascule's tests (CI).")
    parser.add_argument("command", choices=["start"])
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--suffix", default=DEFAULT_SUFFIX)
    parser.add_argument("--password", default="bascule-test")
    args = parser.parse_args()
    server, _ = start(args.dir, port=args.port, suffix=args.suffix, password=args.password, foreground=False)
    print(f"export BASCULE_TEST_LDAP_URI={server.uri}")
    print(f"export BASCULE_TEST_LDAP_SUFFIX='{server.suffix}'")
    print(f"export BASCULE_TEST_LDAP_BIND_DN='{server.bind_dn}'")
    print(f"export BASCULE_TEST_LDAP_PASSWORD='{server.password}'")


if __name__ == "__main__":
    main()
