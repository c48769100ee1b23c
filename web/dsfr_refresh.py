"""Maintainers only: re-vendor the pinned DSFR and dsfr-chart releases into web/static (`python -m web.dsfr_refresh`).

The one place node/npm is used. `npm pack` fetches the two tarballs (it runs no package scripts); each must match
its pinned `dist.integrity`, and the DSFR's terms of use (`cguVersion` in `doc/legal/cgu.md`) must be the version
accepted in the repository's `.dsfr.yml`. The run-time subset is copied unmodified except that `sourceMappingURL`
comment lines are removed (the maps are not shipped); `web/static/manifest.json` records versions, integrity, the
accepted terms, what was changed, and every file's sha384. Bumping a version: change the pins here and the versions
in web/assets.py, run this, review the diff.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from web.assets import CHART_DIR, CHART_VERSION, DSFR_DIR, DSFR_VERSION, MANIFEST_NAME, STATIC_DIR, sri_sha384

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE_FILE = ".dsfr.yml"
CGU_MEMBER = "package/doc/legal/cgu.md"
SOURCE_MAP_CHANGE = "removed the sourceMappingURL comment line (the source maps are not vendored)"


@dataclass(frozen=True, slots=True)
class Pin:
    """One npm release to vendor: its registry integrity and which tarball members go where."""

    name: str
    version: str
    integrity: str  # `npm view <name>@<version> dist.integrity`
    directory: str  # under web/static
    copies: tuple[tuple[str, str], ...]  # (tarball member, or prefix ending in "/"; destination under directory)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"


PINS: tuple[Pin, ...] = (
    Pin(name="@gouvfr/dsfr", version=DSFR_VERSION, directory=DSFR_DIR,
        integrity="sha512-R9AALZc1LfZjtytWZMOaUIOHWTkllBZ/sZlsL8TpKZVgF3qUKXt/uNYh+L1D1Fh4p92ZqWxbtNcebsigBZe5pQ==",
        copies=(("package/dist/dsfr.min.css", "dsfr.min.css"),
                ("package/dist/dsfr.module.min.js", "dsfr.module.min.js"),
                ("package/dist/dsfr.nomodule.min.js", "dsfr.nomodule.min.js"),
                ("package/dist/utility/utility.min.css", "utility/utility.min.css"),
                ("package/dist/icons/", "icons/"),
                ("package/dist/fonts/", "fonts/"),
                ("package/dist/favicon/", "favicon/"),
                ("package/LICENSE.md", "LICENSE.md"),
                (CGU_MEMBER, "doc/legal/cgu.md"))),  # where LICENSE.md's link points
    Pin(name="@gouvfr/dsfr-chart", version=CHART_VERSION, directory=CHART_DIR,
        integrity="sha512-/JoW6R7ystExxvuLvHacR0ZWcL1PpDkUyG/niF8jgqRaksWgb31EpJGQjmgaHR29nrANdyvoRb1DEQAL00XZ1A==",
        copies=(("package/dist/DSFRChart/DSFRChart.js", "DSFRChart.js"),
                ("package/dist/DSFRChart/DSFRChart.css", "DSFRChart.css"),
                ("package/LICENSE", "LICENSE"))),
)

# `//# sourceMappingURL=x.map` (JS) or `/*# sourceMappingURL=x.map */` (CSS), alone on its line.
_SOURCE_MAP_LINE = re.compile(rb"^[ \t]*(//[#@][ \t]*sourceMappingURL=\S*|/\*[#@][ \t]*sourceMappingURL=\S*[ \t]*\*/)"
                              rb"[ \t]*\r?\n?$")
# Same regex as the DSFR's own install gate (scripts/preinstall.js).
_ACCEPT_LICENSE = re.compile(r"""^\s*accept-license\s*(?:=|:)\s*["']?([^"'\s#]+)["']?\s*(?:#.*)?$""")
_CGU_VERSION = re.compile(r"""^\s*cguVersion:\s*["']?([^"'\s]+)["']?""", re.MULTILINE)


class RefreshError(Exception):
    """The vendored files were left as they were: a tarball, a licence or the upstream layout is not as pinned."""


def sri_sha512(content: bytes) -> str:
    """npm's `dist.integrity` form of some bytes."""
    return "sha512-" + base64.b64encode(hashlib.sha512(content).digest()).decode("ascii")


def read_accepted_cgu_version(text: str) -> str:
    """The `accept-license` version of a `.dsfr.yml`, read the way the DSFR's install gate reads it."""
    for line in text.splitlines():
        match = _ACCEPT_LICENSE.match(line)
        if match:
            return match.group(1)
    raise RefreshError(f"{ACCEPTANCE_FILE} has no accept-license line")


def read_cgu_version(cgu_markdown: str) -> str:
    """The `cguVersion` of the front matter of the DSFR's `doc/legal/cgu.md`."""
    front_matter = re.match(r"\A---\r?\n(.*?)\r?\n---", cgu_markdown, re.DOTALL)
    version = _CGU_VERSION.search(front_matter.group(1)) if front_matter else None
    if version is None:
        raise RefreshError(f"{CGU_MEMBER} has no cguVersion in its front matter")
    return version.group(1)


def strip_source_map_lines(content: bytes) -> bytes:
    """The content without its `sourceMappingURL` comment lines; every other byte kept."""
    return b"".join(line for line in content.splitlines(keepends=True) if not _SOURCE_MAP_LINE.match(line))


def fetch_tarballs(workdir: Path, pins: Sequence[Pin] = PINS) -> dict[str, Path]:
    """`npm pack` each pinned release into workdir (no install, no package scripts); spec -> tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise RefreshError("npm is not on PATH (only this maintainer script needs node)")
    done = subprocess.run([npm, "pack", "--json", *(pin.spec for pin in pins)],  # noqa: S603 - fixed argv
                          cwd=workdir, check=True, capture_output=True, text=True, timeout=600)
    packed = json.loads(done.stdout)
    return {f"{entry['name']}@{entry['version']}": workdir / entry["filename"] for entry in packed}


def plan_files(pin: Pin, tarball: tarfile.TarFile) -> dict[str, str]:
    """Destination (relative to web/static) -> tarball member, for one release; RefreshError if a copy matches none."""
    members = {member.name: member for member in tarball.getmembers()}
    plan: dict[str, str] = {}
    for source, destination in pin.copies:
        names = sorted(name for name in members if name.startswith(source)) if source.endswith("/") else (
            [source] if source in members else [])
        for name in names:
            member = members[name]
            if not member.isfile():
                if member.isdir():
                    continue
                raise RefreshError(f"{pin.spec}: {name} is not a regular file")
            relative = PurePosixPath(destination + name[len(source):]) if source.endswith("/") else PurePosixPath(
                destination)
            if relative.is_absolute() or ".." in relative.parts:
                raise RefreshError(f"{pin.spec}: refusing member path {name!r}")
            plan[f"{pin.directory}/{relative}"] = name
        if not names:
            raise RefreshError(f"{pin.spec}: no {source} in the tarball (upstream layout changed?)")
    return plan


def vendor(*, tarballs: Mapping[str, Path], static_dir: Path, accepted_cgu_version: str,
           pins: Sequence[Pin] = PINS) -> dict[str, Any]:
    """Check the tarballs and the terms, replace the vendored directories and write the manifest; returns it."""
    contents: dict[str, bytes] = {}
    upstream: dict[str, str] = {}
    packages: list[dict[str, Any]] = []
    for pin in pins:
        blob = tarballs[pin.spec].read_bytes()
        if sri_sha512(blob) != pin.integrity:
            raise RefreshError(f"{pin.spec}: tarball integrity {sri_sha512(blob)} is not the pinned {pin.integrity}")
        with tarfile.open(tarballs[pin.spec], mode="r:gz") as tarball:
            plan = plan_files(pin, tarball)
            if CGU_MEMBER in plan.values():
                cgu = _read_member(tarball, CGU_MEMBER).decode("utf-8")
                if read_cgu_version(cgu) != accepted_cgu_version:
                    raise RefreshError(
                        f"{pin.spec} carries terms of use {read_cgu_version(cgu)}, {ACCEPTANCE_FILE} accepts "
                        f"{accepted_cgu_version}: read {CGU_MEMBER}, then update {ACCEPTANCE_FILE} if bascule accepts")
            for relative, member in plan.items():
                original = _read_member(tarball, member)
                contents[relative] = strip_source_map_lines(original)
                if contents[relative] != original:
                    upstream[relative] = sri_sha384(original)
        packages.append({"name": pin.name, "version": pin.version, "integrity": pin.integrity,
                         "directory": pin.directory, "copied": dict(pin.copies)})
    leftovers = [relative for relative, content in contents.items() if b"sourceMappingURL" in content]
    if leftovers:
        raise RefreshError(f"sourceMappingURL outside a comment line of its own in {leftovers}: look by hand")

    for pin in pins:
        top = static_dir / pin.directory.split("/")[0]
        if top.exists():
            shutil.rmtree(top)  # older versions go too
    for relative, content in sorted(contents.items()):
        path = static_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    manifest = {
        "generator": "python -m web.dsfr_refresh",
        "accepted_cgu_version": accepted_cgu_version,
        "packages": packages,
        "modified": {relative: {"change": SOURCE_MAP_CHANGE, "upstream_sha384": sha}
                     for relative, sha in sorted(upstream.items())},
        "files": {relative: sri_sha384(content) for relative, content in sorted(contents.items())},
    }
    (static_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    return manifest


def _read_member(tarball: tarfile.TarFile, name: str) -> bytes:
    extracted = tarball.extractfile(name)
    if extracted is None:
        raise RefreshError(f"{name} is not a regular file")
    with extracted:
        return extracted.read()


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch, check and vendor the pinned releases."""
    parser = argparse.ArgumentParser(prog="python -m web.dsfr_refresh", description=__doc__.splitlines()[0])
    parser.add_argument("--static-dir", type=Path, default=STATIC_DIR)
    parser.add_argument("--acceptance", type=Path, default=REPO_ROOT / ACCEPTANCE_FILE,
                        help=f"the {ACCEPTANCE_FILE} recording which terms of use were accepted")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        accepted = read_accepted_cgu_version(args.acceptance.read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory(prefix="dsfr-refresh-") as workdir:
            tarballs = fetch_tarballs(Path(workdir))
            manifest = vendor(tarballs=tarballs, static_dir=args.static_dir, accepted_cgu_version=accepted)
    except (RefreshError, OSError, subprocess.CalledProcessError) as error:
        log.error("dsfr refresh stopped: %s", error)
        return 1
    total = sum((args.static_dir / relative).stat().st_size for relative in manifest["files"])
    log.info("vendored %d files, %.1f MB, terms of use %s accepted; modified: %s", len(manifest["files"]),
             total / 1e6, accepted, ", ".join(manifest["modified"]) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
