"""`bascule demo` as a user runs it, and the example tenant that ships with the repository."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flows.demo import render_sandbox_tenant
from flows.tenant import TenantConfig
from sandbox.generator.ministry import GeneratorOptions, generate_ministry
from tests.conftest import AS_OF, REPO
from tests.support.served import served_sandbox


def _user_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("BASCULE_", "PREFECT_"))}


def _bascule(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=600, check=False)


def _check_first_demo(done: subprocess.CompletedProcess[str], tmp_path: Path) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout)  # --json: only the JSON object on stdout
    assert "bascule demo" in done.stderr and "directory loaded" in done.stderr  # the summary went to stderr
    manifest = json.loads((tmp_path / ".bascule" / "demo" / "ministry" / "manifest.json").read_text())
    assert summary["generate"]["agents"] == 400
    assert summary["load_directory"]["people"] == manifest["directory"]["people"]
    assert summary["load_directory"]["quarantined"] == manifest["directory"]["quarantine"]
    assert summary["onboard"]["ready"] and summary["onboard"]["checks"]["failed"] == 0
    identity = manifest["identity"]
    assert summary["identities"]["persons"] == identity["persons"]
    assert summary["identities"]["conflicts"] == {kind: n for kind, n in identity["conflicts"].items() if n}
    assert summary["identities"]["matches_by_method"] == {m: n for m, n in identity["matches_by_method"].items() if n}
    wave = summary["wave"]
    assert wave["state"] == "verified" and wave["verified"] and wave["verify_problems"] == 0
    assert wave["rooms_created"] > 0 and wave["events_rewritten"] > 0 and wave["invitations_sent"] > 0
    assert wave["mails_captured"] == wave["invitations_sent"] and wave["held"] == 0
    # Zoom and Webex series the organisers keep in Outlook move in place (Exchange tells the attendees); only the
    # others are mailed under a made-up UID, flagged uid_unknown.
    assert wave["calendar_scan"]["matched"] > 0 and wave["calendar_events_rewritten"] > 0
    assert wave["series_by_channel"] == {
        "calendar_in_place": wave["events_rewritten"] + wave["calendar_events_rewritten"], "itip_original_uid": 0,
        "mail_invented_uid": wave["invitations_sent"]}
    assert wave["meetings_flagged_by_kind"].get("uid_unknown", 0) >= wave["invitations_sent"]
    assert wave["actions_failed_by_reason"] == {} and wave["not_applied"] == {}
    assert set(wave["meetings_flagged_by_kind"]) <= {"over_150_invitees", "webinar", "host_unmatched",
                                                     "host_in_conflict", "external_guests", "dial_in",
                                                     "no_fixed_time", "registration", "uid_unknown"}
    assert sum(wave["meetings_flagged_by_kind"].values()) > 0
    # After the wave: Visio use through the webhook receiver, licences released on that evidence only, a contract
    # amended, and the savings figures (issue 12).
    use, plan, release = summary["visio_use"], summary["plan"], summary["release"]
    assert use["webhooks"] > 0 and use["webhooks_refused"] == 0 and use["seen_three_days"] > use["seen_once"] > 0
    assert 0 < release["released"] <= plan["releasable_licences"] and not release["failed"]
    assert release["held_by_reason"].get("NOT_ENOUGH_VISIO_DAYS", 0) >= use["seen_once"]
    savings = summary["savings"]
    assert savings["reclaimed_seats"] == release["released"]
    assert 0 < savings["users_left"] <= release["released"]
    assert Decimal(savings["benchmark_annual"]) == 10 * savings["users_left"]
    assert Decimal(savings["stranded"]) > 0 and Decimal(savings["potential_annual"]) > 0
    amended = summary["contract_amended"]
    assert amended and amended["to"] < amended["from"] and savings["realised_from"] == amended["effective"]
    assert Decimal(savings["realised_run_rate_then"]) == (amended["from"] - amended["to"]) * Decimal("150.00")
    where = summary["where"]
    assert Path(where["tenant_file"]).is_file() and Path(where["environment"]).is_file()
    assert len(list(Path(where["mail_spool"]).glob("*.eml"))) == wave["invitations_sent"]
    assert (tmp_path / ".bascule" / "prefect").is_dir()  # project-local PREFECT_HOME, not ~/.prefect
    return summary


@pytest.mark.slow
def test_the_demo_runs_twice_and_a_second_wave_goes_on_its_data_through_a_restarted_sandbox(tmp_path: Path) -> None:
    """The front door as a user walks through it: `bascule demo --json`, `bascule demo` again in the same
    directory (afresh, and it says so), then what the demo says to do next: the sandbox served again on the demo's
    ministry, onboarding, a second wave planned, frozen, cut over (held hosts logging in to Visio), verified."""
    first = _check_first_demo(_bascule(["demo", "--agents", "400", "--seed", "5", "--json"], tmp_path,
                                       _user_environment()), tmp_path)
    again = _bascule(["demo", "--agents", "400", "--seed", "5"], tmp_path, _user_environment())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "starting afresh" in again.stderr
    assert "{" not in again.stdout and "bascule demo" in again.stdout  # no Python dicts in what people read
    for said in ("Where the demo left its data", "bascule sandbox serve --data", "bascule sandbox login",
                 "licences releasable", "State benchmark beside it", "bascule savings report",
                 first["where"]["environment"], first["where"]["tenant_file"], first["where"]["mail_spool"]):
        assert said in again.stdout, said

    where = first["where"]
    env = _user_environment()
    for line in Path(where["environment"]).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    tenant = Path(where["tenant_file"])
    with served_sandbox(Path(where["ministry"]), rate_limits=False) as served:
        # The tenant names the default ports of `bascule sandbox serve`; this one listens on free ports.
        text = tenant.read_text(encoding="utf-8")
        tenant.write_text(text.replace("127.0.0.1:8700", served.url.removeprefix("http://"))
                          .replace("127.0.0.1:8701", served.tls_url.removeprefix("https://"))
                          .replace("port = 8725", f"port = {served.smtp_port}"), encoding="utf-8")
        assert _bascule(["onboard", "--tenant", str(tenant)], tmp_path, env).returncode == 0
        listed = _bascule(["directory", "departments", "--tenant", str(tenant), "--depth", "1", "--json"], tmp_path,
                          env)
        assert listed.returncode == 0, listed.stderr
        department = max((d for d in json.loads(listed.stdout)["departments"]
                          if d["depth"] == 0 and d["path"] not in first["wave"]["departments"]),
                         key=lambda d: (d["persons"], d["path"]))["path"]
        steps = [["wave", "plan", "--tenant", str(tenant), "--wave", "vague-2", "--department", department],
                 ["wave", "freeze", "--tenant", str(tenant), "--wave", "vague-2"],
                 ["wave", "cutover", "--tenant", str(tenant), "--wave", "vague-2", "--apply"]]
        for step in steps:
            done = _bascule(step, tmp_path, env)
            assert done.returncode == 0, (step, done.stderr[-3000:])
        shown = _bascule(["wave", "show", "--tenant", str(tenant), "--wave", "vague-2", "--csv",
                          str(tmp_path / "vague-2.csv")], tmp_path, env)
        assert shown.returncode == 0, shown.stderr
        with (tmp_path / "vague-2.csv").open(encoding="utf-8", newline="") as rows:
            held = sorted({row["host"] for row in csv.DictReader(rows) if row["state"] == "held"})
        if held:
            logged_in = _bascule(["sandbox", "login", *held, "--url", served.url], tmp_path, env)
            assert logged_in.returncode == 0, logged_in.stderr
            done = _bascule(steps[-1], tmp_path, env)
            assert done.returncode == 0, done.stderr[-3000:]
        verified = _bascule(["wave", "verify", "--tenant", str(tenant), "--wave", "vague-2", "--json"], tmp_path, env)
        assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr[-3000:]
        report = json.loads(verified.stdout)
        assert report["verified"] and report["state"] == "verified" and report["problem_count"] == 0
        assert sum(report["counts"].values()) > 0


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
