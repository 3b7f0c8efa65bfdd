"""The request hash that binds a response to the request it answers (X-Road's X-Road-Request-Hash).

REST: base64 of SHA-512(SHA-512(headers) + SHA-512(body)), or SHA-512(headers) with no body, as the
X-Road REST protocol says. It leaves "headers" open; Kiungo hashes the request line and the X-Road
headers, canonically: `METHOD path?query` then `name:value` lines for each X-Road header present,
names lower-cased and sorted. SOAP: base64 of SHA-512 over the request envelope's bytes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

SHA512_URI = "http://www.w3.org/2001/04/xmlenc#sha512"


def rest_request_hash(method: str, target: str, xroad_headers: Mapping[str, str], body: bytes) -> str:
    lines = [f"{method.upper()} {target}"]
    lines += [f"{k.lower()}:{v}" for k, v in sorted(xroad_headers.items(), key=lambda kv: kv[0].lower())]
    head = hashlib.sha512("\n".join(lines).encode()).digest()
    if not body:
        return base64.b64encode(head).decode()
    return base64.b64encode(hashlib.sha512(head + hashlib.sha512(body).digest()).digest()).decode()


def soap_request_hash(envelope: bytes) -> str:
    return base64.b64encode(hashlib.sha512(envelope).digest()).decode()
