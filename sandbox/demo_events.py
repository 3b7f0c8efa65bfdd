"""The demo's list-maintenance chapter: a beneficiary list cross-checked, and a death reaching the MIS.

The programme MIS submits its old-age grant list to the registry's cross-check; then it subscribes to
the civil registry's death notifications, a death is registered, and the notification arrives through
the exchange layer and flags the beneficiary.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from sandbox import federation

LIST_PURPOSE = "beneficiary-list-maintenance"
EVENT_PURPOSE = "vital-event-notification"


def _headers(gateway: dict[str, Any], purpose: str) -> dict[str, str]:
    return {
        "X-Road-Client": federation.PROGRAMME_MIS,
        "X-Kiungo-Client-Token": gateway["clients"][federation.PROGRAMME_MIS]["token"],
        "X-Road-PDU-Purpose": purpose,
        "X-Road-UserId": "ZZ-officer-demo",
    }


def crosscheck(console: Console, http: httpx.Client, gateway: dict[str, Any], country: Path, size: int = 300) -> None:
    conn = sqlite3.connect(country / "msp.sqlite")
    rows = conn.execute(
        "SELECT beneficiary_no, national_id, given_name, surname, sex, birth_date, district_code FROM beneficiary "
        "WHERE programme = 'old-age-grant' AND status = 'active' ORDER BY beneficiary_no LIMIT ?",
        (size,),
    ).fetchall()
    conn.close()
    beneficiaries = []
    for number, nid, given, surname, sex, birth, district in rows:
        if nid:
            beneficiaries.append({"beneficiary_no": number, "national_id": nid})
        else:
            person = {"given_name": given, "surname": surname, "sex": sex, "birth_date": birth, "district": district}
            beneficiaries.append({"beneficiary_no": number, **{k: v for k, v in person.items() if v}})
    headers = _headers(gateway, LIST_PURPOSE)
    base = f"{gateway['base_url']}/r1/{federation.VSR}"
    started = time.perf_counter()
    job = http.post(
        f"{base}/crosscheck", json={"programme": "old-age-grant", "beneficiaries": beneficiaries}, headers=headers
    )
    job.raise_for_status()
    job_id = job.json()["job_id"]
    while http.get(f"{base}/bulk/{job_id}", headers=headers).json()["state"] in ("queued", "running"):
        time.sleep(0.2)
    report = http.get(f"{base}/crosscheck/{job_id}/report", headers=headers).json()
    elapsed = time.perf_counter() - started
    summary = report["summary"]
    console.print(
        f"The programme MIS cross-checks {summary['beneficiaries']} active old-age grant beneficiaries "
        f"({elapsed:.1f} s, every look-up an exchange under '{LIST_PURPOSE}'): {summary['flagged']} flagged, "
        f"{summary['for_review']} for review, {summary['clean']} clean, {summary['incomplete']} incomplete."
    )
    table = Table("flag", "beneficiaries", "example evidence")
    for name, count in summary["flags"].items():
        if not count:
            continue
        example = next(f for r in report["beneficiaries"] for f in r["flags"] if f["flag"] == name)
        evidence = example["evidence"][0] if example["evidence"] else {}
        source = evidence.get("source") or ("list lines " + str(evidence.get("list_indices", "")))
        exchange = (evidence.get("exchange_id") or "")[:8]
        table.add_row(name.replace("_", " "), str(count), f"{example['detail'][:60]} · {source} {exchange}…")
    for name, count in summary["review"].items():
        if count:
            table.add_row(f"[yellow]review: {name.replace('_', ' ')}[/]", str(count), "not flagged: an officer decides")
    console.print(table)


def death_notification(console: Console, http: httpx.Client, servers: Any, country: Path) -> None:
    fed = servers.manifest["federation"]
    msp = fed["gateways"]["ZZ/GOV/MSP"]
    headers = _headers(msp, EVENT_PURPOSE)
    url = f"{msp['base_url']}/r1/{federation.EVENTS}/subscriptions/subscribe"
    envelope = {
        "header": {
            "version": "1.0.0",
            "message_id": str(uuid.uuid4()),
            "message_ts": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "action": "subscribe",
            "sender_id": "programme-mis.msp.zz",
            "receiver_id": "events.cra.zz",
            "total_count": 1,
            "is_msg_encrypted": False,
        },
        "message": {
            "transaction_id": "demo-" + uuid.uuid4().hex[:8],
            "subscribe_request": [
                {
                    "reference_id": "deaths",
                    "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
                    "subscribe_criteria": {
                        "version": "1.0.0",
                        "reg_type": "civil-registry",
                        "reg_event_type": "death",
                        "filter": {},
                        "notify_record_type": "person",
                        "callback": {"service": f"{federation.PROGRAMME_MIS}/notifications", "path": ""},
                    },
                }
            ],
        },
    }
    answer = http.post(url, json=envelope, headers=headers)
    answer.raise_for_status()
    item = answer.json()["message"]["subscribe_response"][0]
    code = item["subscriptions"][0]["code"]
    console.print(f"The programme MIS subscribes to registered deaths (subscription {code[:8]}…).")
    conn = sqlite3.connect(country / "msp.sqlite")
    number, nid = conn.execute(
        "SELECT beneficiary_no, national_id FROM beneficiary WHERE programme = 'old-age-grant' AND status = 'active' "
        "AND national_id IS NOT NULL ORDER BY beneficiary_no DESC LIMIT 1"
    ).fetchone()
    conn.close()
    cra = servers.manifest["systems"]["cra"]["base_url"]
    http.post(f"{cra}/_sandbox/events", json={"type": "death", "national_id": nid}).raise_for_status()
    registered = time.perf_counter()
    console.print(f"The civil registry registers the death of old-age grant beneficiary {number}.")
    mis = servers.manifest["systems"]["msp"]["base_url"]
    flags: list[dict[str, Any]] = []
    while time.perf_counter() - registered < 30 and not flags:
        time.sleep(0.2)
        flags = http.get(f"{mis}/v1/beneficiaries/{number}").json().get("flags", [])
    if not flags:
        console.print("[red]The notification did not arrive within 30 s.[/red]")
        return
    status = http.get(
        f"{msp['base_url']}/r1/{federation.EVENTS}/subscriptions/subscriptions/{code}", headers=headers
    ).json()
    console.print(
        f"{time.perf_counter() - registered:.1f} s later the programme MIS has the notification, through the exchange "
        f"layer (signed, logged on both gateways), and has flagged {number}: "
        f"[bold]{flags[0]['flag']}[/bold] (event {flags[0]['event_id']}). Subscription: {status.get('delivered')} "
        f"delivered, {status.get('pending')} pending, {status.get('dead_letters')} dead letters."
    )
