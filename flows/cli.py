"""The `bascule` command. Imports stay inside commands: `bascule --help` must not pay for Prefect."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(name="bascule", help="Move a ministry from Zoom, Teams and Webex to Visio.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="The state database.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The synthetic ministry and the local stand-ins of external systems.",
                          no_args_is_help=True)
directory_app = typer.Typer(help="The ministry directory.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sandbox_app, name="sandbox")
identities_app = typer.Typer(help="Persons, matches and identity conflicts (ProConnect readiness of every agent).",
                              no_args_is_help=True)
wave_app = typer.Typer(help="Cutover waves: plan (the dry run), freeze, cut over, verify, roll back.",
                       no_args_is_help=True)
links_app = typer.Typer(help="Old meeting links and the Visio rooms they now lead to (helpdesk).", no_args_is_help=True)
app.add_typer(directory_app, name="directory")
app.add_typer(identities_app, name="identities")
app.add_typer(wave_app, name="wave")
app.add_typer(links_app, name="links")

TenantOption = Annotated[Path, typer.Option("--tenant", help="Tenant (ministry) TOML file.")]


def _fail(message: str) -> None:
    print(f"bascule: error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _settings() -> Any:
    from flows.settings import Settings

    return Settings()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Bring the database (BASCULE_DATABASE_URL, or SQLite in the data directory) to the latest schema."""
    from db.migrate import current, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.database, revision)
    print(f"database at revision {current(settings.database)}")


