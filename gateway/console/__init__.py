"""The gateway's web console for data protection officers, auditors and operators (docs/console.md).

Served by the gateway itself (at /console, or on its own listener), server-rendered with a few
kilobytes of CSS and script of its own. Roles separate functions; every action is written to the
console trail; personal identifiers typed in are hashed at once and never shown, logged or linked.
"""

from gateway.console.app import PREFIX, Console, create_console
from gateway.console.audit import ConsoleAudit, TrailEntry
from gateway.console.auth import Session, Sessions, SignInThrottle, User, hash_password, verify_password
from gateway.console.errors import (
    BadInput,
    ConsoleConfigError,
    ConsoleError,
    CsrfRejected,
    Forbidden,
    NotFound,
    NotHosted,
    NotSignedIn,
    SignInFailed,
    SourceFailed,
    TooManyAttempts,
    TrailFailed,
    WeakPassword,
)
from gateway.console.roles import GRANTS, Permission, Role, may

__all__ = [
    "GRANTS",
    "PREFIX",
    "BadInput",
    "Console",
    "ConsoleAudit",
    "ConsoleConfigError",
    "ConsoleError",
    "CsrfRejected",
    "Forbidden",
    "NotFound",
    "NotHosted",
    "NotSignedIn",
    "Permission",
    "Role",
    "Session",
    "Sessions",
    "SignInFailed",
    "SignInThrottle",
    "SourceFailed",
    "TooManyAttempts",
    "TrailEntry",
    "TrailFailed",
    "User",
    "WeakPassword",
    "create_console",
    "hash_password",
    "may",
    "verify_password",
]
