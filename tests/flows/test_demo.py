"""`bascule demo` as a user runs it, and the example tenant that ships with the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.demo import render_sandbox_tenant
from flows.tenant import TenantConfig
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from tests.conftest import AS_OF, REPO


@pytest.mark.slow
def test_demo_prints_a_summary_and_ends_with_one_json_object(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("BASCULE_", "PREFECT_"))}
    done = subprocess.run([sys.executable, "-m", "flows.cli", "demo", "--agents", "400", "--seed", "5", "--json"],
                          cwd=tmp_path, env=env, text=True, capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert "bascule demo" in done.stdout and "directory loaded" in done.stdout
    manifest = json.loads((tmp_path / ".bascule" / "demo" / "ministry" / "manifest.json").read_text())
    assert summary["generate"]["agents"] == 400
    assert summary["load_directory"]["people"] == manifest["directory"]["people"]
    assert summary["load_directory"]["quarantined"] == manifest["directory"]["quarantine"]
    assert summary["onboard"]["ready"] and summary["onboard"]["checks"]["failed"] == 0
    assert "onboarding           ready" in done.stdout and "identity conflicts" in done.stdout
    identity = manifest["identity"]
    assert summary["identities"]["persons"] == identity["persons"]
    assert summary["identities"]["conflicts"] == {kind: n for kind, n in identity["conflicts"].items() if n}
    assert summary["identities"]["matches_by_method"] == {m: n for m, n in identity["matches_by_method"].items() if n}
    wave = summary["wave"]
    assert wave["state"] == "verified" and wave["verified"] and wave["verify_problems"] == 0
    assert wave["rooms_created"] > 0 and wave["events_rewritten"] > 0 and wave["invitations_sent"] > 0
    assert wave["mails_captured"] == wave["invitations_sent"] and wave["held"] == 0
    assert wave["actions_failed_by_reason"] == {} and wave["not_applied"] == {}
    assert set(wave["meetings_flagged_by_kind"]) <= {"over_150_invitees", "webinar", "host_unmatched",
                                                     "host_in_conflict", "external_guests", "dial_in",
                                                     "no_fixed_time", "registration"}
    assert sum(wave["meetings_flagged_by_kind"].values()) > 0
    assert f"wave {wave['name']}" in done.stdout and "Visio rooms" in done.stdout
    assert (tmp_path / ".bascule" / "demo" / "bascule.db").exists()
    assert (tmp_path / ".bascule" / "prefect").is_dir()  # project-local PREFECT_HOME, not ~/.prefect


def test_example_tenant_matches_the_sandbox_ministry(tmp_path: Path) -> None:
    manifest = generate_ministry(tmp_path, GeneratorOptions(agents=2000, seed=42, as_of=AS_OF))
    shipped = (REPO / "tenants" / "example.toml").read_text(encoding="utf-8")
    rendered = render_sandbox_tenant(manifest, ldif_path="../.bascule/sandbox/directory.ldif",
                                     ca_file="../.bascule/sandbox/tls/cert.pem")
    assert shipped.endswith(rendered)
    # Where the README's commands put the files the example names (a tenant naming a missing file is refused).
    checkout = tmp_path / "checkout"
    (checkout / "tenants").mkdir(parents=True)
    (checkout / "tenants" / "example.toml").write_text(shipped, encoding="utf-8")
    (checkout / ".bascule" / "sandbox" / "tls").mkdir(parents=True)
    (checkout / ".bascule" / "sandbox" / "directory.ldif").write_text("version: 1\n", encoding="utf-8")
    (checkout / ".bascule" / "sandbox" / "tls" / "cert.pem").write_text("", encoding="utf-8")
    config = TenantConfig.load(checkout / "tenants" / "example.toml")
    assert config.sources.zoom is not None and config.sources.zoom.account_id == manifest["tenant"]["zoom_account_id"]
    assert config.directory.ldif_path == (checkout / ".bascule" / "sandbox" / "directory.ldif").resolve()
