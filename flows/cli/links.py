"""`bascule links`: old meeting links and their Visio rooms (helpdesk)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from flows.cli.common import TenantOption, fail, load_tenant, state_database

app = typer.Typer(help="Old meeting links and the Visio rooms they now lead to (helpdesk).", no_args_is_help=True)

ReferenceArgument = Annotated[str, typer.Argument(
    help="An old Zoom, Teams or Webex link, a meeting id or number (e.g. 2634 123 4567), a SIP address, or a "
         "host's e-mail or name.")]


def _checked(reference: str) -> str:
    """The reference, or one line refusing what cannot be one (it is never echoed back whole)."""
    from core.links import MAX_REFERENCE

    if len(reference) > MAX_REFERENCE:
        fail(f"the reference is {len(reference):,} characters long, more than any meeting link "
             f"({MAX_REFERENCE:,}): paste only the link, meeting number or SIP address")
    return reference


@app.command("lookup")
def links_lookup(
    reference: ReferenceArgument,
    tenant: TenantOption,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The Visio link of an old meeting, or whether it will move and why not.

    Exit code 1 when the meeting has no Visio link."""
    from flows.links import lookup_link, render_lookup

    config = load_tenant(tenant)
    answer = lookup_link(state_database(), config.id, _checked(reference))
    print(json.dumps(answer, ensure_ascii=False, sort_keys=True) if as_json else render_lookup(answer))
    if not answer["found"]:
        raise typer.Exit(1)


@app.command("resend")
def links_resend(
    reference: ReferenceArgument,
    tenant: TenantOption,
    to: Annotated[str | None, typer.Option("--to", help="Send it to this address only (default: every "
                                                         "recipient of the first one).")] = None,
    author: Annotated[str | None, typer.Option(help="Who asked (audit); default: $USER.")] = None,
) -> None:
    """Send a moved meeting's calendar update again (audited).

    The update the cutover mailed for a Zoom or Webex series: same UID and SEQUENCE, a new Message-ID."""
    from connectors.errors import ConnectorError
    from flows.links import ResendRefused, render_resent, resend_invitation
    from flows.runtime import transaction
    from flows.wiring import build_mail_sender

    config = load_tenant(tenant)
    database = state_database()
    reference = _checked(reference)
    sender = build_mail_sender(config)
    if sender is None:
        fail(f"tenant {config.id} has no [mail] table: bascule cannot send calendar updates")
    try:
        resent = resend_invitation(lambda: transaction(database), config.id, reference, sender=sender, to=to,
                                   actor=author or os.environ.get("USER") or "unknown")
    except ResendRefused as refused:
        fail(str(refused))
    except ConnectorError as error:
        fail(f"the mail relay {config.mail.host}:{config.mail.port} did not take the update ({error}); "
             "try again later")
    print(render_resent(resent))
