"""The vendored DSFR and dsfr-chart files: where they are, their SRI values, and a check that they are intact.

`web/static/manifest.json` (written by `python -m web.dsfr_refresh`) lists every vendored file with its sha384 in
SRI form. The app mounts `web/static` at `/static`; templates link `asset_path(...)` with `integrity=` from
`Manifest.integrity(...)`. `verify` is what the tests (and anyone suspicious of a checkout) run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

DSFR_VERSION: Final = "1.15.3"
CHART_VERSION: Final = "2.0.4"
DSFR_DIR: Final = f"dsfr/{DSFR_VERSION}"
CHART_DIR: Final = f"dsfr-chart/{CHART_VERSION}"
PACKAGE_DIRS: Final[Mapping[str, str]] = MappingProxyType({"dsfr": DSFR_DIR, "dsfr-chart": CHART_DIR})

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
MANIFEST_NAME: Final = "manifest.json"

# Etalab-2.0 asks for attribution, the CGU restrict who may use the look, MIT asks for its notice: all three ship.
LICENCE_FILES: Final = (f"{DSFR_DIR}/LICENSE.md", f"{DSFR_DIR}/doc/legal/cgu.md", f"{CHART_DIR}/LICENSE")
BANNER: Final = "SPDX-License-Identifier: Etalab-2.0"
BANNERED_FILES: Final = (f"{DSFR_DIR}/dsfr.min.css", f"{DSFR_DIR}/dsfr.module.min.js",
                         f"{DSFR_DIR}/dsfr.nomodule.min.js", f"{DSFR_DIR}/utility/utility.min.css")
_BANNER_WINDOW = 512  # the banner is the file's first comment, within its first few lines

_CSS_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)""", re.DOTALL)

Package = Literal["dsfr", "dsfr-chart"]


@dataclass(frozen=True, slots=True)
class Manifest:
    """The vendored files as `web/static/manifest.json` records them."""

    static_dir: Path
    dsfr_version: str
    chart_version: str
    accepted_cgu_version: str
    files: Mapping[str, str]  # path relative to static_dir -> "sha384-<base64>"

    def integrity(self, relative_path: str) -> str:
        """The SRI value (`sha384-…`) of a vendored file, by its path relative to the static directory."""
        try:
            return self.files[relative_path]
        except KeyError:
            raise KeyError(f"{relative_path!r} is not a vendored file (see {MANIFEST_NAME})") from None


def asset_path(relative: str, *, package: Package = "dsfr") -> str:
    """The path under the static mount of a file of the pinned release, e.g. `dsfr/1.15.3/dsfr.min.css`."""
    if relative.startswith("/") or ".." in relative.split("/") or not relative:
        raise ValueError(f"not a relative path inside the package: {relative!r}")
    return f"{PACKAGE_DIRS[package]}/{relative}"


def sri_sha384(content: bytes) -> str:
    """The Subresource Integrity value of some bytes, sha384 flavour."""
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode("ascii")


def load_manifest(static_dir: Path = STATIC_DIR) -> Manifest:
    """Read the manifest shipped next to the vendored files; ValueError if it is not for the pinned versions."""
    raw = json.loads((static_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    versions = {package["directory"]: package["version"] for package in raw["packages"]}
    if versions.get(DSFR_DIR) != DSFR_VERSION or versions.get(CHART_DIR) != CHART_VERSION:
        raise ValueError(f"{MANIFEST_NAME} lists {versions}, this code pins DSFR {DSFR_VERSION} "
                         f"and dsfr-chart {CHART_VERSION}: run python -m web.dsfr_refresh")
    files = raw["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError(f"{MANIFEST_NAME}: 'files' must map paths to SRI strings")
    return Manifest(static_dir=static_dir, dsfr_version=DSFR_VERSION, chart_version=CHART_VERSION,
                    accepted_cgu_version=str(raw["accepted_cgu_version"]), files=MappingProxyType(dict(files)))


def css_references(css: str) -> list[str]:
    """The local targets of a stylesheet's `url(...)`: data: URIs dropped, queries and fragments cut off."""
    targets = []
    for match in _CSS_URL.finditer(css):
        url = match.group(2).strip()
        if url.startswith("data:"):
            continue
        target = url.split("#", 1)[0].split("?", 1)[0]
        if target:
            targets.append(target)
    return targets


def verify(static_dir: Path = STATIC_DIR) -> list[str]:
    """Every way the vendored files differ from what the manifest and the licences require; empty when intact."""
    try:
        manifest = load_manifest(static_dir)
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{MANIFEST_NAME}: unreadable ({error})"]
    problems: list[str] = []
    for relative, expected in sorted(manifest.files.items()):
        path = static_dir / relative
        if not path.is_file():
            problems.append(f"{relative}: listed in {MANIFEST_NAME} but missing")
        elif sri_sha384(path.read_bytes()) != expected:
            problems.append(f"{relative}: sha384 differs from {MANIFEST_NAME}")
    for directory in PACKAGE_DIRS.values():
        for path in sorted((static_dir / directory).rglob("*")):
            relative = path.relative_to(static_dir).as_posix()
            if path.is_file() and relative not in manifest.files:
                problems.append(f"{relative}: not in {MANIFEST_NAME}")
    problems.extend(f"{relative}: licence file missing" for relative in LICENCE_FILES
                    if relative not in manifest.files or not (static_dir / relative).is_file())
    problems.extend(_text_problems(manifest))
    return problems


def _text_problems(manifest: Manifest) -> list[str]:
    problems: list[str] = []
    for relative in BANNERED_FILES:
        path = manifest.static_dir / relative
        if path.is_file() and BANNER not in path.read_text(encoding="utf-8")[:_BANNER_WINDOW]:
            problems.append(f"{relative}: the '{BANNER}' banner is gone from its head")
    for relative in sorted(manifest.files):
        path = manifest.static_dir / relative
        if not relative.endswith((".css", ".js")) or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        if "sourceMappingURL" in text:
            problems.append(f"{relative}: still names a source map (sourceMappingURL)")
        if relative.endswith(".css"):
            problems.extend(_unresolved_urls(relative, text, manifest))
    return problems


def _unresolved_urls(relative: str, css: str, manifest: Manifest) -> list[str]:
    problems = []
    for target in sorted(set(css_references(css))):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
        if "://" in target or target.startswith("/") or resolved not in manifest.files:
            problems.append(f"{relative}: url({target}) is not a vendored file")
    return problems
