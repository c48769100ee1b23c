"""Flow load-directory: the ministry's directory export into directory_entry rows, page by page, resumable.

Runbook: read the tenant file → open the checkpoint (resume the pass a killed run left, or start a new one) →
for each page of the export, one task upserts the people, quarantines the bad records and moves the cursor, all
in one transaction → a last task closes the pass: entries absent from a complete export are marked removed,
quarantine items the export no longer produces are resolved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from connectors.directory_mapping import DirectoryMapping, DisabledRule
from connectors.ldap_directory import LdapConfig, LdapDirectory
from connectors.ldif_file import LdifDirectory, count_ldif_records
from core import DirectoryEntry, Quarantined
from db.repositories import CheckpointRepository, DirectoryRepository, QuarantineRepository
from db.upsert import UpsertResult
from flows.budget import one_per_tenant
from flows.passes import register_and_resume
from flows.progress import Progress
from flows.runtime import StopRequested, cancelled, checkpoint, run_name, transaction
from flows.secrets import read_secret
from flows.settings import Settings
from flows.tenant import DirectorySettings, TenantConfig

SOURCE = "directory"
STREAM = "entries"
STAGE = "load_directory"


@dataclass
class DirectoryLoadSummary:
    """What one load did; the CLI prints it, the demo sums it up."""

    tenant: str
    pass_id: str
    resumed_from: int | None
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped_out_of_scope: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    entries_now: int = 0


def directory_mapping(settings: DirectorySettings) -> DirectoryMapping:
    """The flavour's attribute mapping with the tenant's overrides."""
    rule = (DisabledRule(settings.disabled_attribute.lower(), frozenset(settings.disabled_values))
            if settings.disabled_attribute else None)
    return DirectoryMapping.for_flavour(settings.flavour).with_overrides(
        settings.attributes, settings.extra_attributes, rule)


def directory_reader(settings: DirectorySettings, export: Path | None, *,
                     page_size: int) -> LdifDirectory | LdapDirectory:
    """The tenant's directory: its LDIF export, or its LDAP server (bind password from the environment)."""
    mapping = directory_mapping(settings)
    if settings.kind == "ldif" or export is not None:
        if export is None:
            raise ValueError("directory.kind = 'ldif' needs ldif_path")
        return LdifDirectory(export, mapping, page_size=page_size)
    assert settings.url is not None and settings.base_dn is not None  # checked when the tenant file was read
    password = read_secret(settings.password_env).get_secret_value() if settings.password_env else None
    return LdapDirectory(LdapConfig(url=settings.url, base_dn=settings.base_dn, bind_dn=settings.bind_dn,
                                    password=password, mapping=mapping, search_filter=settings.search_filter,
                                    page_size=min(page_size, settings.page_size)))


@task(name="store-directory-page", cache_policy=NO_CACHE)
def store_directory_page(database_url: str, tenant_id: str, items: list[DirectoryEntry | Quarantined], *,
                         pass_id: str, next_cursor: str | None, items_done: int) -> tuple[UpsertResult, int]:
    """Upsert one page of people, its quarantined records and the cursor after it, in one transaction."""
    now = datetime.now(UTC)
    entries = [item for item in items if isinstance(item, DirectoryEntry)]
    quarantined = [item for item in items if isinstance(item, Quarantined)]
    with transaction(database_url) as session:
        result = DirectoryRepository(session, tenant_id).upsert(entries, now=now, pass_id=pass_id)
        quarantined += result.quarantined  # values changed to fit, records refused, anchors given twice
        QuarantineRepository(session, tenant_id).upsert(quarantined, stage=STAGE, source=SOURCE, now=now,
                                                        pass_id=pass_id)
        CheckpointRepository(session, tenant_id).save(SOURCE, STREAM, pass_id=pass_id, cursor=next_cursor,
                                                      items_done=items_done, complete=False, now=now)
    return result, len(quarantined)


