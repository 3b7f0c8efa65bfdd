"""Passwords, sessions, CSRF tokens and sign-in throttling, without a server."""

from __future__ import annotations

import re

import pytest

from gateway.console import (
    CsrfRejected,
    Role,
    Sessions,
    SignInThrottle,
    TooManyAttempts,
    User,
    WeakPassword,
    hash_password,
    verify_password,
)
from gateway.console.auth import is_password_hash
from gateway.settings import ConsoleUserSettings

SECRET = b"s" * 32
FAST = 10  # the lowest scrypt cost, for tests only


def users(password_hash: str) -> dict[str, User]:
    return {"amina": User("amina", Role.DPO, password_hash), "otto": User("otto", Role.OPERATOR, password_hash)}


@pytest.fixture(scope="module")
def hashed() -> str:
    return hash_password("correct horse battery", ln=FAST)


def sessions(hashed: str, **kw: int) -> Sessions:
    return Sessions(SECRET, users(hashed), idle_seconds=kw.get("idle", 1800), max_seconds=kw.get("max", 43200))


def test_password_hash_is_salted_scrypt_in_the_settings_format(hashed: str) -> None:
    assert re.fullmatch(r"\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+", hashed)
    assert is_password_hash(hashed)
    assert ConsoleUserSettings(role="dpo", password_hash=hashed).password_hash == hashed
    assert hash_password("correct horse battery", ln=FAST) != hashed  # a fresh salt every time
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)
    assert not verify_password("correct horse battery", "$scrypt$ln=10,r=8,p=1$AAAA$AAAA")
    assert not verify_password("x", "not a hash")


def test_default_cost_and_weak_passwords() -> None:
    assert hash_password("a long enough password").startswith("$scrypt$ln=15,r=8,p=1$")
    with pytest.raises(WeakPassword):
        hash_password("short")
    with pytest.raises(WeakPassword):
        hash_password("a long enough password", ln=30)


def test_sign_in_checks_name_and_password(hashed: str) -> None:
    s = sessions(hashed)
    user = s.authenticate("amina", "correct horse battery")
    assert user is not None
    assert user.role is Role.DPO
    assert s.authenticate("amina", "wrong password!") is None
    assert s.authenticate("nobody", "correct horse battery") is None


def test_a_session_cookie_is_signed_and_round_trips(hashed: str) -> None:
    s = sessions(hashed)
    session, cookie = s.issue(s.users["amina"], now=1000)
    read = s.read(cookie, now=1001)
    assert read == session
    body, mac = cookie.split(".")
    assert s.read(body + "." + mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1], now=1001) is None
    assert s.read(cookie.replace(body, body[:-3] + "xyz"), now=1001) is None
    assert s.read("", now=1001) is None
    assert s.read("garbage", now=1001) is None
    other = Sessions(b"t" * 32, s.users, idle_seconds=1800, max_seconds=43200)
    assert other.read(cookie, now=1001) is None  # another secret signs other cookies


def test_sessions_end_when_idle_at_the_maximum_and_on_sign_out(hashed: str) -> None:
    s = sessions(hashed, idle=60, max=300)
    session, cookie = s.issue(s.users["amina"], now=1000)
    assert s.read(cookie, now=1059) is not None
    assert s.read(cookie, now=1060) is None  # idle
    moved = session
    for at in range(1050, 1400, 50):  # renewed by each request, but never past the maximum
        moved, cookie = s.renew(moved, now=at)
    assert moved.expires == 1300
    assert s.read(cookie, now=1299) is not None
    assert s.read(cookie, now=1300) is None
    fresh, cookie = s.issue(s.users["amina"])
    assert s.read(cookie) is not None
    s.revoke(fresh)
    assert s.read(cookie) is None


def test_a_changed_password_role_or_removed_user_ends_the_session(hashed: str) -> None:
    s = sessions(hashed)
    _, cookie = s.issue(s.users["amina"], now=1000)
    changed = hash_password("another good password", ln=FAST)
    assert Sessions(SECRET, users(changed), idle_seconds=1800, max_seconds=43200).read(cookie, now=1001) is None
    demoted = {"amina": User("amina", Role.AUDITOR, hashed)}
    assert Sessions(SECRET, demoted, idle_seconds=1800, max_seconds=43200).read(cookie, now=1001) is None
    assert Sessions(SECRET, {}, idle_seconds=1800, max_seconds=43200).read(cookie, now=1001) is None


def test_csrf_tokens_are_bound_to_the_session(hashed: str) -> None:
    s = sessions(hashed)
    one, _ = s.issue(s.users["amina"])
    two, _ = s.issue(s.users["amina"])
    s.check_csrf(one, s.csrf_token(one))
    with pytest.raises(CsrfRejected):
        s.check_csrf(one, s.csrf_token(two))
    with pytest.raises(CsrfRejected):
        s.check_csrf(one, None)
    s.check_signin_token("nonce-1", s.signin_token("nonce-1"))
    with pytest.raises(CsrfRejected):
        s.check_signin_token("nonce-2", s.signin_token("nonce-1"))
    with pytest.raises(CsrfRejected):
        s.check_signin_token(None, s.signin_token("nonce-1"))


def test_throttle_refuses_after_the_failures_until_the_window_passes() -> None:
    throttle = SignInThrottle(3, 60)
    for t in (0.0, 1.0, 2.0):
        throttle.check("user:amina", "addr:10.0.0.1", now=t)
        throttle.failed("user:amina", "addr:10.0.0.1", now=t)
    with pytest.raises(TooManyAttempts):
        throttle.check("user:amina", now=3.0)
    with pytest.raises(TooManyAttempts):
        throttle.check("user:otto", "addr:10.0.0.1", now=3.0)  # the address is held back too
    throttle.check("user:otto", "addr:10.0.0.2", now=3.0)
    throttle.check("user:amina", "addr:10.0.0.1", now=61.0)  # the first failure left the window
    throttle.succeeded("user:amina")
    throttle.check("user:amina", now=3.0)
