"""Flow map-identities: one person per directory entry, every source account tied to a person or held back.

Runbook, one pass (resumable: the phase and the last key done are checkpointed with each batch):
1. keys — every identifier of every current directory entry (primary e-mail, aliases, immutable id, employee id),
   batch by batch in anchor order; then the keys the pass did not produce are dropped (former e-mails are history:
   kept, and restored from the e-mail-changed history) and the e-mail values held by several entries become
   conflicts (duplicate directory mail, shared Visio e-mail).
2. persons — one person per entry with what ProConnect will assert and what Visio will need, and whether it is one
   a wave may move (rooms, shared mailboxes and administrator identities, by the tenant's patterns, are not); the
   person-level conflicts (not a person, domain not routed, population policy, e-mail changed since the last pass:
   the previous address is kept as a former e-mail key). The team's decisions apply here: an entry declared a person
   (`include`), a person excluded from waves (`exclude`), a shared e-mail given to one entry (`force_match`: the
   other entries lost its key in step 1, and one whose primary it was has its ProConnect e-mail held back).
3. accounts — per platform, batch by batch in external-id order: each account's values are looked up in the keys
   of step 1 (and the former e-mails of step 2), the migration team's overrides applied, the account matched (with
   its method) or held back.
4. close — the conflicts that need the whole picture (several accounts of one person, disabled but licensed, `sub`
   drift, tenant SIRET), matches the pass did not confirm dropped, conflicts it no longer found closed. A conflict
   the team accepted is stored `accepted`, not `open`: no longer reported, no longer holding anyone back.

A batch is one task (never one per person) and one transaction; the pass is pure recomputation from the
directory and the extracted accounts, so a killed run resumed or re-run ends in the same state.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from core import Conflict, ConflictKind, Platform, normalise_email
from core.hashing import content_hash
from core.identity import (
    CONFLICT_MEANING,
    AccountExcluded,
    AccountMatched,
    Decisions,
    IdentityPolicy,
    KeyKind,
    Lookup,
    Owner,
    coverage,
    decided_person,
    directory_keys,
    disabled_but_licensed,
    email_changed,
    email_given_away,
    excluded_kind,
    expectation,
    former_key,
    lookup_values,
    match_account,
    owners,
    person_conflicts,
    several_accounts,
    sub_drift,
    value_conflicts,
)
from core.readiness import siret_ok
from db.repositories import (
    CheckpointRepository,
    DirectoryRepository,
    IdentityRepository,
    SourceAccountRepository,
    TenantRepository,
)
from flows.budget import one_per_tenant
from flows.runtime import checkpoint, run_name, stoppable, transaction
from flows.settings import Settings
from flows.tenant import TenantConfig

SOURCE = "identities"
STREAM = "pass"
BATCH = 5000
PHASES = ("keys", "persons", *(f"accounts:{platform}" for platform in Platform), "close")

@dataclass
class IdentitySummary:
    """What one pass found; the CLI prints it, the demo sums it up."""

    tenant: str
    pass_id: str
    resumed: bool = False
    persons: int = 0
    excluded_persons: dict[str, int] = field(default_factory=dict)    # reason → persons never in a wave
    accounts: dict[str, dict[str, int]] = field(default_factory=dict)  # platform → matched/unmatched/excluded
    matches_by_method: dict[str, int] = field(default_factory=dict)
    conflicts: dict[str, int] = field(default_factory=dict)
    resolved: int = 0
    keys_dropped: int = 0
    matches_dropped: int = 0


def identity_policy(tenant: TenantConfig) -> IdentityPolicy:
    """The tenant file's identity rules as the matching core takes them."""
    return IdentityPolicy.build(
        idp_by_domain=tenant.identity.idp_by_domain, non_person_patterns=tenant.identity.non_person_patterns,
        privileged_patterns=tenant.identity.privileged_patterns,
        population_policy=tenant.identity.population_policy, siret=tenant.siret,
        visio_base_url=tenant.visio.base_url if tenant.visio else None,
        visio_precreates_users=tenant.visio.precreates_users if tenant.visio else False)


def _cursor(phase: str, after: str | None) -> str:
    return json.dumps({"phase": phase, "after": after})


