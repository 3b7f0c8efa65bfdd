"""Roles that separate functions: who may see and do what on the console.

The principle: an auditor reads everything the log says about exchanges but never looks a named
person up and never changes anything; a data protection officer (DPO) also answers a person's
questions (subject report, consent, the registry's look-up); an operator runs the node (health,
directory, tree heads, verification, agreements, aggregate charts) and sees no exchange of any
particular person at all. The same table decides which links a page shows and which requests the
server accepts, so a hidden link is never the only protection.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    DPO = "dpo"
    AUDITOR = "auditor"
    OPERATOR = "operator"

    @property
    def label(self) -> str:
        """The role in words, for the screen."""
        return ROLE_TITLES[self]


class Permission(StrEnum):
    OVERVIEW = "overview"  # the node, its directory and its log at a glance
    EXCHANGES = "exchanges"  # search by client, service, purpose, decision, outcome, time; open one
    SUBJECT_SEARCH = "subject-search"  # find exchanges by a person's identifier
    SUBJECT_REPORT = "subject-report"  # who accessed a person's data, printable
    INTEGRITY = "integrity"  # signed tree heads and time stamps
    VERIFY = "verify"  # verify the whole log now
    CONSENT = "consent"  # a person's consent records; grant and withdraw
    AGREEMENTS = "agreements"  # what each client may ask, why, receiving which fields
    CHARTS = "charts"  # aggregate counts: per purpose, client, day; refusals by reason
    PERSON_LOOKUP = "person-lookup"  # the registry's eligibility decision for one person (ministry)
    OVERSIGHT = "oversight"  # oversight statistics: suppressed aggregates (ministry)
    TRAIL = "trail"  # the console's own audit trail
    DIRECTORY_REFRESH = "directory-refresh"  # fetch the federation directory now


ROLE_TITLES: dict[Role, str] = {
    Role.DPO: "data protection officer",
    Role.AUDITOR: "auditor (read-only)",
    Role.OPERATOR: "operator",
}

_AUDITOR = frozenset(
    {
        Permission.OVERVIEW,
        Permission.EXCHANGES,
        Permission.INTEGRITY,
        Permission.VERIFY,
        Permission.AGREEMENTS,
        Permission.CHARTS,
        Permission.OVERSIGHT,
        Permission.TRAIL,
    }
)

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.AUDITOR: _AUDITOR,
    Role.DPO: _AUDITOR
    | {Permission.SUBJECT_SEARCH, Permission.SUBJECT_REPORT, Permission.CONSENT, Permission.PERSON_LOOKUP},
    Role.OPERATOR: frozenset(
        {
            Permission.OVERVIEW,
            Permission.INTEGRITY,
            Permission.VERIFY,
            Permission.AGREEMENTS,
            Permission.CHARTS,
            Permission.OVERSIGHT,
            Permission.DIRECTORY_REFRESH,
        }
    ),
}

#: Permissions that reach personal data (an identifier, or exchanges about one person): never an operator's.
PERSONAL = frozenset(
    {
        Permission.EXCHANGES,
        Permission.SUBJECT_SEARCH,
        Permission.SUBJECT_REPORT,
        Permission.CONSENT,
        Permission.PERSON_LOOKUP,
        Permission.TRAIL,
    }
)
#: Permissions that act (change a record, or make exchanges with the agencies): never an auditor's.
ACTING = frozenset({Permission.CONSENT, Permission.PERSON_LOOKUP, Permission.DIRECTORY_REFRESH})


def may(role: Role, permission: Permission) -> bool:
    """Whether the role holds the permission (the one check behind both links and requests)."""
    return permission in GRANTS[role]
