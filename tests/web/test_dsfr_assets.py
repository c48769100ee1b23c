"""The vendored DSFR and dsfr-chart files: intact, listed, self-contained, licensed; and the checks can fail."""

from __future__ import annotations

import io
import json
import posixpath
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO
from web.assets import (
    BANNER,
    CHART_DIR,
    DSFR_DIR,
    LICENCE_FILES,
    MANIFEST_NAME,
    PACKAGE_DIRS,
    STATIC_DIR,
    asset_path,
    css_references,
    load_manifest,
    sri_sha384,
    verify,
)
from web.dsfr_refresh import (
    CGU_MEMBER,
    Pin,
    RefreshError,
    read_accepted_cgu_version,
    read_cgu_version,
    sri_sha512,
    strip_source_map_lines,
    vendor,
)

MANIFEST = load_manifest()
VENDORED_CSS = (f"{DSFR_DIR}/dsfr.min.css", f"{DSFR_DIR}/utility/utility.min.css", f"{CHART_DIR}/DSFRChart.css")


def test_every_manifest_entry_is_a_file_with_its_sha384() -> None:
    assert len(MANIFEST.files) > 1000
    for relative, expected in MANIFEST.files.items():
        assert expected.startswith("sha384-")
        assert sri_sha384((STATIC_DIR / relative).read_bytes()) == expected, relative


def test_every_vendored_file_is_in_the_manifest() -> None:
    on_disk = {path.relative_to(STATIC_DIR).as_posix()
               for directory in PACKAGE_DIRS.values() for path in (STATIC_DIR / directory).rglob("*")
               if path.is_file()}
    assert on_disk == set(MANIFEST.files)


@pytest.mark.parametrize("relative", VENDORED_CSS)
def test_every_css_url_resolves_to_a_shipped_file(relative: str) -> None:
    for target in set(css_references((STATIC_DIR / relative).read_text(encoding="utf-8"))):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
        assert resolved in MANIFEST.files, f"{relative}: url({target})"
        assert (STATIC_DIR / resolved).is_file(), f"{relative}: url({target})"


def test_the_css_references_are_found() -> None:
    """The url() parser sees the fonts and icons (so the test above is not vacuous) and skips data: URIs."""
    dsfr = css_references((STATIC_DIR / DSFR_DIR / "dsfr.min.css").read_text(encoding="utf-8"))
    assert any(target.startswith("fonts/Marianne") for target in dsfr)
    assert any(target.startswith("icons/") for target in dsfr)
    assert not any(target.startswith("data:") for target in dsfr)
    utility = css_references((STATIC_DIR / DSFR_DIR / "utility/utility.min.css").read_text(encoding="utf-8"))
    assert len(set(utility)) > 1000
    assert css_references("a{b:url('x.svg?v=1#f')}c{d:url(data:image/png;base64,AA)}e{f:url( \"y.woff2\" )}") == [
        "x.svg", "y.woff2"]


def test_licences_and_terms_ship_and_the_banner_stays() -> None:
    for relative in LICENCE_FILES:
        assert (STATIC_DIR / relative).is_file(), relative
    assert "Etalab 2.0" in (STATIC_DIR / DSFR_DIR / "LICENSE.md").read_text(encoding="utf-8")
    assert "MIT License" in (STATIC_DIR / CHART_DIR / "LICENSE").read_text(encoding="utf-8")
    head = (STATIC_DIR / DSFR_DIR / "dsfr.min.css").read_text(encoding="utf-8").splitlines()[:4]
    assert any(BANNER in line for line in head)


def test_the_accepted_terms_are_the_vendored_ones() -> None:
    accepted = read_accepted_cgu_version((REPO / ".dsfr.yml").read_text(encoding="utf-8"))
    assert accepted == MANIFEST.accepted_cgu_version
    assert read_cgu_version((STATIC_DIR / DSFR_DIR / "doc/legal/cgu.md").read_text(encoding="utf-8")) == accepted


def test_no_source_map_reference_remains_and_the_change_is_recorded() -> None:
    for relative in MANIFEST.files:
        if relative.endswith((".css", ".js")):
            assert b"sourceMappingURL" not in (STATIC_DIR / relative).read_bytes(), relative
    modified = json.loads((STATIC_DIR / MANIFEST_NAME).read_text(encoding="utf-8"))["modified"]
    assert set(modified) == {f"{DSFR_DIR}/dsfr.module.min.js", f"{DSFR_DIR}/dsfr.nomodule.min.js"}


def test_the_shipped_files_verify() -> None:
    assert verify() == []