@task(name="close-directory-pass", cache_policy=NO_CACHE)
def close_directory_pass(database_url: str, tenant_id: str, *, pass_id: str,
                         items_done: int) -> tuple[int, dict[str, int], int]:
    """Mark what the complete export no longer contains; returns (removed, open quarantine, entries now)."""
    now = datetime.now(UTC)
    with transaction(database_url) as session:
        removed = DirectoryRepository(session, tenant_id).mark_removed(pass_id=pass_id, now=now)
        quarantine = QuarantineRepository(session, tenant_id)
        quarantine.resolve_unseen(source=SOURCE, pass_id=pass_id, now=now)
        CheckpointRepository(session, tenant_id).save(SOURCE, STREAM, pass_id=pass_id, cursor=None,
                                                      items_done=items_done, complete=True, now=now)
        return removed, quarantine.open_counts(source=SOURCE), DirectoryRepository(session, tenant_id).count()


@flow(name="load-directory", flow_run_name=run_name("load-directory"), log_prints=False)
@one_per_tenant("load-directory")
def load_directory(tenant_file: str, ldif_path: str | None = None, page_size: int = 1000) -> dict[str, object]:
    """Load the tenant's directory export into the state database (resumes a killed run where it stopped)."""
    logger = get_run_logger()
    settings = Settings()
    tenant = TenantConfig.load(Path(tenant_file))
    export = Path(ldif_path) if ldif_path else tenant.directory.ldif_path
    database_url = settings.database
    state = register_and_resume(database_url, tenant, tenant_file, source=SOURCE, stream=STREAM)
    pass_id, cursor, done = state.pass_id, state.cursor, state.items_done
    summary = DirectoryLoadSummary(tenant=tenant.id, pass_id=pass_id,
                                   resumed_from=int(cursor) if cursor else None)
    if cursor:
        logger.info("tenant %s: resuming directory pass %s at record %s", tenant.id, pass_id, cursor)

    reader = directory_reader(tenant.directory, export, page_size=page_size)
    # An LDIF export can be counted up front; an LDAP server only says when it is done.
    total = max(1, count_ldif_records(export)) if isinstance(reader, LdifDirectory) and export else 0
    progress = Progress(f"load-directory-{tenant.id}", f"Directory of {tenant.id}: records read",
                        label="directory")
    records_read = int(cursor) if cursor else 0
    try:
        for page in reader.iter_pages(cursor):
            checkpoint()
            done += len(page.items)
            result, quarantined = store_directory_page(database_url, tenant.id, list(page.items), pass_id=pass_id,
                                                       next_cursor=page.next_cursor, items_done=done)
            summary.pages += 1
            summary.inserted += result.inserted
            summary.updated += result.updated
            summary.unchanged += result.unchanged
            summary.skipped_out_of_scope += page.skipped
            records_read = int(page.next_cursor) if page.next_cursor else max(total, records_read)
            if total:
                progress.set(100.0 * records_read / total)
            logger.info("tenant %s: page %d stored (%d people, %d quarantined)", tenant.id, summary.pages,
                        result.total, quarantined)
    except StopRequested as stop:  # the operator's Ctrl-C: what was stored stays, the next run resumes
        return cancelled(stop)  # type: ignore[no-any-return]
    progress.done()
    summary.removed, summary.quarantined, summary.entries_now = close_directory_pass(
        database_url, tenant.id, pass_id=pass_id, items_done=done)
    create_table_artifact(
        key=f"load-directory-summary-{tenant.id}",
        description=f"Directory load of {tenant.id} (pass {pass_id[:8]})",
        table=[{"measure": "people inserted", "count": summary.inserted},
               {"measure": "people updated", "count": summary.updated},
               {"measure": "people unchanged", "count": summary.unchanged},
               {"measure": "people marked removed", "count": summary.removed},
               {"measure": "entries out of scope (not people)", "count": summary.skipped_out_of_scope},
               *({"measure": f"quarantined: {reason}", "count": count}
                 for reason, count in sorted(summary.quarantined.items())),
               {"measure": "people in the directory now", "count": summary.entries_now}])
    return asdict(summary)
