"""The DCI envelope every Kiungo DCI endpoint reads: `{signature?, header, message}`, header checked.

Shared by the virtual registry (search, enrolled) and the event service (subscribe, unsubscribe);
each raises its own error type, given as `fail(reason_code, message)`, with the spec's reason codes.
Messages name fields and codes, never a value a client sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

VERSION: Final = "1.0.0"
RJCT_VERSION: Final = "rjct.version.invalid"
RJCT_MESSAGE_TS: Final = "rjct.message_ts.invalid"
RJCT_ACTION: Final = "rjct.action.invalid"
# The header's reason-code enum has none for an unreadable message: the spec's `Error` codes serve.
ERR_REQUEST: Final = "err.request.bad"
ERR_SENDER_ID: Final = "err.sender_id.invalid"
ERR_ENCRYPTION: Final = "err.encryption.invalid"

Fail = Callable[[str, str], Exception]


def timestamp(value: object) -> dt.datetime | None:
    """An ISO 8601 date-time, or None when the value is not one."""
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def read_envelope(envelope: object, action: str, fail: Fail) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """The header and message of a plain (unencrypted) envelope for `action`, the header checked."""
    if not isinstance(envelope, Mapping):
        raise fail(ERR_REQUEST, "the message must be a JSON object with header and message")
    header = envelope.get("header")
    if not isinstance(header, Mapping):
        raise fail(ERR_REQUEST, "header is missing or not an object")
    message_id = header.get("message_id")
    if not isinstance(message_id, str) or not message_id.strip():
        raise fail(ERR_REQUEST, "header.message_id is missing")
    if header.get("version", VERSION) != VERSION:
        raise fail(RJCT_VERSION, f"header.version must be {VERSION}")
    if timestamp(header.get("message_ts")) is None:
        raise fail(RJCT_MESSAGE_TS, "header.message_ts must be an ISO 8601 date-time")
    if header.get("action") != action:
        raise fail(RJCT_ACTION, f"header.action must be {action} on this endpoint")
    sender = header.get("sender_id")
    if not isinstance(sender, str) or not sender.strip():
        raise fail(ERR_SENDER_ID, "header.sender_id is missing")
    encrypted = header.get("is_msg_encrypted")
    if encrypted is True:
        raise fail(ERR_ENCRYPTION, "encrypted messages are not accepted: set header.is_msg_encrypted false")
    if encrypted not in (None, False):
        raise fail(ERR_REQUEST, "header.is_msg_encrypted must be true or false")
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        raise fail(ERR_REQUEST, "message is missing or not an object")
    if "ciphertext" in message:
        raise fail(ERR_ENCRYPTION, "encrypted messages are not accepted")
    return header, message