@db_app.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Option(help="Target revision ('base' = empty).")]) -> None:
    """Take the database back to an earlier schema revision."""
    from db.migrate import current, downgrade

    settings = _settings()
    downgrade(settings.database, revision)
    print(f"database at revision {current(settings.database)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database."""
    from db.migrate import current

    print(current(_settings().database) or "empty (run `bascule db upgrade`)")


@sandbox_app.command("generate")
def sandbox_generate(
    out: Annotated[Path, typer.Option(help="Directory to write the ministry into.")],
    agents: Annotated[int, typer.Option(min=1, help="Number of agents.")] = 2000,
    seed: Annotated[int, typer.Option(help="Same seed, same bytes.")] = 42,
    flavour: Annotated[str, typer.Option(help="Directory flavour: ad or supann.")] = "ad",
    as_of: Annotated[str | None, typer.Option(help="Reference date YYYY-MM-DD (default: today, UTC).")] = None,
    base_dn: Annotated[str | None, typer.Option(help="Base DN of the directory export.")] = None,
) -> None:
    """Write a synthetic ministry: LDIF directory, platform datasets (JSON Lines) and manifest.json."""
    from sandbox.generator.directory import Flavour
    from sandbox.generator.ministry import GeneratorOptions, generate_ministry

    try:
        chosen = Flavour(flavour)
        reference = date.fromisoformat(as_of) if as_of else None
    except ValueError as exc:
        _fail(str(exc))
        return
    options = GeneratorOptions(agents=agents, seed=seed, flavour=chosen, base_dn=base_dn, as_of=reference)
    manifest = generate_ministry(out, options)
    identity = manifest["identity"]
    assert isinstance(identity, dict)
    print(f"{out}: {manifest['directory']['people']} people, "  # type: ignore[index]
          f"{identity['source_accounts_mapped']} source accounts, manifest.json written")


@sandbox_app.command("serve")
def sandbox_serve(
    data: Annotated[Path, typer.Option(help="A ministry written by `bascule sandbox generate`.")],
    port: Annotated[int, typer.Option(help="Plain HTTP port (Zoom, Graph, Webex APIs).")] = 8700,
    tls_port: Annotated[int, typer.Option(help="TLS port (Entra token endpoint for azure-identity).")] = 8701,
    smtp_port: Annotated[int, typer.Option(help="SMTP sink port (calendar updates land in DATA/mail/*.eml).")]
    = 8725,
    rate_limits: Annotated[bool, typer.Option(help="Enforce the vendors' published rate limits.")] = True,
    zoom_plan: Annotated[str, typer.Option(help="Zoom plan whose limits apply: free, pro or business.")] = "business",
    faults: Annotated[str, typer.Option(help="Injected faults, e.g. throttle=0.02,server_error=0.01,timeout=0.005,"
                                             "truncate=0.01,seed=7 (rates per request). An injected timeout holds "
                                             "the answer until the client gives up (at most timeout_cap_seconds, "
                                             "120), then processes the request anyway; timeout_seconds=S makes it a "
                                             "fixed delay instead.")] = "",
    meet_application: Annotated[list[str] | None, typer.Option(
        help="Another Visio External API application, as ID:SECRET[:DOMAINS][:inactive] (repeatable). DOMAINS: "
             "comma-separated e-mail domains it may act for (default: the ministry's; '*': any domain); 'inactive': "
             "its token requests get 401 \"Application is inactive\". The default application "
             "(bascule-sandbox-visio-application-000001) stays unless an option gives its id.")] = None,
    meet_inactive_user: Annotated[list[str] | None, typer.Option(
        help="A Visio user whose account is disabled (repeatable): tokens are issued for it, room calls get 401 "
             "\"User account is disabled.\" (a logged-in user is created when no directory entry has the address).")]
    = None,
    meet_no_base_url: Annotated[bool, typer.Option(
        "--meet-no-base-url",
        help="Visio without APPLICATION_BASE_URL: room bodies have no `url` and a 201 no Location.")] = False,
    meet_version: Annotated[str, typer.Option(
        help="The Meet version Visio behaves as: v1.27.0 (the release: the token endpoint refuses form bodies) or "
             "main (later: it refuses multipart instead).")] = "v1.27.0",
) -> None:
    """Serve the ministry as Zoom, Graph, Webex, Visio (Meet + LiveKit) and an SMTP sink on loopback until
    interrupted."""
    import signal
    import threading

    from sandbox.meet import VERSIONS, MeetOptions
    from sandbox.server import SandboxConfig, SandboxServer

    if not (data / "manifest.json").exists():
        _fail(f"no generated ministry in {data} (run `bascule sandbox generate --out {data}` first)")
    if zoom_plan not in ("free", "pro", "business"):
        _fail("--zoom-plan must be free, pro or business")
    from sandbox.faults import FaultRates

    try:
        changes: dict[str, Any] = {key.strip(): (int(value) if key.strip() in ("seed", "retry_after_seconds")
                                                  else float(value))
                                   for key, _, value in (part.partition("=") for part in faults.split(",") if part)}
        rates = FaultRates(**changes)
    except (TypeError, ValueError) as exc:
        _fail(f"--faults: {exc}")
        return
    if meet_version not in VERSIONS:
        _fail(f"--meet-version must be one of {', '.join(VERSIONS)}")
    try:
        applications = _meet_applications(meet_application or [])
    except ValueError as exc:
        _fail(f"--meet-application: {exc}")
        return
    meet = MeetOptions(applications=applications, inactive_users=tuple(meet_inactive_user or ()),
                       base_url=None if meet_no_base_url else MeetOptions().base_url, version=meet_version)
    config = SandboxConfig(data_dir=data, port=port, tls_port=tls_port, tls_dir=data / "tls", rate_limits=rate_limits,
                           zoom_plan=zoom_plan, faults=rates, meet=meet)  # type: ignore[arg-type]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from sandbox.smtp import SmtpSink

    with SandboxServer(config) as server, SmtpSink(port=smtp_port, spool=data / "mail") as sink:
        print(f"sandbox serving {data}: {server.url} (Zoom /zoom/v2, Graph /graph/v1.0, Webex /webex/v1/, "
              f"Meet /meet/ as {meet_version}, LiveKit /livekit/), Entra token endpoint {server.tls_url} "
              f"(CA {server.ca_file}), "
              f"SMTP sink {sink.host}:{sink.port} (mail in {data / 'mail'}); Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


def _meet_applications(specs: list[str]) -> Any:
    """`ID:SECRET[:DOMAINS][:inactive]` options → the Meet applications, the default one first (None: it alone)."""
    from sandbox.meet import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, MeetApplication

    if not specs:
        return None
    applications = {SANDBOX_CLIENT_ID: MeetApplication(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET)}
    for spec in specs:
        client_id, _, rest = spec.partition(":")
        secret, _, rest = rest.partition(":")
        if not client_id or not secret:
            raise ValueError("expected ID:SECRET[:DOMAINS][:inactive]")
        parts = rest.split(":") if rest else []
        active = True
        if parts and parts[-1] == "inactive":
            active = False
            parts.pop()
        if len(parts) > 1:
            raise ValueError("expected ID:SECRET[:DOMAINS][:inactive] (DOMAINS comma-separated)")
        domains: tuple[str, ...] | None = None
        if parts and parts[0] == "*":
            domains = ()
        elif parts and parts[0]:
            domains = tuple(domain.strip().lower() for domain in parts[0].split(",") if domain.strip())
        applications[client_id] = MeetApplication(client_id, secret, active=active, domains=domains)
    return tuple(applications.values())


@app.command()
def onboard(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Register the tenant and check it is ready: credentials and scopes of each source, the directory, the Visio
    application for each domain, SIRET, cost model. Exit code 1 when a check failed."""
    _as_job(lambda: _onboard(tenant, as_json))


def _onboard(tenant: Path, as_json: bool) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(_settings())
    from flows.onboard import onboard as onboard_flow
    from flows.onboard import render_readiness

    report = onboard_flow(tenant_file=str(tenant))
    print(json.dumps(report, sort_keys=True, ensure_ascii=False) if as_json else render_readiness(report))
    if not report["ready"]:
        raise typer.Exit(1)


@app.command()
def extract(
    tenant: TenantOption,
    platform: Annotated[list[str] | None, typer.Option(help="Only this platform (repeatable).")] = None,
    now: Annotated[str | None, typer.Option(help="Reference instant (ISO 8601) for expired series.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Run even if the tenant is not onboarded and ready.")] = False,
) -> None:
    """Extract users, licences and meetings of the tenant's sources (resumable; a second run is a delta pass)."""
    _as_job(lambda: _extract(tenant, platform, now, force))


def _extract(tenant: Path, platforms: list[str] | None, now: str | None, force: bool) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(_settings())
    from flows.extract import extract as extract_flow

    summary = extract_flow(tenant_file=str(tenant), platforms=platforms, now=now, force=force)
    print(json.dumps(summary, sort_keys=True))


@directory_app.command("load")
def directory_load(tenant: TenantOption,
                   ldif: Annotated[Path | None, typer.Option(help="LDIF export (default: the tenant's).")] = None,
                   page_size: Annotated[int, typer.Option(min=1, max=5000, help="Records per page.")] = 1000,
                   ) -> None:
    """Load the directory export into the state database (resumable; re-running changes nothing)."""
    _as_job(lambda: _directory_load(tenant, ldif, page_size))


def _directory_load(tenant: Path, ldif: Path | None, page_size: int) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)  # one clear line before Prefect starts if the file is wrong
    configure_prefect(_settings())
    from flows.directory import load_directory

    summary = load_directory(tenant_file=str(tenant), ldif_path=str(ldif) if ldif else None, page_size=page_size)
    print(json.dumps(summary, sort_keys=True))


ForceOption = Annotated[bool, typer.Option("--force", help="Run even if the tenant is not onboarded and ready.")]


@identities_app.command("map")
def identities_map(tenant: TenantOption, force: ForceOption = False,
                   batch_size: Annotated[int, typer.Option(min=100, max=50_000, help="Entries per task.")] = 5000,
                   ) -> None:
    """Map the directory and the extracted accounts to persons, matches and conflicts (resumable, idempotent)."""
    _as_job(lambda: _identities_map(tenant, force, batch_size))


def _identities_map(tenant: Path, force: bool, batch_size: int) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(_settings())
    from flows.identities import map_identities

    summary = map_identities(tenant_file=str(tenant), batch_size=batch_size, force=force)
    print(json.dumps(summary, sort_keys=True))


@identities_app.command("report")
def identities_report(
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (conflict keys as in the "
                                                         "generator's manifest).")] = False,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write every open conflict to this CSV file.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the report as an HTML page.")] = None,
) -> None:
    """Counts of persons, matches by method and open conflicts by kind, with CSV and HTML detail."""
    from flows import identity_report

    config = _tenant(tenant)
    database = _settings().database
    report = identity_report.counts(database, config.id)
    if csv_out is not None:
        with csv_out.open("w", encoding="utf-8", newline="") as out:
            rows = identity_report.write_conflicts_csv(database, config.id, out)
        print(f"{rows} conflicts written to {csv_out}", file=sys.stderr)
    if html_out is not None:
        html_out.write_text(identity_report.render_html(database, config.id), encoding="utf-8")
        print(f"report written to {html_out}", file=sys.stderr)
    if as_json:
        print(json.dumps(report, sort_keys=True, ensure_ascii=False))
        return
    if report["pass"] is None:
        print(f"tenant {config.id}: identities never mapped (run `bascule identities map --tenant {tenant}`)")
        return
    print(identity_report.render_text(report))


@identities_app.command("export-conflicts")
def identities_export(tenant: TenantOption,
                      out: Annotated[Path | None, typer.Option(help="CSV file (default: standard output).")] = None,
                      ) -> None:
    """Write the open conflicts as the CSV the migration team fills in (action, person_anchor, reason)."""
    from flows.identity_report import write_conflicts_csv

    config = _tenant(tenant)
    if out is None:
        write_conflicts_csv(_settings().database, config.id, sys.stdout)
        return
    with out.open("w", encoding="utf-8", newline="") as handle:
        rows = write_conflicts_csv(_settings().database, config.id, handle)
    print(f"{rows} conflicts written to {out}")


@identities_app.command("apply-overrides")
def identities_apply(
    file: Annotated[Path, typer.Argument(help="The CSV of export-conflicts with decisions filled in.")],
    tenant: TenantOption,
    author: Annotated[str | None, typer.Option(help="Who decided (audit); default: $USER.")] = None,
) -> None:
    """Store the decisions of a conflicts CSV: force_match, exclude, mark_service, or clear. Applied on every
    `identities map`; a row naming an unknown account or person is refused and nothing of it is applied."""
    from flows.identity_report import apply_overrides

    config = _tenant(tenant)
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror}")
        return
    except UnicodeDecodeError:
        _fail(f"{file} is not UTF-8 text: save the CSV as UTF-8 and apply it again")
        return
    outcome = apply_overrides(_settings().database, config.id, lines,
                              author=author or os.environ.get("USER") or "unknown")
    for refused in outcome.refused:
        print(f"refused: {refused}", file=sys.stderr)
    print(f"{len(outcome.applied)} decisions applied, {len(outcome.refused)} refused, "
          f"{outcome.rows_without_decision} rows without a decision; run `bascule identities map` to apply them")
    if outcome.refused:
        raise typer.Exit(1)