def test_asset_paths_and_integrity() -> None:
    assert asset_path("dsfr.min.css") == "dsfr/1.15.3/dsfr.min.css"
    assert asset_path("DSFRChart.js", package="dsfr-chart") == "dsfr-chart/2.0.4/DSFRChart.js"
    for relative in ("dsfr.min.css", "dsfr.module.min.js", "dsfr.nomodule.min.js", "utility/utility.min.css",
                     "favicon/favicon.svg"):
        assert MANIFEST.integrity(asset_path(relative)).startswith("sha384-")
    for relative in ("DSFRChart.js", "DSFRChart.css"):
        assert MANIFEST.integrity(asset_path(relative, package="dsfr-chart")).startswith("sha384-")
    with pytest.raises(KeyError, match="not a vendored file"):
        MANIFEST.integrity(asset_path("dsfr.css"))
    with pytest.raises(ValueError, match="not a relative path"):
        asset_path("../../manifest.json")
    assert MANIFEST.static_dir == STATIC_DIR


# --------------------------------------------------------------------------- verify catches tampering


def _rehash(static: Path, relative: str) -> None:
    """Make the manifest agree with a tampered file, so only the check under test can notice."""
    path = static / MANIFEST_NAME
    raw = json.loads(path.read_text(encoding="utf-8"))
    if (static / relative).exists():
        raw["files"][relative] = sri_sha384((static / relative).read_bytes())
    else:
        del raw["files"][relative]
    path.write_text(json.dumps(raw), encoding="utf-8")


def _flip_a_byte(static: Path) -> None:
    path = static / DSFR_DIR / "icons/system/check-line.svg"
    path.write_bytes(path.read_bytes().replace(b"svg", b"SVG", 1))


def _delete_a_font(static: Path) -> None:
    (static / DSFR_DIR / "fonts/Marianne-Bold.woff2").unlink()


def _add_a_stray_file(static: Path) -> None:
    (static / CHART_DIR / "extra.js").write_text("alert(1)\n", encoding="utf-8")


def _drop_an_icon_the_css_uses(static: Path) -> None:
    (static / DSFR_DIR / "icons/system/close-line.svg").unlink()
    _rehash(static, f"{DSFR_DIR}/icons/system/close-line.svg")


def _point_the_chart_css_elsewhere(static: Path) -> None:
    with (static / CHART_DIR / "DSFRChart.css").open("a", encoding="utf-8") as css:
        css.write(".x{background:url(https://cdn.example/x.svg)}.y{background:url(../../dsfr/1.15.3/nope.svg)}")
    _rehash(static, f"{CHART_DIR}/DSFRChart.css")


def _remove_the_banner(static: Path) -> None:
    path = static / DSFR_DIR / "dsfr.min.css"
    path.write_text(path.read_text(encoding="utf-8").replace(BANNER, "SPDX-License-Identifier: MIT"),
                    encoding="utf-8")
    _rehash(static, f"{DSFR_DIR}/dsfr.min.css")


def _put_a_source_map_back(static: Path) -> None:
    with (static / DSFR_DIR / "dsfr.module.min.js").open("a", encoding="utf-8") as js:
        js.write("//# sourceMappingURL=dsfr.module.min.js.map\n")
    _rehash(static, f"{DSFR_DIR}/dsfr.module.min.js")


def _drop_the_terms(static: Path) -> None:
    (static / DSFR_DIR / "doc/legal/cgu.md").unlink()
    _rehash(static, f"{DSFR_DIR}/doc/legal/cgu.md")


def _manifest_for_another_release(static: Path) -> None:
    path = static / MANIFEST_NAME
    path.write_text(path.read_text(encoding="utf-8").replace('"1.15.3"', '"1.16.0"'), encoding="utf-8")


@pytest.mark.parametrize(("tamper", "expected"), [
    (_flip_a_byte, f"{DSFR_DIR}/icons/system/check-line.svg: sha384 differs"),
    (_delete_a_font, f"{DSFR_DIR}/fonts/Marianne-Bold.woff2: listed in manifest.json but missing"),
    (_add_a_stray_file, f"{CHART_DIR}/extra.js: not in manifest.json"),
    (_drop_an_icon_the_css_uses, f"{DSFR_DIR}/dsfr.min.css: url(icons/system/close-line.svg) is not a vendored"),
    (_point_the_chart_css_elsewhere, f"{CHART_DIR}/DSFRChart.css: url(https://cdn.example/x.svg) is not a vendored"),
    (_point_the_chart_css_elsewhere, f"{CHART_DIR}/DSFRChart.css: url(../../dsfr/1.15.3/nope.svg) is not a vendored"),
    (_remove_the_banner, f"{DSFR_DIR}/dsfr.min.css: the '{BANNER}' banner is gone"),
    (_put_a_source_map_back, f"{DSFR_DIR}/dsfr.module.min.js: still names a source map"),
    (_drop_the_terms, f"{DSFR_DIR}/doc/legal/cgu.md: licence file missing"),
    (_manifest_for_another_release, "manifest.json: unreadable"),
], ids=lambda value: getattr(value, "__name__", "")[1:] or None)
def test_verify_catches_a_tampered_copy(tmp_path: Path, tamper: Callable[[Path], None], expected: str) -> None:
    static = tmp_path / "static"
    shutil.copytree(STATIC_DIR, static, copy_function=shutil.copyfile)  # intact: test_the_shipped_files_verify
    tamper(static)
    problems = verify(static)
    assert any(problem.startswith(expected) for problem in problems), problems


