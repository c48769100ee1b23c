"""`bascule licences`: release source licences once people use Visio (dry run first), restore them if needed."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.common import TenantOption, as_job, flow_function, settings

app = typer.Typer(help="Source licences: who may lose theirs (adoption evidence), release them, give them back.",
                  no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
WaveFilter = Annotated[str | None, typer.Option("--wave", help="Only this wave's people.")]


def _print(result: Any, as_json: bool, render: str) -> None:
    if not hasattr(result, "tenant"):   # the run was stopped: Prefect's Cancelled state
        raise typer.Exit(130)
    if as_json:
        print(json.dumps(asdict(result), sort_keys=True, ensure_ascii=False, default=str))
        return
    from flows import licences

    print(getattr(licences, render)(result))


def _run(name: str, render: str, as_json: bool, **arguments: Any) -> None:
    from flows.runtime import configure_prefect

    configure_prefect(settings())
    _print(flow_function("flows.licences", name)(**arguments), as_json, render)


@app.command("plan")
def licences_plan(
    tenant: TenantOption,
    wave: WaveFilter = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write every licence of the plan to this CSV "
                                                                "(one row per person and licence, with the reason).")]
    = None,
    as_json: JsonOption = False,
) -> None:
    """The dry run (writes nothing): who is releasable under the tenant's release policy, who is held and why (one
    reason each), seats and money per SKU."""
    as_job(lambda: _run("licences_plan", "render_plan", as_json, tenant_file=str(tenant), wave=wave,
                        csv_path=str(csv_out) if csv_out else None), tenant=tenant)


@app.command("release")
def licences_release(
    tenant: TenantOption,
    wave: WaveFilter = None,
    apply: Annotated[bool, typer.Option("--apply", help="Release at the source. Without it: the plan (dry run).")]
    = False,
    retry_refused: Annotated[bool, typer.Option(help="Try again licences a source refused (once the cause is "
                                                     "fixed, e.g. the person left the licensing group).")] = False,
    by: Annotated[str | None, typer.Option("--by", help="Who releases (audit); default: $USER.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Release the releasable licences through the outbox: Zoom users downgraded to Basic, Microsoft licences
    removed (assignLicense), Webex licences removed; each read back from the source, audited. Resumable: run it
    again after any interruption, nothing is released twice."""
    import os

    actor = by or os.environ.get("USER") or "bascule"

    def work() -> None:
        _run("release_licences", "render_outcome" if apply else "render_release_dry_run", as_json,
             tenant_file=str(tenant), wave=wave, apply=apply, retry_refused=retry_refused, actor=actor)

    as_job(work, tenant=tenant)


@app.command("restore")
def licences_restore(
    tenant: TenantOption,
    email: Annotated[list[str] | None, typer.Option("--email", help="A person whose released licences come back "
                                                                   "(repeat for several).")] = None,
    wave: WaveFilter = None,
    apply: Annotated[bool, typer.Option("--apply", help="Grant them again. Without it: what would come back.")]
    = False,
    by: Annotated[str | None, typer.Option("--by", help="Who restores (audit); default: $USER.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Give back the same SKU bascule released (within the tenant's restore window), for people or a whole wave."""
    import os

    from flows.cli.common import fail

    if not email and not wave:
        fail("name the people (--email, repeatable) or the wave (--wave) whose licences come back")
    actor = by or os.environ.get("USER") or "bascule"
    as_job(lambda: _run("restore_licences", "render_restore", as_json, tenant_file=str(tenant),
                        emails=list(email or []), wave=wave, apply=apply, actor=actor), tenant=tenant)
