"""Evidence bundles: records with inclusion proofs to a signed tree head, verifiable offline.

Layout (a directory, or the same files in a .zip):
  manifest.json      format, node, tree size and root the proofs lead to, filters, record count
  records.jsonl      one line per record: {"index", "leaf", "record", "proof"}
  tree_heads.json    every signed tree head (JWS, TSA token in base64) with consistency proofs between them
  signer-cert.pem    the certificate that signed the tree heads (pin your own copy when verifying)
  bodies.jsonl       archives only: still-encrypted bodies {"index", "kind", "ciphertext"}
  README.txt         how to check it by hand
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from gateway.exchangelog import store
from gateway.exchangelog.errors import LogError, TamperError
from gateway.exchangelog.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    subtree_from_nodes,
    verify_consistency,
    verify_inclusion,
)
from gateway.exchangelog.record import LogRecord
from gateway.exchangelog.treehead import SignedTreeHead
from gateway.exchangelog.verify import VerifyReport, check_heads

if TYPE_CHECKING:
    from gateway.exchangelog.log import ExchangeLog

FORMAT = "kiungo-exchange-log-bundle/1"

README = """Kiungo exchange-log evidence bundle ({kind})
==========================================

Node: {node}
Records: {count}, proven against the signed tree head of size {size}, root {root}.

What each file is
- manifest.json: what this bundle claims (node, tree size and root, filters, number of records).
- records.jsonl: one JSON object per line: "index" (leaf index in the log), "record" (the exchange
  record), "leaf" (hex SHA-256 of 0x00 || canonical JSON of the record), "proof" (RFC 9162 inclusion
  proof, hex hashes, leaf to root).
- tree_heads.json: signed tree heads, oldest first: "jws" (ES256 JWS over the canonical JSON
  {{node, size, root, timestamp}}), "tsa_token" (base64 DER RFC 3161 time-stamp token over
  SHA-256 of the JWS text, or null), "consistency" (RFC 9162 proof from the previous head).
- signer-cert.pem: the certificate of the key that signed the tree heads.

How to check it
  kiungo audit verify --bundle <this bundle>