# --------------------------------------------------------------------------- the refresh script, on fake tarballs


def test_only_the_source_map_comment_lines_go() -> None:
    js = b"/*! banner */\nconst a='//# sourceMappingURL= in a string';\r\n//# sourceMappingURL=x.js.map\n"
    assert strip_source_map_lines(js) == b"/*! banner */\nconst a='//# sourceMappingURL= in a string';\r\n"
    css = b"a{b:c}\n/*# sourceMappingURL=x.css.map */"
    assert strip_source_map_lines(css) == b"a{b:c}\n"
    assert strip_source_map_lines(b"a\rb\n") == b"a\rb\n"


def test_the_terms_versions_are_read_like_the_install_gate() -> None:
    assert read_accepted_cgu_version("# comment\naccept-license: '1.0.1'  # ok\n") == "1.0.1"
    assert read_accepted_cgu_version("accept-license=2.0\n") == "2.0"
    with pytest.raises(RefreshError):
        read_accepted_cgu_version("# accept-license: 1.0.1\n")
    assert read_cgu_version("---\ncguVersion: '1.0.1'\n---\n\n## Modalités\n") == "1.0.1"
    with pytest.raises(RefreshError):
        read_cgu_version("## Modalités\ncguVersion: '1.0.1'\n")


def _tarball(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def _fake_release(tmp_path: Path, *, cgu_version: str = "1.0.1") -> tuple[Pin, Path]:
    tarball = _tarball(tmp_path / "fake.tgz", {
        "package/dist/fake.min.css": b"/*! SPDX */a{b:url(icons/i.svg)}\n/*# sourceMappingURL=fake.min.css.map */\n",
        "package/dist/fake.min.css.map": b"{}",
        "package/dist/icons/i.svg": b"<svg/>",
        "package/dist/icons/sub/j.svg": b"<svg/>",
        CGU_MEMBER: f"---\ncguVersion: '{cgu_version}'\n---\n".encode(),
    })
    pin = Pin(name="@fake/dsfr", version="9.9.9", integrity=sri_sha512(tarball.read_bytes()), directory="fake/9.9.9",
              copies=(("package/dist/fake.min.css", "fake.min.css"), ("package/dist/icons/", "icons/"),
                      (CGU_MEMBER, "cgu.md")))
    return pin, tarball


def test_vendor_copies_the_plan_strips_maps_and_writes_the_manifest(tmp_path: Path) -> None:
    pin, tarball = _fake_release(tmp_path)
    static = tmp_path / "static"
    (static / "fake" / "9.9.8").mkdir(parents=True)
    (static / "fake" / "9.9.8" / "old.css").write_text("old", encoding="utf-8")
    manifest = vendor(tarballs={pin.spec: tarball}, static_dir=static, accepted_cgu_version="1.0.1", pins=[pin])
    assert sorted(manifest["files"]) == ["fake/9.9.9/cgu.md", "fake/9.9.9/fake.min.css", "fake/9.9.9/icons/i.svg",
                                         "fake/9.9.9/icons/sub/j.svg"]
    assert (static / "fake/9.9.9/fake.min.css").read_bytes() == b"/*! SPDX */a{b:url(icons/i.svg)}\n"
    assert list(manifest["modified"]) == ["fake/9.9.9/fake.min.css"]
    assert not (static / "fake" / "9.9.8").exists()
    written = json.loads((static / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert written["packages"][0]["integrity"] == pin.integrity
    assert written["accepted_cgu_version"] == "1.0.1"


@pytest.mark.parametrize(("case", "message"), [
    ("integrity", "is not the pinned"),
    ("terms", "carries terms of use 1.1.0"),
    ("layout", "upstream layout changed"),
])
def test_vendor_stops_before_writing(tmp_path: Path, case: str, message: str) -> None:
    pin, tarball = _fake_release(tmp_path, cgu_version="1.1.0" if case == "terms" else "1.0.1")
    if case == "integrity":
        pin = Pin(name=pin.name, version=pin.version, integrity=sri_sha512(b"another"), directory=pin.directory,
                  copies=pin.copies)
    if case == "layout":
        pin = Pin(name=pin.name, version=pin.version, integrity=pin.integrity, directory=pin.directory,
                  copies=(*pin.copies, ("package/dist/fonts/", "fonts/")))
    static = tmp_path / "static"
    with pytest.raises(RefreshError, match=message):
        vendor(tarballs={pin.spec: tarball}, static_dir=static, accepted_cgu_version="1.0.1", pins=[pin])
    assert not static.exists()
