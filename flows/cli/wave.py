"""`bascule wave`: cutover waves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import ForceOption, TenantOption, WaveOption, as_job, flow_function, settings

app = typer.Typer(help="Cutover waves: plan (the dry run), freeze, cut over, verify, roll back.",
                  no_args_is_help=True)


@app.command("plan")
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
    as_job(lambda: _view(lambda: flow_function("flows.waves", "plan_wave")(
        tenant_file=str(tenant), wave=wave, departments=department, emails=email, unfreeze=unfreeze,
        selection_csv=str(csv_file) if csv_file else None, force=force), tenant, as_json, "plan"))


@app.command("freeze")
def wave_freeze(tenant: TenantOption, wave: WaveOption) -> None:
    """Freeze the plan: the cutover applies exactly what it says."""
    as_job(lambda: _view(lambda: flow_function("flows.waves", "freeze_wave")(tenant_file=str(tenant), wave=wave),
                         tenant, False, "plan"))


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
        "outcome" if apply else "plan"))


@app.command("verify")
def wave_verify(tenant: TenantOption, wave: WaveOption,
                as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Check every room, link, rewritten event and invitation of a cut-over wave; exit code 1 on a problem."""
    as_job(lambda: _view(lambda: flow_function("flows.cutover", "verify_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "verify"))


@app.command("rollback")
def wave_rollback(tenant: TenantOption, wave: WaveOption,
                  as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Inside the guard window: restore rewritten events, mail the old links back, revert links."""
    as_job(lambda: _view(lambda: flow_function("flows.cutover", "rollback_wave")(tenant_file=str(tenant), wave=wave),
                          tenant, as_json, "rollback"))


def _view(run: Any, tenant: Path, as_json: bool, view: str) -> None:
    from flows.runtime import configure_prefect
    from flows.tenant import TenantConfig

    TenantConfig.load(tenant)
    configure_prefect(settings())
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
