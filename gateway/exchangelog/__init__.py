"""The tamper-evident exchange log: every exchange a gateway handles, as a leaf of an RFC 9162 Merkle tree.

The gateway appends one record per exchange and side (fail closed: `LoggingFailed` means refuse the
exchange), signs tree heads now and then (optionally time-stamped by an RFC 3161 authority), and DPOs
verify, search and export evidence. Nothing here imports the rest of `gateway`.
"""

from __future__ import annotations

from gateway.exchangelog.bundle import verify_bundle
from gateway.exchangelog.errors import LogError, LoggingFailed, TamperError
from gateway.exchangelog.log import ExchangeLog
from gateway.exchangelog.record import LogRecord
from gateway.exchangelog.subjects import subject_hash
from gateway.exchangelog.treehead import SignedTreeHead, TreeHead
from gateway.exchangelog.tsa import create_tsa_app
from gateway.exchangelog.verify import VerifyReport

__all__ = [
    "ExchangeLog",
    "LogError",
    "LogRecord",
    "LoggingFailed",
    "SignedTreeHead",
    "TamperError",
    "TreeHead",
    "VerifyReport",
    "create_tsa_app",
    "subject_hash",
    "verify_bundle",
]
