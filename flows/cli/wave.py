"""`bascule wave`: cutover waves."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import (
    ForceOption,
    TenantOption,
    WaveOption,
    as_job,
    fail,
    flow_function,
    load_tenant,
    state_database,
)

app = typer.Typer(help="Cutover waves: plan (the dry run), freeze, cut over, verify, roll back; list, show, "
                       "cancel.", no_args_is_help=True)

CsvOutOption = Annotated[Path | None, typer.Option("--csv", help="Write the whole plan to this CSV file: one row "
                                                                 "per meeting and action.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@app.command("plan")
def wave_plan(
    tenant: TenantOption,
    wave: WaveOption,
    department: Annotated[list[str] | None, typer.Option(help="A direction, sous-direction or bureau (its "
                                                              "sub-units come along); repeatable.")] = None,
    select_csv: Annotated[Path | None, typer.Option("--select-csv", help="Select from a CSV with an 'anchor' or "
                                                                         "'email' column.")] = None,
    email: Annotated[list[str] | None, typer.Option(help="An agent's e-mail; repeatable.")] = None,
    unfreeze: Annotated[bool, typer.Option(help="Plan a frozen wave again (sends it back to planned).")] = False,
    force: ForceOption = False,
    csv_out: CsvOutOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Select the wave's persons and compute its plan: rooms, links, calendar rewrites, invitations, flags. This is
    the dry run: nothing is written anywhere but the state database."""
    _writable(csv_out)
    _refuse_unknown_names(tenant, wave, department or [], email or [])
    as_job(lambda: _view(lambda: flow_function("flows.waves", "plan_wave")(
        tenant_file=str(tenant), wave=wave, departments=department, emails=email, unfreeze=unfreeze,
        selection_csv=str(select_csv) if select_csv else None, force=force), tenant, as_json, "plan",
        csv_out=csv_out), tenant=tenant)


@app.command("freeze")
def wave_freeze(tenant: TenantOption, wave: WaveOption) -> None:
    """Freeze the plan: the cutover applies exactly what it says."""
    as_job(lambda: _view(lambda: flow_function("flows.waves", "freeze_wave")(tenant_file=str(tenant), wave=wave),
                         tenant, False, "plan"), tenant=tenant)


@app.command("cutover")
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
    as_job(lambda: _view(lambda: flow_function("flows.cutover", "cutover")(
        tenant_file=str(tenant), wave=wave, apply=apply, batch_size=batch_size, retry_failed=retry_failed,
        force=force), tenant, as_json,
        "outcome" if apply else "plan"), tenant=tenant)


@app.command("verify")
def wave_verify(tenant: TenantOption, wave: WaveOption,
                as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Check every room, link, rewritten event and invitation of a cut-over wave; exit code 1 on a problem."""
    as_job(lambda: _view(lambda: flow_function("flows.cutover", "verify_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "verify"), tenant=tenant)


@app.command("rollback")
def wave_rollback(tenant: TenantOption, wave: WaveOption,
                  as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Inside the guard window: restore rewritten events, mail the old links back, revert links."""
    as_job(lambda: _view(lambda: flow_function("flows.cutover", "rollback_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "rollback"), tenant=tenant)


def _view(run: Any, tenant: Path, as_json: bool, view: str, *, csv_out: Path | None = None) -> None:
    """Run a wave flow (as_job has checked the tenant and configured Prefect) and print what it returned."""
    from flows.tenant import TenantConfig

    config = TenantConfig.load(tenant)
    result = run()
    if csv_out is not None:
        _export(config.id, result["wave"], csv_out)
    if as_json:
        print(json.dumps(result, sort_keys=True, ensure_ascii=False, default=str))
    elif view == "plan" and result.get("dry_run"):
        from flows.plans import render_dry_run

        print(render_dry_run(result))
    elif view == "plan":
        from flows.plans import render_plan

        print(render_plan(result, more=f"every row is in {csv_out}" if csv_out else "see --csv FILE"))
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


def _refuse_unknown_names(tenant: Path, wave: str, departments: list[str], emails: list[str]) -> None:
    """Unknown departments and e-mails refused at once, before Prefect starts (the flow checks them again)."""
    from flows.jobs import in_job_group

    if in_job_group() or not (departments or emails):
        return
    from flows.plans import selection_check

    config = load_tenant(tenant)
    try:
        refusal = selection_check(state_database(), config.id, wave, departments=departments, emails=emails)
    except Exception:  # the job reports what went wrong (no schema yet, …) in its own words
        return
    if refusal is not None:
        fail(refusal)


def _writable(path: Path | None) -> None:
    """Refuse an export path that cannot be written before any work starts."""
    if path is not None and not (path.parent.resolve().is_dir() and os.access(path.parent.resolve(), os.W_OK)):
        fail(f"cannot write {path}: its directory does not exist or is not writable")


def _export(tenant_id: str, wave: str, path: Path) -> None:
    from flows.plans import write_plan_csv

    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            rows = write_plan_csv(state_database(), tenant_id, wave, out)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    print(f"{rows} rows (one per meeting and action) written to {path}", file=sys.stderr)


@app.command("list")
def wave_list(tenant: TenantOption, as_json: JsonOption = False) -> None:
    """The tenant's waves: state, persons, when created and cut over, how far the cutover went."""
    from flows.plans import list_waves, listing_json, render_waves

    config = load_tenant(tenant)
    waves = list_waves(state_database(), config.id)
    if as_json:
        print(json.dumps({"tenant": config.id, "waves": [listing_json(wave) for wave in waves]}, ensure_ascii=False,
                         sort_keys=True))
        return
    print(render_waves(config.id, waves))


@app.command("show")
def wave_show(tenant: TenantOption, wave: WaveOption, csv_out: CsvOutOption = None,
              as_json: JsonOption = False) -> None:
    """The plan of a wave (counts and the first rows of each table) and its history of states, from the audit."""
    from dataclasses import asdict

    from flows.plans import (
        WaveError,
        history_json,
        load_wave,
        plan_summary,
        render_history,
        render_plan,
        wave_history,
    )

    config = load_tenant(tenant)
    database = state_database()
    _writable(csv_out)
    try:
        summary = plan_summary(database, config.id, load_wave(database, config.id, wave))
    except WaveError as exc:
        fail(str(exc))
    history = wave_history(database, config.id, wave)
    if csv_out is not None:
        _export(config.id, wave, csv_out)
    if as_json:
        print(json.dumps({**asdict(summary), "history": [history_json(event) for event in history]},
                         ensure_ascii=False, sort_keys=True))
        return
    print(render_plan(summary, more=f"every row is in {csv_out}" if csv_out else "see --csv FILE"))
    print()
    print(render_history(history))


@app.command("cancel")
def wave_cancel(tenant: TenantOption, wave: WaveOption,
                author: Annotated[str | None, typer.Option(help="Who cancels (audit); default: $USER.")] = None,
                as_json: JsonOption = False) -> None:
    """Cancel a planned or frozen wave (audited); a wave whose cutover started is rolled back instead.

    Its actions are skipped and its meetings are free for another wave."""
    from dataclasses import asdict
    from datetime import UTC, datetime

    from flows.plans import WaveError, cancel_wave

    config = load_tenant(tenant)
    try:
        done = cancel_wave(state_database(), config.id, wave, now=datetime.now(UTC),
                           actor=author or os.environ.get("USER") or "unknown")
    except WaveError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(asdict(done), ensure_ascii=False, sort_keys=True))
        return
    print(f"wave {done.wave} of {done.tenant}: cancelled; {done.actions_skipped} planned actions will never run "
          "(nothing outside the state database had been written)")
