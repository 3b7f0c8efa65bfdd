"""The console over HTTP without a browser: the server refuses what a role may not do, forms need their
token, cookies and headers are strict, identifiers stay out of the trail, and the console's own listener."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.app import listeners
from gateway.commands import app as gateway_cli
from gateway.console import hash_password, verify_password
from gateway.errors import ConfigError
from gateway.server import ServerThread, base_url, bind
from gateway.settings import from_mapping
from tests.gateway.console.conftest import CRA, MSP, TAX, ConsoleClient, Federation, csrf_of
from tests.gateway.nodes import migrated

PAGES = ("/", "/exchanges", "/integrity", "/subjects", "/consent", "/agreements", "/charts", "/persons", "/oversight")
ALLOWED: dict[str, set[str]] = {
    "dpo": {*PAGES, "/trail"},
    "auditor": {"/", "/exchanges", "/integrity", "/agreements", "/charts", "/oversight", "/trail"},
    "operator": {"/", "/integrity", "/agreements", "/charts", "/oversight"},
}
#: Actions by POST, with a form, and the roles that may use them.
POSTS: list[tuple[str, dict[str, str], set[str]]] = [
    ("/integrity/verify", {}, {"dpo", "auditor", "operator"}),
    ("/subjects/report", {"subject": "9000000001"}, {"dpo"}),
    ("/consent/records", {"subject": "9000000001"}, {"dpo"}),
    ("/exchanges", {"subject": "9000000001"}, {"dpo"}),
    ("/directory/refresh", {}, {"operator"}),
]


def test_pages_need_a_session(fed: Federation) -> None:
    answer = httpx.get(fed.console() + "/exchanges")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in?next=/console/exchanges"
    posted = httpx.post(fed.console() + "/subjects/report", data={"subject": "9000000001"})
    assert posted.status_code == 401
    assert "9000000001" not in posted.text


@pytest.mark.parametrize("role", ["dpo", "auditor", "operator"])
def test_the_server_refuses_what_a_role_may_not_use(as_role: Any, role: str) -> None:
    client: ConsoleClient = as_role(role)
    for path in (*PAGES, "/trail"):
        answer = client.get(path)
        expected = 200 if path in ALLOWED[role] else 403
        assert answer.status_code == expected, (role, path, answer.status_code)
        if expected == 403:
            assert "Not for your role" in answer.text
    for path, form, roles in POSTS:
        answer = client.post(path, form)
        assert (answer.status_code == 403) == (role not in roles), (role, path, answer.status_code)
        assert "9000000001" not in answer.text or path == "/subjects/report"


def test_forms_need_the_session_token_and_the_console_origin(as_role: Any) -> None:
    dpo: ConsoleClient = as_role("dpo")
    missing = dpo.post("/subjects/report", {"subject": "9000000001"}, csrf=False)
    assert missing.status_code == 403
    assert "Form not accepted" in missing.text
    foreign = dpo.http.post(
        dpo.base + "/subjects/report",
        data={"csrf": dpo.csrf(), "subject": "9000000001"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert foreign.status_code == 403
    json_body = dpo.http.post(dpo.base + "/subjects/report", json={"csrf": dpo.csrf(), "subject": "9000000001"})
    assert json_body.status_code == 400


def test_cookies_and_headers_are_strict(fed: Federation) -> None:
    client = ConsoleClient(fed.console())
    answer = client.sign_in("auditor", fed.password("auditor"))
    cookie = answer.headers["set-cookie"].lower()
    assert "kiungo_console=" in cookie
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/console" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback; Secure when the request came by HTTPS
    page = client.get("/")
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    css = client.get("/static/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    assert len(css.content) < 8192  # light enough for a slow connection
    signed_out = client.http.post(client.base + "/sign-out", data={"csrf": csrf_of(page.text)})
    assert signed_out.status_code == 303
    assert client.get("/").status_code == 303  # the session is over
    client.close()


def test_errors_are_pages_that_do_not_echo_what_was_typed(as_role: Any) -> None:
    auditor: ConsoleClient = as_role("auditor")
    missing = auditor.get("/no-such-page")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in missing.text
    wrong_box = auditor.get("/exchanges", params={"purpose": "9000000001"})
    assert wrong_box.status_code == 400
    assert "9000000001" not in wrong_box.text
    assert auditor.get("/exchanges/99999999").status_code == 404


def _trail_rows(fed: Federation, code: str) -> list[tuple[Any, ...]]:
    assert fed.servers.federation is not None
    data = Path(fed.servers.federation.configs[code]["data_dir"])
    with sqlite3.connect(data / "console.sqlite") as conn:
        return conn.execute("SELECT * FROM console_audit ORDER BY seq").fetchall()


def _node_hash(fed: Federation, code: str, subject: str) -> str:
    assert fed.servers.federation is not None
    secret = (Path(fed.servers.federation.configs[code]["data_dir"]) / "subject.secret").read_bytes()
    return hmac.new(secret, subject.strip().upper().encode(), hashlib.sha256).hexdigest()


def test_identifiers_stay_out_of_the_trail_and_out_of_links(fed: Federation, as_role: Any) -> None:
    subject = fed.subjects()[0]
    dpo: ConsoleClient = as_role("dpo", TAX)
    report = dpo.post("/subjects/report", {"subject": subject})
    assert report.status_code == 200
    assert subject in report.text  # on the report the DPO asked for, and nowhere else
    assert "data was asked for in" in report.text
    assert f"?subject={subject}" not in report.text
    searched = dpo.post("/exchanges", {"subject": subject})
    assert searched.status_code == 200
    assert subject not in searched.text
    consents = dpo.post("/consent/records", {"subject": subject})
    assert subject not in consents.text
    rows = _trail_rows(fed, "tax")
    assert not [row for row in rows if any(subject in str(cell) for cell in row)]
    hashed = _node_hash(fed, "tax", subject)
    actions = {row[4] for row in rows if row[7] == hashed}  # (seq, at, actor, role, action, ..., subject_hash)
    assert {"subject report", "search exchanges", "consent records"} <= actions
    trail = as_role("auditor", TAX).get("/trail")
    assert trail.status_code == 200
    assert subject not in trail.text
    assert "subject report" in trail.text


def test_sign_in_is_throttled_and_failures_are_in_the_trail(fed: Federation) -> None:
    # the civil registry's console: no other test signs in there, so its throttle is this test's own
    client = ConsoleClient(fed.console(CRA))
    for attempt in range(5):
        failed = client.sign_in("dpo" if attempt % 2 else "not-a-user", f"wrong-password-{attempt}")
        assert failed.status_code == 401
        assert "not right" in failed.text
    throttled = client.sign_in("dpo", fed.password("dpo", CRA))
    assert throttled.status_code == 429
    assert "Too many failed sign-ins" in throttled.text
    rows = [r for r in _trail_rows(fed, "cra") if r[4] == "sign-in"]
    assert [r[5] for r in rows] == ["failed"] * 5 + ["throttled"]
    assert {r[2] for r in rows} == {"dpo", "(unknown user)"}
    assert not [r for r in rows if any("wrong-password" in str(cell) for cell in r)]
    client.close()


def test_console_user_command_prints_settings_that_verify() -> None:
    result = CliRunner().invoke(gateway_cli, ["console-user", "amina", "--role", "dpo", "--generate"])
    assert result.exit_code == 0, result.output
    password = result.stderr.split("password: ")[1].split()[0]
    settings = tomllib.loads(result.stdout)
    user = settings["console"]["users"]["amina"]
    assert user["role"] == "dpo"
    assert verify_password(password, user["password_hash"])
    bad = CliRunner().invoke(gateway_cli, ["console-user", "amina", "--role", "root", "--generate"])
    assert bad.exit_code == 2


def test_console_settings_are_checked() -> None:
    good = hash_password("a long enough password", ln=10)
    base: dict[str, Any] = {"instance": "ZZ"}
    from_mapping(base | {"console": {"users": {"amina": {"role": "dpo", "password_hash": good}}}})
    for users in (
        {"Amina": {"role": "dpo", "password_hash": good}},
        {"amina": {"role": "root", "password_hash": good}},
        {"amina": {"role": "dpo", "password_hash": "plaintext-password"}},
    ):
        with pytest.raises(ConfigError):
            from_mapping(base | {"console": {"users": users}})


def test_the_console_can_have_its_own_listener(tmp_path: Path) -> None:
    password = "a long enough password"
    config = {
        "instance": "ZZ",
        "data_dir": str(tmp_path),
        "console": {
            "port": 0,
            "users": {"otto": {"role": "operator", "password_hash": hash_password(password, ln=10)}},
        },
    }
    client_sock, admin_sock = bind("127.0.0.1", 0), bind("127.0.0.1", 0)
    node = listeners(migrated(config), client_sock=client_sock, admin_sock=admin_sock)
    assert set(node) == {"gateway", "admin"}
    with ServerThread(node, name="console-own-listener"):
        admin, gateway = base_url(admin_sock), base_url(client_sock)
        assert httpx.get(admin + "/").headers["location"] == "/console/"
        assert httpx.get(gateway + "/console/sign-in").status_code == 404  # not on the clients' listener
        console = ConsoleClient(admin + "/console")
        assert console.sign_in("otto", password).status_code == 303
        overview = console.get("/")
        assert overview.status_code == 200
        assert "This node is not in a federation" in overview.text
        assert (tmp_path / "console.secret").stat().st_mode & 0o777 == 0o600
        console.close()


def test_every_gateway_of_the_sandbox_has_a_console(fed: Federation) -> None:
    for member in (MSP, TAX, CRA):
        assert httpx.get(fed.console(member) + "/sign-in").status_code == 200


def test_a_look_up_with_a_source_down_says_which_and_decides_nothing_it_cannot(fed: Federation, as_role: Any) -> None:
    fault = fed.servers.base_url("ssf") + "/_sandbox/fault"
    httpx.post(fault, json={"mode": "error"}).raise_for_status()
    try:
        answer = as_role("dpo").post("/persons", {"national_id": "9000000001", "programme": "old-age-grant"})
    finally:
        httpx.post(fault, json={"mode": "none"}).raise_for_status()
    assert answer.status_code == 200
    assert "A source did not answer" in answer.text
    assert "Undetermined" in answer.text
    assert "9000000001" not in answer.text