or by hand: canonical JSON = keys sorted, no whitespace, UTF-8. For each record, recompute the leaf
hash, then fold the proof (RFC 9162 section 2.1.3.2) and compare with the root in the JWS payload of
the tree head whose size is {size}. Verify each JWS with the certificate's public key (ES256).
"""


def _load_nodes(log: ExchangeLog, size: int) -> dict[tuple[int, int], bytes]:
    nodes: dict[tuple[int, int], bytes] = {}
    with log.engine.connect() as conn:
        for level, idx, h in conn.execute(select(store.nodes.c.level, store.nodes.c.idx, store.nodes.c.hash)):
            if (idx << level) < size:
                nodes[(level, idx)] = h
    return nodes


def _heads_json(heads: list[SignedTreeHead], mth: Any) -> list[dict[str, Any]]:
    out = []
    previous = 0
    for sth in heads:
        proof = consistency_proof(previous, sth.size, mth) if 0 < previous <= sth.size else []
        out.append(
            {
                "node": sth.node,
                "size": sth.size,
                "root": sth.root,
                "timestamp": sth.timestamp,
                "jws": sth.jws,
                "tsa_token": base64.b64encode(sth.tsa_token).decode() if sth.tsa_token else None,
                "tsa_error": sth.tsa_error,
                "consistency": [h.hex() for h in proof],
            }
        )
        previous = sth.size
    return out


def _covering_head(log: ExchangeLog, needed: int) -> SignedTreeHead:
    heads = log.signed_tree_heads()
    if (not heads or heads[-1].size < needed) and log.signer is not None:
        log.sign_tree_head()
        heads = log.signed_tree_heads()
    if not heads or heads[-1].size < needed:
        raise LogError("exchange log: no signed tree head covers these records; sign one first")
    return heads[-1]


def _write(path: Path, files: dict[str, bytes]) -> Path:
    if path.suffix == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        path.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (path / name).write_bytes(data)
    return path


def _build(
    log: ExchangeLog,
    kind: str,
    rows: list[tuple[int, str]],
    *,
    since_ms: int | None,
    until_ms: int | None,
    contiguous_from: int | None,
    end_index: int | None,
) -> dict[str, bytes]:
    size = log.size()
    sth = _covering_head(log, max([i + 1 for i, _ in rows], default=0))
    nodes = _load_nodes(log, max(size, sth.size))

    def node(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise LogError("exchange log: the stored tree is incomplete") from None

    mth = subtree_from_nodes(node)
    lines = []
    for idx, content in rows:
        proof = inclusion_proof(idx, sth.size, mth)
        record = json.loads(content)
        line = {
            "index": idx,
            "leaf": leaf_hash(content.encode()).hex(),
            "record": record,
            "proof": [p.hex() for p in proof],
        }
        lines.append(json.dumps(line, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
    heads = [h for h in log.signed_tree_heads() if h.size <= sth.size]
    cert = log.signer_certificate() or ""
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "node": sth.node,
        "tree_size": sth.size,
        "root": sth.root,
        "since_ms": since_ms,
        "until_ms": until_ms,
        "record_count": len(rows),
        "contiguous_from": contiguous_from,
        "end_index": end_index,
    }
    return {
        "manifest.json": json.dumps(manifest, indent=2, sort_keys=True).encode(),
        "records.jsonl": ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"),
        "tree_heads.json": json.dumps(_heads_json(heads, mth), indent=2).encode(),
        "signer-cert.pem": cert.encode(),
        "README.txt": README.format(kind=kind, node=sth.node, count=len(rows), size=sth.size, root=sth.root).encode(),
    }


def export_bundle(log: ExchangeLog, path: Path, *, since_ms: int | None, until_ms: int | None) -> Path:
    d = log.engine.dialect.name
    q = select(store.records.c.idx, store.records.c.content)
    if since_ms is not None:
        q = q.where(store.field(d, "request_in_ts") >= since_ms)
    if until_ms is not None:
        q = q.where(store.field(d, "request_in_ts") < until_ms)
    with log.engine.connect() as conn:
        rows = [(int(i), str(c)) for i, c in conn.execute(q.order_by(store.records.c.idx))]
        archived = int(store.get_meta(conn, "archived_before")[0] or 0)
    full = since_ms is None and until_ms is None
    files = _build(
        log,
        "export",
        rows,
        since_ms=since_ms,
        until_ms=until_ms,
        contiguous_from=archived if full else None,
        end_index=None,
    )
    return _write(path, files)


def archive_prefix(log: ExchangeLog, before_ms: int, path: Path) -> int:
    """Move the oldest records (the prefix of the log logged before `before_ms`) to an archive bundle.

    The prefix rule keeps what stays a contiguous suffix; leaf and interior hashes stay, so roots,
    proofs and verification of the remaining records are unchanged.
    """
    d = log.engine.dialect.name
    with log.engine.connect() as conn:
        start = int(store.get_meta(conn, "archived_before")[0] or 0)
        size = int(store.get_meta(conn, "size")[0] or 0)
        first_new = conn.execute(
            select(func.min(store.records.c.idx)).where(
                store.records.c.idx >= start, store.field(d, "request_in_ts") >= before_ms
            )
        ).scalar_one_or_none()
        end = size if first_new is None else int(first_new)
        if end <= start:
            return 0
        rows = [
            (int(i), str(c))
            for i, c in conn.execute(
                select(store.records.c.idx, store.records.c.content)
                .where(store.records.c.idx >= start, store.records.c.idx < end)
                .order_by(store.records.c.idx)
            )
        ]
        body_rows = conn.execute(
            select(store.bodies.c.idx, store.bodies.c.kind, store.bodies.c.ciphertext)
            .where(store.bodies.c.idx < end)
            .order_by(store.bodies.c.idx)
        ).all()
    files = _build(log, "archive", rows, since_ms=None, until_ms=before_ms, contiguous_from=start, end_index=end)
    files["bodies.jsonl"] = "".join(
        json.dumps({"index": i, "kind": k, "ciphertext": base64.b64encode(b).decode()}) + "\n" for i, k, b in body_rows
    ).encode()
    digest = hashlib.sha256(b"".join(hashlib.sha256(files[n]).digest() for n in sorted(files))).hexdigest()
    _write(path, files)
    with log.engine.begin() as conn:
        conn.execute(store.records.delete().where(store.records.c.idx < end))
        conn.execute(store.bodies.delete().where(store.bodies.c.idx < end))
        conn.execute(store.subjects.delete().where(store.subjects.c.idx < end))
        store.set_meta(conn, "archived_before", value=end)
        conn.execute(
            store.archives.insert().values(
                first_index=start, end_index=end, created=_now(), bundle_name=path.name, bundle_digest=digest
            )
        )
    return len(rows)


def _now() -> int:
    from gateway.exchangelog.log import now_ms

    return now_ms()


# -- offline verification -------------------------------------------------------------------------


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip = zipfile.ZipFile(path) if path.is_file() else None

    def read(self, name: str) -> bytes:
        if self.zip is not None:
            return self.zip.read(name)
        return (self.path / name).read_bytes()

    def lines(self, name: str) -> Iterator[str]:
        yield from self.read(name).decode("utf-8").splitlines()


def verify_bundle(path: Path, *, signer_cert_pem: str | None = None) -> VerifyReport:
    """Check a bundle with nothing but its files (and, better, your own copy of the signer certificate)."""
    reader = _Reader(Path(path))
    count = 0
    heads: list[SignedTreeHead] = []
    try:
        try:
            manifest = json.loads(reader.read("manifest.json"))
            raw_heads = json.loads(reader.read("tree_heads.json"))
            cert = signer_cert_pem or reader.read("signer-cert.pem").decode() or None
        except (KeyError, OSError, ValueError) as exc:
            raise TamperError("tree-head", None, "the bundle is incomplete or unreadable") from exc
        if manifest.get("format") != FORMAT:
            raise TamperError("tree-head", None, "not a Kiungo exchange-log bundle")
        node = str(manifest["node"])
        for h in raw_heads:
            token = base64.b64decode(h["tsa_token"]) if h.get("tsa_token") else None
            heads.append(
                SignedTreeHead(h["node"], h["size"], h["root"], h["timestamp"], h["jws"], token, h.get("tsa_error"))
            )
        check_heads(heads, cert, node)
        previous: SignedTreeHead | None = None
        for h, sth in zip(raw_heads, heads, strict=True):
            if previous is not None and previous.size > 0:
                proof = [bytes.fromhex(x) for x in h["consistency"]]
                if not verify_consistency(
                    previous.size, sth.size, bytes.fromhex(previous.root), bytes.fromhex(sth.root), proof
                ):
                    raise TamperError(
                        "tree-head", None, f"tree head of size {sth.size} is not an extension of the previous one"
                    )
            previous = sth
        target = next((s for s in heads if s.size == manifest["tree_size"] and s.root == manifest["root"]), None)
        if target is None:
            raise TamperError("tree-head", None, "the manifest names no signed tree head of the bundle")
        root = bytes.fromhex(target.root)
        expected = manifest.get("contiguous_from")
        items = [json.loads(line) for line in reader.lines("records.jsonl") if line]
        indices = [int(item["index"]) for item in items]
        for p in range(len(indices) - 1):
            if indices[p] == indices[p + 1]:
                raise TamperError("inserted", indices[p], "a record index appears twice")
            if indices[p] > indices[p + 1]:
                raise TamperError("reordered", min(indices[p:]), "records are not in index order")
        for item, idx in zip(items, indices, strict=True):
            if expected is not None and idx != expected:
                raise TamperError("removed", expected, "a record is missing from a complete export")
            try:
                content = LogRecord.from_dict(item["record"]).canonical()
            except (TypeError, ValueError) as exc:
                raise TamperError("altered", idx, "the record is not in the log record format") from exc
            leaf = leaf_hash(content)
            proof = [bytes.fromhex(x) for x in item["proof"]]
            if not verify_inclusion(leaf, idx, target.size, proof, root):
                if leaf.hex() != item["leaf"]:
                    raise TamperError("altered", idx, "the record does not hash to its leaf")
                raise TamperError("inserted", idx, "the record's inclusion proof does not lead to the signed root")
            count += 1
            if expected is not None:
                expected += 1
        if count != manifest["record_count"]:
            kind = "removed" if count < manifest["record_count"] else "inserted"
            raise TamperError(
                kind, None, f"the bundle holds {count} records; its manifest says {manifest['record_count']}"
            )
        end = manifest.get("end_index")
        if end is None and manifest.get("contiguous_from") is not None:
            end = target.size
        if end is not None and expected is not None and expected != end:
            raise TamperError("truncated", expected, f"a complete export should reach index {end}")
        return VerifyReport(True, count, len(heads))
    except TamperError as error:
        return VerifyReport.failed(error, count, len(heads))
    finally:
        if reader.zip is not None:
            reader.zip.close()