def _tenant(path: Path) -> Any:
    from flows.tenant import TenantConfig, TenantFileError

    try:
        return TenantConfig.load(path)
    except TenantFileError as exc:
        _fail(str(exc))


WaveOption = Annotated[str, typer.Option("--wave", help="Wave name, e.g. vague-1-dgca.")]


@wave_app.command("plan")
def wave_plan(
    tenant: TenantOption,
    wave: WaveOption,
    department: Annotated[list[str] | None, typer.Option(help="A direction, sous-direction or bureau (its "
                                                              "sub-units come along); repeatable.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="CSV with an 'anchor' or 'email' column.")] = None,
    email: Annotated[list[str] | None, typer.Option(help="An agent's e-mail; repeatable.")] = None,
    unfreeze: Annotated[bool, typer.Option(help="Plan a frozen wave again (sends it back to planned).")] = False,
    force: ForceOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Select the wave's persons and compute its plan: rooms, links, calendar rewrites, invitations, flags. This is
    the dry run: nothing is written anywhere but the state database."""
    _as_job(lambda: _wave(lambda: _flow("flows.waves", "plan_wave")(
        tenant_file=str(tenant), wave=wave, departments=department, emails=email, unfreeze=unfreeze,
        selection_csv=str(csv_file) if csv_file else None, force=force), tenant, as_json, "plan"))


@wave_app.command("freeze")
def wave_freeze(tenant: TenantOption, wave: WaveOption) -> None:
    """Freeze the plan: the cutover applies exactly what it says."""
    _as_job(lambda: _wave(lambda: _flow("flows.waves", "freeze_wave")(tenant_file=str(tenant), wave=wave), tenant,
                          False, "plan"))


@wave_app.command("cutover")
def wave_cutover(
    tenant: TenantOption,
    wave: WaveOption,
    apply: Annotated[bool, typer.Option("--apply", help="Apply the plan. Without it: show what would be done.")]
    = False,
    batch_size: Annotated[int, typer.Option(min=10, max=5000, help="Actions per task.")] = 500,
    retry_failed: Annotated[bool, typer.Option(help="Try refused actions again (once their cause is fixed).")]
    = False,
    force: Annotated[bool, typer.Option(help="Apply even if the tenant is not onboarded and ready.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as one JSON object.")] = False,
) -> None:
    """Apply a frozen wave through the outbox (resumable: run it again after any interruption)."""
    _as_job(lambda: _wave(lambda: _flow("flows.cutover", "cutover")(
        tenant_file=str(tenant), wave=wave, apply=apply, batch_size=batch_size, retry_failed=retry_failed,
        force=force), tenant, as_json,
        "outcome" if apply else "plan"))


@wave_app.command("verify")
def wave_verify(tenant: TenantOption, wave: WaveOption,
                as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Check every room, link, rewritten event and invitation of a cut-over wave; exit code 1 on a problem."""
    _as_job(lambda: _wave(lambda: _flow("flows.cutover", "verify_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "verify"))


@wave_app.command("rollback")
def wave_rollback(tenant: TenantOption, wave: WaveOption,
                  as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Inside the guard window: restore rewritten events, mail the old links back, revert links."""
    _as_job(lambda: _wave(lambda: _flow("flows.cutover", "rollback_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "rollback"))


def _flow(module: str, name: str) -> Any:
    import importlib

    return getattr(importlib.import_module(module), name)


def _wave(run: Any, tenant: Path, as_json: bool, view: str) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(_settings())
    result = run()
    if as_json:
        print(json.dumps(result, sort_keys=True, ensure_ascii=False, default=str))
    elif view == "plan":
        from flows.waves import render_plan

        print(render_plan(result))
    elif view == "outcome":
        from flows.cutover import render_outcome

        print(render_outcome(result))
    elif view == "verify":
        print(f"wave {result['wave']}: " + ("verified" if result["verified"] else
                                            f"not verified, {result['problem_count']} problem(s)") + "; "
              + ", ".join(f"{k} {v}" for k, v in sorted(result["counts"].items())))
        if result["outstanding"]:
            print("  not applied: " + ", ".join(f"{k} {v}" for k, v in sorted(result["outstanding"].items()))
                  + " (see `bascule wave cutover`)")
        for problem in result["problems"][:20]:
            print(f"  {problem['problem']}: {problem['action']} {problem['detail']}")
    else:
        print(f"wave {result['wave']}: {result['state']}; {result['events_restored']} events restored, "
              f"{result['rollback_invitations_sent']} updates with the old link sent, {result['links_reverted']} "
              f"links reverted; {result['rooms_not_deleted']} Visio rooms left for the operators to delete")
    if view == "verify" and not result["verified"]:
        raise typer.Exit(1)


@links_app.command("lookup")
def links_lookup(
    reference: Annotated[str, typer.Argument(help="An old Zoom, Teams or Webex link, or a meeting id/number.")],
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The Visio link, owner and status of an old meeting link (exit code 1 when it has none)."""
    from flows.links import lookup_link, render_lookup

    config = _tenant(tenant)
    answer = lookup_link(_settings().database, config.id, reference)
    print(json.dumps(answer, ensure_ascii=False, sort_keys=True) if as_json else render_lookup(answer))
    if not answer["found"]:
        raise typer.Exit(1)


@app.command()
def demo(
    agents: Annotated[int, typer.Option(min=10, help="Agents in the synthetic ministry.")] = 2000,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 42,
    flavour: Annotated[str, typer.Option(help="Directory flavour: ad or supann.")] = "ad",
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON object of counts per stage.")] = False,
) -> None:
    """Generate a ministry and run every available stage on it, with SQLite and Prefect without a server."""
    _as_job(lambda: _demo(agents, seed, flavour, as_json))


def _demo(agents: int, seed: int, flavour: str, as_json: bool) -> None:
    from flows.demo import DemoOptions, render_summary
    from flows.runtime import configure_prefect
    from sandbox.generator.directory import Flavour

    settings = _settings()
    data_dir = (settings.data_dir / "demo").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The demo keeps its own SQLite file unless a database was chosen; flows read it from the environment.
    os.environ.setdefault("BASCULE_DATABASE_URL", f"sqlite:///{data_dir / 'bascule.db'}")
    configure_prefect(settings)
    from flows.demo import run_demo

    summary = run_demo(data_dir, os.environ["BASCULE_DATABASE_URL"],
                       DemoOptions(agents=agents, seed=seed, flavour=Flavour(flavour)))
    print(render_summary(summary))
    if as_json:
        print(json.dumps(summary, sort_keys=True, ensure_ascii=False))


def _as_job(work: Any) -> None:
    """Run `work` in a process group of its own (see flows.jobs), with errors on one line."""
    from flows.jobs import in_job_group, run_in_job_group

    if not in_job_group():
        code = run_in_job_group(sys.argv[1:])
        raise typer.Exit(code)
    try:
        work()
    except typer.Exit:  # a command's own exit code (click's Exit is a RuntimeError)
        raise
    except Exception as exc:  # the boundary: one line for people, the chain for logs
        _fail(_one_line(exc))


def _one_line(exc: BaseException) -> str:
    from db.engine import DatabaseUrlError
    from flows.tenant import TenantFileError

    if isinstance(exc, TenantFileError | DatabaseUrlError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except Exception as exc:
        print(f"bascule: error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
