"""Load from a separate process with wrk (Debian's `wrk`), and its report parsed into numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_PCT = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_COUNT = re.compile(r"(\d+) requests in ")
_ERRORS = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    bad: int  # non-2xx answers and socket errors
    requests: int = 0  # completed in the run


def available() -> bool:
    return shutil.which("wrk") is not None


def run(
    url: str,
    *,
    headers: dict[str, str],
    seconds: int = 5,
    connections: int = 16,
    threads: int = 2,
    method: str = "GET",
    body: bytes | None = None,
    delay_ms: int | None = None,
) -> Load:
    """`delay_ms`: each connection waits this long after an answer before its next request (paced load)."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        lua = _script(method, body.decode()) if body is not None else ""
        if delay_ms is not None:
            lua += f"\nfunction delay()\n  return {max(0, delay_ms)}\nend\n"
        if lua:
            script = Path(tmp) / "load.lua"
            script.write_text(lua)
            args += ["-s", str(script)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    pct = {m.group(1): float(m.group(2)) * _UNITS[m.group(3)] for m in _PCT.finditer(out)}
    rps = _RPS.search(out)
    if rps is None or "50" not in pct or "99" not in pct:
        raise RuntimeError(f"cannot read wrk's report:\n{out}")
    errors = _ERRORS.search(out)
    sockets = _SOCKET.search(out)
    bad = (int(errors.group(1)) if errors else 0) + (sum(int(g) for g in sockets.groups()) if sockets else 0)
    count = _COUNT.search(out)
    return Load(float(rps.group(1)), pct["50"], pct["99"], bad, int(count.group(1)) if count else 0)


#: In a body, replaced by an id unique to each request (X-Road message ids are accepted once).
UNIQUE = "{{UNIQUE}}"


def _script(method: str, body: str) -> str:
    template = body.replace("]]", "]] .. ']]' .. [[")
    if UNIQUE not in body:
        return f'wrk.method = "{method}"\nwrk.body = [[{template}]]\n'
    return f"""
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local template = [[{template}]]
function request()
  counter = counter + 1
  local id = tostring(tid) .. "-" .. tostring(os.time()) .. "-" .. tostring(counter)
  local body = string.gsub(template, "{{{{UNIQUE}}}}", id)
  return wrk.format("{method}", nil, nil, body)
end
"""
