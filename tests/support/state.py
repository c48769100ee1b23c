"""Fill a state database from a generated ministry without the network: the directory through the LDIF reader,
the accounts through the connectors' own mapping functions (what the sandbox serves is these JSON records).

The identity tests use it to run many seeds quickly; one end-to-end test goes through real extraction instead.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors import graph, webex, zoom
from connectors.directory_mapping import DirectoryMapping
from connectors.ldif_file import LdifDirectory
from core import DirectoryEntry, Platform, SourceAccount
from db.repositories import DirectoryRepository, SourceAccountRepository, TenantRepository
from flows.runtime import transaction

ACCOUNT_FILES = {Platform.ZOOM: "zoom/users.jsonl", Platform.TEAMS: "teams/users.jsonl",
                 Platform.WEBEX: "webex/people.jsonl"}


@dataclass(frozen=True)
class TruthRecord:
    """The generator's verdict on one source account (its `_truth`)."""

    platform: Platform
    external_id: str
    outcome: str               # "match:<method>", "conflict:<kind>" or "quarantine:<reason>"
    conflicts: tuple[str, ...]


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def mapped_accounts(out: Path) -> Iterator[tuple[SourceAccount | None, TruthRecord | None]]:
    """Every generated account as its connector maps it (None when quarantined), with its ground truth."""
    plans = {str(sku["skuId"]).lower(): graph._plan_ids(sku)
             for sku in json.loads((out / "teams/subscribed_skus.json").read_text(encoding="utf-8"))["value"]}
    meeting = frozenset(sku.sku_key for item in json.loads((out / "webex/licenses.json").read_text())["items"]
                        if (sku := webex._licence(item)) is not None and sku.includes_meetings)
    for platform, name in ACCOUNT_FILES.items():
        for record in _lines(out / name):
            truth = record.pop("_truth", None)
            if platform is Platform.ZOOM:
                mapped = zoom.map_user(record)
            elif platform is Platform.TEAMS:
                mapped = graph.map_user(record, plans)
            else:
                mapped = webex.map_person(record, meeting)
            account = mapped if isinstance(mapped, SourceAccount) else None
            external_id = account.external_id if account else ""
            yield account, (TruthRecord(platform, external_id, str(truth["outcome"]),
                                        tuple(truth.get("conflicts") or ())) if truth else None)


def load_ministry(database_url: str, tenant_id: str, out: Path, *, flavour: str) -> list[TruthRecord]:
    """Directory and accounts of the ministry in `out` into the database; returns the accounts' ground truth."""
    now = datetime.now(UTC)
    pass_id = uuid.uuid4().hex
    truths: list[TruthRecord] = []
    with transaction(database_url) as session:
        TenantRepository(session).ensure(tenant_id, name=tenant_id, siret=None, config_path=None, config_hash=None,
                                         now=now)
        directory = DirectoryRepository(session, tenant_id)
        for page in LdifDirectory(out / "directory.ldif", DirectoryMapping.for_flavour(flavour),
                                  page_size=1000).iter_pages(None):
            directory.upsert([item for item in page.items if isinstance(item, DirectoryEntry)], now=now,
                             pass_id=pass_id)
        batches: dict[Platform, list[SourceAccount]] = {platform: [] for platform in Platform}
        for account, truth in mapped_accounts(out):
            if truth is not None:
                truths.append(truth)
            if account is not None:
                batches[account.platform].append(account)
        for platform, accounts in batches.items():
            for start in range(0, len(accounts), 2000):
                SourceAccountRepository(session, tenant_id, platform).upsert(accounts[start:start + 2000], now=now,
                                                                             pass_id=pass_id)
    return truths
