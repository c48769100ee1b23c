"""The summaries of extract, directory load and identity mapping as people read them (`--json` prints the data)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def counts(values: Mapping[str, int]) -> str:
    """`A 3, B 1` for a mapping of counts (sorted, zeros left out), or `none`."""
    return ", ".join(f"{key} {value}" for key, value in sorted(values.items()) if value) or "none"


def render_extract(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """One paragraph per platform: users, licences, meetings, what was quarantined, what is left to do."""
    lines = []
    for platform, result in sorted(summary.items()):
        users, meetings = result["users"], result["meetings"]
        lines.append(f"{platform}: " + ("FAILED: " + str(result["error"]) if result.get("error") else "extracted"))
        lines.append(f"  users      {_stream(users)}")
        if users.get("activity_read"):
            lines.append(f"  activity   last sign-in read for {users['activity_read']} accounts")
        if users.get("activity_unknown"):
            lines.append(f"  activity   NOT KNOWN: {users['activity_unknown']}")
        lines.append(f"  licences   {result['licences']} SKUs")
        lines.append(f"  meetings   {_stream(meetings)} of {result['hosts']} hosts"
                     + (f"; {meetings['incomplete_hosts']} hosts whose listing failed (retried on the next pass)"
                        if meetings.get("incomplete_hosts") else ""))
        quarantined = {**_prefixed("users", users["quarantined"]), **_prefixed("meetings", meetings["quarantined"])}
        if quarantined:
            lines.append(f"  quarantined {counts(quarantined)} (bascule keeps them with their reason)")
        if result.get("retries"):
            lines.append(f"  retried    {counts(result['retries'])}")
        if result.get("deferred_until"):
            lines.append(f"  quota exhausted: run `bascule extract` again after {result['deferred_until']}")
    return "\n".join(lines)


def _stream(stream: Mapping[str, Any]) -> str:
    total = stream["inserted"] + stream["updated"] + stream["unchanged"]
    kind = "delta pass" if stream.get("delta") else "full pass"
    resumed = ", resumed" if stream.get("resumed") else ""
    return (f"{total} ({stream['inserted']} new, {stream['updated']} changed, {stream['unchanged']} unchanged, "
            f"{stream['removed']} gone; {kind}{resumed})")


def _prefixed(prefix: str, values: Mapping[str, int]) -> dict[str, int]:
    return {f"{prefix} {reason}": count for reason, count in values.items()}


def render_directory(summary: Mapping[str, Any]) -> str:
    """The directory load: people now, what changed, what was left out or quarantined."""
    lines = [f"directory of {summary['tenant']}: {summary['entries_now']} people "
             f"({summary['inserted']} new, {summary['updated']} changed, {summary['unchanged']} unchanged, "
             f"{summary['removed']} removed) in {summary['pages']} pages"
             + (f", resumed at record {summary['resumed_from']}" if summary.get("resumed_from") else ""),
             f"  not people   {summary['skipped_out_of_scope']} entries (groups, rooms, organisational units)"]
    if summary["quarantined"]:
        lines.append(f"  quarantined  {counts(summary['quarantined'])}")
    return "\n".join(lines)


def render_identities(summary: Mapping[str, Any]) -> str:
    """The identity pass: persons, accounts matched per platform and method, conflicts to decide."""
    lines = [f"identities of {summary['tenant']}: {summary['persons']} persons"
             + (" (resumed pass)" if summary.get("resumed") else "")]
    if summary.get("excluded_persons"):
        lines.append(f"  never in a wave  {counts(summary['excluded_persons'])}")
    for platform, found in sorted(summary["accounts"].items()):
        lines.append(f"  {platform:<16} {found.get('matched', 0)} accounts matched, {found.get('unmatched', 0)} held "
                     f"back, {found.get('excluded', 0)} excluded")
    lines.append(f"  matched by       {counts(summary['matches_by_method'])}")
    lines.append(f"  open conflicts   {counts(summary['conflicts'])}"
                 + (" (decide them: bascule identities export-conflicts)" if any(summary["conflicts"].values())
                    else ""))
    if summary.get("resolved"):
        lines.append(f"  resolved         {summary['resolved']} conflicts no longer found")
    return "\n".join(lines)