def _save(session: Any, tenant_id: str, *, pass_id: str, phase: str, after: str | None, done: int,
          complete: bool = False) -> None:
    CheckpointRepository(session, tenant_id).save(SOURCE, STREAM, pass_id=pass_id, cursor=_cursor(phase, after),
                                                  items_done=done, complete=complete, now=datetime.now(UTC))


# ------------------------------------------------------------------------------------------------- tasks

@task(name="index-directory-keys", cache_policy=NO_CACHE)
def index_keys(database_url: str, tenant_id: str, *, pass_id: str, after: str | None, limit: int,
               done: int) -> tuple[str | None, int]:
    """Store the identifiers of one batch of entries; returns (last anchor, entries in the batch)."""
    with transaction(database_url) as session:
        entries = DirectoryRepository(session, tenant_id).page(after=after, limit=limit)
        keys = [key for entry in entries for key in directory_keys(entry)]
        IdentityRepository(session, tenant_id).upsert_keys(keys, pass_id=pass_id)
        last = entries[-1].anchor if entries else after
        full = len(entries) == limit
        _save(session, tenant_id, pass_id=pass_id, phase="keys" if full else "persons",
              after=last if full else None, done=done + len(entries))
        return last, len(entries)


@task(name="close-directory-keys", cache_policy=NO_CACHE)
def close_keys(database_url: str, tenant_id: str, *, pass_id: str, done: int) -> int:
    """Drop keys of entries gone or changed (former e-mails stay); turn values held by several entries into
    conflicts."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        identities = IdentityRepository(session, tenant_id)
        dropped = identities.delete_stale_keys(pass_id=pass_id)
        identities.upsert_keys(identities.former_keys_from_history(), pass_id=pass_id)
        identities.drop_given_away_keys(dict(Decisions.of(identities.decisions()).email_owner))
        batch = []
        for value, holders in identities.shared_email_values():
            batch.extend(value_conflicts(value, holders))
            if len(batch) >= BATCH:
                identities.upsert_conflicts(batch, pass_id=pass_id, now=now)
                batch = []
        identities.upsert_conflicts(batch, pass_id=pass_id, now=now)
        return dropped


@task(name="map-persons", cache_policy=NO_CACHE)
def map_persons(database_url: str, tenant_id: str, policy: IdentityPolicy, *, pass_id: str, after: str | None,
                limit: int, done: int) -> tuple[str | None, int]:
    """One person per entry of the batch, with expectations, exclusion from waves and person-level conflicts; a
    changed primary e-mail leaves a former e-mail key."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        entries = DirectoryRepository(session, tenant_id).page(after=after, limit=limit)
        identities = IdentityRepository(session, tenant_id)
        previous = identities.previous_emails([entry.anchor for entry in entries])
        primaries = {entry.anchor: normalise_email(entry.primary_email) or entry.primary_email.strip().lower()
                     for entry in entries}
        holders = identities.holders([(Lookup.EMAIL, value) for value in primaries.values()])
        decisions = Decisions.of(identities.decisions())
        rows, conflicts, formers = [], [], []
        for entry in entries:
            value = primaries[entry.anchor]
            value_holders = holders.get((Lookup.EMAIL, value), [])
            primary_holders = {key.anchor for key in value_holders if key.kind is KeyKind.PRIMARY}
            given_away = email_given_away(entry.anchor, value, [key.anchor for key in value_holders], decisions)
            expected = expectation(entry, policy,
                                   primary_contested=len(primary_holders) > 1 or given_away is not None)
            excluded, found = decided_person(entry.anchor, excluded_kind(entry, policy),
                                             person_conflicts(entry, policy), decisions)
            conflicts.extend(found)
            if given_away is not None:
                conflicts.append(given_away)
            if entry.anchor in previous and (changed := email_changed(entry.anchor, before=previous[entry.anchor],
                                                                      after=value)):
                conflicts.append(changed)
                formers.append(former_key(entry.anchor, previous[entry.anchor]))
            row = {"anchor": entry.anchor, "primary_email": entry.primary_email.strip(), "email_normalised": value,
                   "display_name": entry.display_name, "department": entry.department,
                   "population": entry.population, "disabled": entry.disabled,
                   "excluded_reason": excluded.value if excluded else None, **asdict(expected)}
            rows.append({**row, "content_hash": content_hash(row)})
        if rows:
            identities.upsert_persons(rows, now=now)
        identities.upsert_keys([key for key in formers if key is not None], pass_id=pass_id)
        identities.upsert_conflicts(conflicts, pass_id=pass_id, now=now)
        last = entries[-1].anchor if entries else after
        full = len(entries) == limit
        _save(session, tenant_id, pass_id=pass_id, phase="persons" if full else PHASES[2],
              after=last if full else None, done=done + len(entries))
        return last, len(entries)


