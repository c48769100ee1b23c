"""Ground truth of a generated ministry, counted as each artefact is written (manifest.json)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from core import ConflictKind, MatchMethod, Platform, ReasonCode

# How the identity mapping must treat what the generator writes. Issue "identity mapping" reuses these keys.
MATCHING_RULES = {
    "anchor": "directory immutable id: objectGUID (AD) or entryUUID (SupAnn)",
    "order": ["primary_email", "alias", "immutable_id", "employee_id"],
    "email_comparison": "trimmed, Unicode NFC, case-insensitive; CASE_OR_UNICODE_MISMATCH when the raw values "
                        "differ but the normal forms are equal (one per source account)",
    "contested_values": "a value held by several directory entries is held back; a primary beats an alias "
                        "(the alias holder loses it); two entries sharing a primary lose it both",
    "DUPLICATE_EMAIL_DIRECTORY": "one per normalised value held by two or more directory entries",
    "VISIO_EMAIL_COLLISION": "one per normalised primary e-mail held by two or more directory entries",
    "SOURCE_UNMATCHED": "one per source account matched to no person (departed staff, guests)",
    "MULTI_SOURCE_ACCOUNTS": "one per (person, platform) with two or more matched accounts",
    "ALIAS_ONLY_MATCH": "one per source account matched through an alias",
    "DOMAIN_NOT_ROUTED": "one per person whose primary e-mail domain has no identity provider in the tenant",
    "NON_PERSON_ACCOUNT": "one per source account whose e-mail matches the tenant's non-person patterns",
    "PRIVILEGED_ACCOUNT": "one per source account with an admin/owner role or matching the privileged patterns",
    "DEPARTED_OR_DISABLED": "one per disabled person with at least one licensed matched account",
    "POPULATION_POLICY": "one per person whose population is prestataire, stagiaire or partenaire",
}
NON_PERSON_PATTERNS = [r"^(salle|secretariat|accueil|bal|noreply|zoomroom)[.-]"]
PRIVILEGED_PATTERNS = [r"^adm[.-]"]


@dataclass
class Truth:
    """Counters filled while writing; `as_manifest` renders them."""

    directory: Counter[str] = field(default_factory=Counter)
    directory_quarantine: Counter[str] = field(default_factory=Counter)
    populations: Counter[str] = field(default_factory=Counter)
    dirty: Counter[str] = field(default_factory=Counter)
    accounts: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    meetings: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    meeting_flags: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    extract_quarantine: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    methods: Counter[str] = field(default_factory=Counter)
    conflicts: Counter[str] = field(default_factory=Counter)
    files: dict[str, dict[str, int]] = field(default_factory=dict)

    def account(self, platform: Platform, *, outcome: str, status: str, licensed: bool,
                conflicts: tuple[ConflictKind, ...] = (), method: MatchMethod | None = None,
                quarantined: ReasonCode | None = None) -> dict[str, object]:
        """Count one source account; returns its `_truth` record."""
        counter = self.accounts[platform]
        counter["total"] += 1
        counter[f"status:{status}"] += 1
        if licensed:
            counter["licensed"] += 1
        if quarantined is not None:
            self.extract_quarantine[platform][quarantined] += 1
            return {"outcome": f"quarantine:{quarantined}"}
        counter["mapped"] += 1
        for kind in conflicts:
            self.conflicts[kind] += 1
        if method is not None:
            self.methods[method] += 1
        return {"outcome": outcome, "conflicts": [str(kind) for kind in conflicts]}

    def conflict(self, kind: ConflictKind, count: int = 1) -> None:
        self.conflicts[kind] += count

    def as_manifest(self) -> dict[str, object]:
        return {
            "directory": {**_plain(self.directory), "quarantine": _plain(self.directory_quarantine),
                          "populations": _plain(self.populations)},
            "platforms": _nested(self.accounts),
            "meetings": _nested(self.meetings),
            "meeting_flags": _nested(self.meeting_flags),
            "dirty": _plain(self.dirty),
            "extract_quarantine": _nested(self.extract_quarantine),
            "identity": {
                "persons": self.directory["people"],
                "source_accounts_mapped": sum(c["mapped"] for c in self.accounts.values()),
                "matches_by_method": {str(m): self.methods.get(m, 0) for m in MatchMethod if m != MatchMethod.OVERRIDE},
                "conflicts": {str(kind): self.conflicts.get(kind, 0) for kind in ConflictKind},
                "rules": MATCHING_RULES,
                "non_person_patterns": NON_PERSON_PATTERNS,
                "privileged_patterns": PRIVILEGED_PATTERNS,
            },
            "files": dict(sorted(self.files.items())),
        }


def _plain(counter: Counter[str]) -> dict[str, int]:
    return {str(key): count for key, count in sorted(counter.items())}


def _nested(counters: defaultdict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {str(key): _plain(counter) for key, counter in sorted(counters.items())}
