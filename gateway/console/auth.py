"""Who is at the console: password hashes (scrypt), signed session cookies, CSRF tokens, sign-in throttling.

Sessions are stateless cookies signed with the console's secret (HMAC-SHA256), so replicas that share
the secret file share sessions. A session names the user, her role and a fingerprint of her password
hash: removing a user, changing her role or her password ends her sessions at the next request.
Signing out also revokes the session in this process (a copied cookie stops working here at once).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.console.errors import CsrfRejected, TooManyAttempts, WeakPassword
from gateway.console.roles import Role

MIN_PASSWORD = 12
SCRYPT_LN = 15  # N = 2**15, r = 8, p = 1: about 32 MiB and a tenth of a second per guess
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_HASH_RE = re.compile(r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)")
USER_NAME_RE = re.compile(r"[a-z][a-z0-9._-]{0,63}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _urlb64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unurlb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, ln: int, r: int, p: int) -> bytes:
    n = 1 << ln
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n * p + (1 << 20), dklen=_KEY_BYTES
    )


def hash_password(password: str, *, ln: int = SCRYPT_LN, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A salted scrypt hash in the PHC string format (`$scrypt$ln=15,r=8,p=1$salt$hash`): what the settings keep."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a console password has at least {MIN_PASSWORD} characters")
    if not (10 <= ln <= 20 and 1 <= r <= 16 and 1 <= p <= 4):
        raise WeakPassword("scrypt parameters out of range (ln 10-20, r 1-16, p 1-4)")
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"$scrypt$ln={ln},r={r},p={p}${_b64(salt)}${_b64(_scrypt(password, salt, ln, r, p))}"


def is_password_hash(text: str) -> bool:
    """The shape `hash_password` writes, with parameters in range (the settings check this at start)."""
    match = _HASH_RE.fullmatch(text)
    if match is None:
        return False
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    return 10 <= ln <= 20 and 1 <= r <= 16 and 1 <= p <= 4


def verify_password(password: str, encoded: str) -> bool:
    """Whether the password matches the hash (constant-time comparison; a malformed hash matches nothing)."""
    match = _HASH_RE.fullmatch(encoded)
    if match is None or not is_password_hash(encoded):
        return False
    ln, r, p = (int(match.group(i)) for i in (1, 2, 3))
    try:
        salt, expected = _unb64(match.group(4)), _unb64(match.group(5))
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(_scrypt(password, salt, ln, r, p), expected)


@dataclass(frozen=True)
class User:
    """A console user as the settings define her: never the password, only its hash."""

    name: str
    role: Role
    password_hash: str
    display_name: str = ""

    @property
    def fingerprint(self) -> str:
        """Changes with the password hash (and the role), so either change ends the user's sessions."""
        return hashlib.sha256(f"{self.role}\x00{self.password_hash}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Session:
    user: str
    role: Role
    sid: str
    issued: int  # seconds since the epoch
    expires: int  # idle deadline, moved forward by each request
    fingerprint: str


class Sessions:
    """Issues and reads signed session cookies, and the CSRF tokens bound to them."""

    def __init__(self, secret: bytes, users: Mapping[str, User], *, idle_seconds: int, max_seconds: int) -> None:
        self._session_key = hmac.new(secret, b"kiungo-console-session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"kiungo-console-csrf", hashlib.sha256).digest()
        self.users = dict(users)
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._revoked: dict[str, int] = {}
        self._lock = threading.Lock()
        # a hash to check typed passwords against when the user name is unknown, so timing says nothing
        self._decoy = hash_password(secrets.token_urlsafe(16), ln=SCRYPT_LN)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when name and password match; None otherwise, after the same work either way."""
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user is not None else self._decoy)
        return user if ok and user is not None else None

    def issue(self, user: User, now: float | None = None) -> tuple[Session, str]:
        at = int(time.time() if now is None else now)
        session = Session(user.name, user.role, secrets.token_urlsafe(16), at, at + self.idle_seconds, user.fingerprint)
        return session, self.encode(session)

    def renew(self, session: Session, now: float | None = None) -> tuple[Session, str]:
        """The same session with its idle deadline moved to now + idle (never past the absolute maximum)."""
        at = int(time.time() if now is None else now)
        expires = min(at + self.idle_seconds, session.issued + self.max_seconds)
        renewed = Session(session.user, session.role, session.sid, session.issued, expires, session.fingerprint)
        return renewed, self.encode(renewed)

    def encode(self, session: Session) -> str:
        payload = json.dumps(
            {
                "u": session.user,
                "r": str(session.role),
                "s": session.sid,
                "i": session.issued,
                "e": session.expires,
                "f": session.fingerprint,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        mac = hmac.new(self._session_key, payload, hashlib.sha256).digest()
        return f"{_urlb64(payload)}.{_urlb64(mac)}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None: bad signature, expired, revoked, or the user changed."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 2048:
            return None
        body, _, mac = cookie.partition(".")
        try:
            payload = _unurlb64(body)
            given = _unurlb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(hmac.new(self._session_key, payload, hashlib.sha256).digest(), given):
            return None
        try:
            data = json.loads(payload)
            session = Session(
                str(data["u"]), Role(data["r"]), str(data["s"]), int(data["i"]), int(data["e"]), str(data["f"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        at = int(time.time() if now is None else now)
        user = self.users.get(session.user)
        if (
            at >= session.expires
            or at >= session.issued + self.max_seconds
            or user is None
            or user.role != session.role
            or user.fingerprint != session.fingerprint
        ):
            return None
        with self._lock:
            if session.sid in self._revoked:
                return None
        return session

    def revoke(self, session: Session) -> None:
        """Sign-out: this session stops working in this process now, and its cookie is deleted."""
        now = int(time.time())
        with self._lock:
            self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
            self._revoked[session.sid] = session.issued + self.max_seconds

    def csrf_token(self, session: Session) -> str:
        """The token every POST form of this session carries (bound to the session, not guessable)."""
        return _urlb64(hmac.new(self._csrf_key, f"session\x00{session.sid}".encode(), hashlib.sha256).digest())

    def check_csrf(self, session: Session, token: str | None) -> None:
        if not token or not hmac.compare_digest(self.csrf_token(session), token):
            raise CsrfRejected("this form did not come from your console session; open the page again and resubmit")

    def signin_token(self, nonce: str) -> str:
        """The sign-in form's token, bound to a random cookie (double submit): there is no session yet."""
        return _urlb64(hmac.new(self._csrf_key, f"signin\x00{nonce}".encode(), hashlib.sha256).digest())

    def check_signin_token(self, nonce: str | None, token: str | None) -> None:
        if not nonce or not token or not hmac.compare_digest(self.signin_token(nonce), token):
            raise CsrfRejected("the sign-in form expired; open the sign-in page again")


class SignInThrottle:
    """At most `failures` failed sign-ins per `window` seconds for each key (a user name, an address).

    Once the limit is reached even the right password is refused until the window has passed, so a
    guesser learns nothing from trying. Kept in process: each replica counts on its own.
    """

    MAX_KEYS = 10_000

    def __init__(self, failures: int, window: float) -> None:
        self.failures = failures
        self.window = window
        self._failed: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failed.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failed[key]
        return times

    def check(self, *keys: str, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                times = self._recent(key, at)
                if len(times) >= self.failures:
                    wait = int(times[0] + self.window - at) + 1
                    raise TooManyAttempts(f"too many failed sign-ins; try again in {wait} s")

    def failed(self, *keys: str, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failed) >= self.MAX_KEYS:  # forget the stalest key rather than grow without bound
                stalest = min(self._failed, key=lambda k: self._failed[k][-1] if self._failed[k] else 0.0)
                del self._failed[stalest]
            for key in keys:
                self._failed.setdefault(key, deque()).append(at)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failed.pop(key, None)