@task(name="map-accounts", cache_policy=NO_CACHE)
def map_accounts(database_url: str, tenant_id: str, platform: Platform, policy: IdentityPolicy, *, pass_id: str,
                 after: str | None, limit: int, done: int) -> tuple[str | None, dict[str, int]]:
    """Match one batch of a platform's accounts; returns (last id, counts matched/unmatched/excluded)."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        accounts = SourceAccountRepository(session, tenant_id, platform).page(after=after, limit=limit)
        identities = IdentityRepository(session, tenant_id)
        decided = identities.overrides()
        pairs = sorted({pair for account in accounts for pair in lookup_values(account)})
        lookups = owners(identities.holders(pairs))
        excluded = identities.excluded_reasons([found.anchor for found in lookups.values()
                                                if isinstance(found, Owner)])
        matches: list[AccountMatched] = []
        conflicts: list[Conflict] = []
        counts: Counter[str] = Counter()
        for account in accounts:
            outcome = match_account(account, lookups=lookups, policy=policy, excluded=excluded,
                                    override=decided.get((platform.value, account.external_id)))
            if isinstance(outcome, AccountMatched):
                matches.append(outcome)
                conflicts.extend(outcome.conflicts)
                counts["matched"] += 1
            elif isinstance(outcome, AccountExcluded):
                counts["excluded"] += 1
            else:
                conflicts.append(outcome.conflict)
                counts["unmatched"] += 1
        identities.upsert_matches(matches, pass_id=pass_id, now=now)
        identities.upsert_conflicts(conflicts, pass_id=pass_id, now=now)
        last = accounts[-1].external_id if accounts else after
        full = len(accounts) == limit
        phase = f"accounts:{platform}"
        _save(session, tenant_id, pass_id=pass_id, phase=phase if full else PHASES[PHASES.index(phase) + 1],
              after=last if full else None, done=done + len(accounts))
        return last, dict(counts)


@task(name="close-identity-pass", cache_policy=NO_CACHE)
def close_pass(database_url: str, tenant_id: str, *, pass_id: str, siret: str, done: int) -> dict[str, Any]:
    """Conflicts over the whole picture, then drop what the pass did not confirm and close what it no longer found."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        identities = IdentityRepository(session, tenant_id)
        identities.remove_persons_without_entry(now=now)
        matches_dropped = identities.delete_stale_matches(pass_id=pass_id)
        found = [several_accounts(anchor, Platform(platform), accounts)
                 for anchor, platform, accounts in identities.several_accounts()]
        found += [disabled_but_licensed(anchor, platforms) for anchor, platforms in identities.disabled_but_licensed()]
        found += [drift for anchor, subs in identities.subs_by_person() if (drift := sub_drift(anchor, subs))]
        if (gap := coverage(siret_ok(siret), tenant_id, siret)) is not None:
            found.append(gap)
        found += identities.standing_email_changes(pass_id=pass_id)
        identities.upsert_conflicts(found, pass_id=pass_id, now=now)
        resolved = identities.resolve_unseen_conflicts(pass_id=pass_id, now=now)
        _save(session, tenant_id, pass_id=pass_id, phase="close", after=None, done=done, complete=True)
        return {"resolved": resolved, "matches_dropped": matches_dropped, "persons": identities.person_count(),
                "excluded_persons": identities.excluded_counts(),
                "matches_by_method": identities.method_counts(), "conflicts": identities.open_conflict_counts()}


# ------------------------------------------------------------------------------------------------- flow

def _start(database_url: str, tenant: TenantConfig, tenant_file: str) -> tuple[str, str, str | None, int, bool]:
    """The pass to run: the one a killed run left (phase, last key done), or a new one."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        TenantRepository(session).ensure(tenant.id, name=tenant.name, siret=tenant.siret,
                                         config_path=str(Path(tenant_file).resolve()),
                                         config_hash=TenantConfig.file_hash(Path(tenant_file)), now=now)
        checkpoints = CheckpointRepository(session, tenant.id)
        state = checkpoints.get(SOURCE, STREAM)
        if state is not None and not state.complete and state.cursor:
            position = json.loads(state.cursor)
            return state.pass_id, str(position["phase"]), position.get("after"), state.items_done, True
        pass_id = uuid.uuid4().hex
        checkpoints.start(SOURCE, STREAM, pass_id=pass_id, now=now)
        _save(session, tenant.id, pass_id=pass_id, phase="keys", after=None, done=0)
        return pass_id, "keys", None, 0, False


@flow(name="map-identities", flow_run_name=run_name("map-identities"), log_prints=False)
@one_per_tenant("map-identities")
@stoppable
def map_identities(tenant_file: str, batch_size: int = BATCH, force: bool = False) -> dict[str, Any]:
    """Map the tenant's directory and extracted accounts to persons, matches and conflicts (resumable)."""
    logger = get_run_logger()
    settings = Settings()
    database_url = settings.database
    tenant = TenantConfig.load(Path(tenant_file))
    from flows.onboard import require_ready

    require_ready(database_url, tenant.id, force=force, config_hash=TenantConfig.file_hash(Path(tenant_file)))
    policy = identity_policy(tenant)
    pass_id, phase, after, done, resumed = _start(database_url, tenant, tenant_file)
    summary = IdentitySummary(tenant=tenant.id, pass_id=pass_id, resumed=resumed)
    if resumed:
        logger.info("tenant %s: resuming identity pass %s at phase %s", tenant.id, pass_id[:8], phase)
    start = PHASES.index(phase)

    if start <= PHASES.index("keys"):
        while True:
            checkpoint()
            after, count = index_keys(database_url, tenant.id, pass_id=pass_id, after=after, limit=batch_size,
                                      done=done)
            done += count
            if count < batch_size:
                break
        after = None
    if start <= PHASES.index("persons"):
        if after is None:  # keys complete: drop the stale ones, find the shared values (idempotent)
            summary.keys_dropped = close_keys(database_url, tenant.id, pass_id=pass_id, done=done)
        while True:
            checkpoint()
            after, count = map_persons(database_url, tenant.id, policy, pass_id=pass_id, after=after,
                                       limit=batch_size, done=done)
            done += count
            if count < batch_size:
                break
        after = None
    for platform in Platform:
        index = PHASES.index(f"accounts:{platform}")
        if start > index:
            continue
        counts: Counter[str] = Counter()
        while True:
            checkpoint()
            after, batch = map_accounts(database_url, tenant.id, platform, policy, pass_id=pass_id,
                                        after=after, limit=batch_size, done=done)
            counts.update(batch)
            done += sum(batch.values())
            if sum(batch.values()) < batch_size:
                break
        after = None
        if counts:
            summary.accounts[str(platform)] = dict(counts)
            logger.info("tenant %s: %s accounts mapped (%d matched, %d held back, %d excluded)", tenant.id,
                        platform, counts["matched"], counts["unmatched"], counts["excluded"])

    closed = close_pass(database_url, tenant.id, pass_id=pass_id, siret=tenant.siret, done=done)
    summary.persons = closed["persons"]
    summary.excluded_persons = closed["excluded_persons"]
    summary.resolved = closed["resolved"]
    summary.matches_dropped = closed["matches_dropped"]
    summary.matches_by_method = dict(sorted(closed["matches_by_method"].items()))
    summary.conflicts = {str(kind): closed["conflicts"].get(str(kind), 0) for kind in ConflictKind}
    create_table_artifact(
        key=f"identity-conflicts-{tenant.id}",
        description=f"Identity conflicts of {tenant.id} by kind (pass {pass_id[:8]}): "
                    f"{summary.persons} persons, {sum(summary.matches_by_method.values())} accounts matched",
        table=[{"conflict": str(kind), "open": summary.conflicts[str(kind)], "meaning": CONFLICT_MEANING[kind]}
               for kind in ConflictKind])
    logger.info("tenant %s: identity pass %s done: %d persons, %d matches, %d open conflicts, %d resolved",
                tenant.id, pass_id[:8], summary.persons, sum(summary.matches_by_method.values()),
                sum(summary.conflicts.values()), summary.resolved)
    return asdict(summary)

