"""manifest.json: what an export is (chain, height, period, version), the proof (the whole seal and its commit
certificate) and the SHA-256 and record count of every other file.

The manifest is a pure function of the seal, the certificate, the registry and the other files' bytes, so
the verifier rebuilds it and compares it field by field.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Mapping

from stromledger.cascade.messages import PeriodResult, PeriodSeal
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import sha256
from stromledger.periods import Period, format_utc
from stromledger.registry import Registry

from .text import json_document

MANIFEST = "manifest.json"
FORMAT = "stromledger-export"
FORMAT_VERSION = 1
GENESIS_SCOPE = "genesis"  # the scope of a chain that settles the whole genesis (one-chain stand-ins in tests)


def count_records(name: str, data: bytes) -> int:
    """Records of a file as the manifest counts them: CSV data lines (without the header), JSON Lines
    lines, MSCONS quantities (QTY segments, one per line), one per binary message."""
    if name.endswith(".csv"):
        return max(data.count(b"\n") - 1, 0)
    if name.endswith(".jsonl"):
        return data.count(b"\n")
    if name.endswith(".edi"):
        return data.count(b"\nQTY+") + data.startswith(b"QTY+")  # the lines that start with QTY+
    if name.endswith(".bin"):
        return 1  # one encoded message (a network export's area checkpoint)
    raise ValueError(f"no record count defined for {name}")


def file_entry(name: str, data: bytes, records: int | None = None) -> dict:
    """`records`: the count_records of `data` when the writer knows it (else it is counted)."""
    return {"sha256": sha256(data).hex(), "records": count_records(name, data) if records is None else records}


class FileDigest:
    """The manifest entry of a file given piece by piece (`update` with each piece, then `entry`): the same
    SHA-256 and record count as `file_entry` of the pieces joined, for a writer that never holds the file
    in one piece."""

    _EDI_RECORD = b"\nQTY+"

    def __init__(self, name: str, count: bool = True):
        """`count`: False when the writer knows the record count (given to `entry`): nothing is counted."""
        count_records(name, b"")  # refuses a name without a record count now, not at the end
        self.name = name
        self.count = count
        self.hash = hashlib.sha256()
        self.lines = 0  # LF characters so far
        self.quantities = 0  # EDI: lines that start with QTY+
        self.tail = b"\n"  # the last bytes before the next piece (the file's start counts as after a LF)

    def update(self, data: bytes) -> None:
        self.hash.update(data)
        if not self.count:
            pass
        elif self.name.endswith(".edi"):
            # a record split across two pieces is counted once: the pattern cannot overlap itself
            self.quantities += data.count(self._EDI_RECORD) + (self.tail + data[:4]).count(self._EDI_RECORD)
            self.tail = (self.tail + data[-4:])[-4:]
        else:
            self.lines += data.count(b"\n")

    def entry(self, records: int | None = None) -> dict:
        if records is None:
            if not self.count:
                raise ValueError(f"{self.name}: the record count was neither counted nor given")
            records = self.quantities if self.name.endswith(".edi") else \
                max(self.lines - 1, 0) if self.name.endswith(".csv") else \
                self.lines if self.name.endswith(".jsonl") else count_records(self.name, b"")
        return {"sha256": self.hash.hexdigest(), "records": records}


def certificate_json(cert: CommitCertificate, registry: Registry) -> dict:
    """The certificate's canonical bytes (hex) and the same content readable, with validator names and keys
    from the genesis. A signer index outside the validator list gets name and key ""."""
    validators = registry.validators

    def signer(i: int, sig: bytes) -> dict:
        v = validators[i] if i < len(validators) else None
        return {"validator": i, "name": v.name if v else "", "public_key": v.public_key.hex() if v else "",
                "sig": sig.hex()}

    return {
        "encoded": cert.encode().hex(),
        "height": cert.height,
        "round": cert.round,
        "value_hash": cert.value_hash.hex(),
        "signatures": [signer(s.validator, s.sig) for s in cert.signatures],
    }


def period_json(period: Period) -> dict:
    return {"index": period.index, "start": format_utc(period.start), "end": format_utc(period.end),
            "interval": period.iso(), "seconds": period.length}


def summary_json(result: PeriodResult) -> dict:
    return {"meter_points": result.meter_points, "measured": result.measured, "substituted": result.substituted,
            "corrected": result.corrected, "missing": result.missing, "merkle_root": result.merkle_root.hex(),
            "net_export_wh": result.net_export, "external_schedules_net_wh": result.checks.external_net,
            "implausible_loss_areas": list(result.implausible_loss)}


def manifest_dict(*, registry: Registry, seal: PeriodSeal, seal_bytes: bytes, certificate: CommitCertificate,
                  result: PeriodResult, files: Mapping[str, bytes] | None = None,
                  records: Mapping[str, int] | None = None, entries: Mapping[str, dict] | None = None,
                  committee: Registry | None = None) -> dict:
    """The other files either as `files` (their bytes) or as `entries` (their `file_entry`, made while they
    were written: `FileDigest`). `records`: record counts (count_records) the builder knows without
    counting, by file name. `committee`: the registry version of the seal's height, whose validators signed
    (default `registry`)."""
    records = records or {}
    if entries is None:
        entries = {name: file_entry(name, data, records.get(name)) for name, data in (files or {}).items()}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scope": registry.scope or GENESIS_SCOPE,  # an area's EIC (network exports: export/network.py)
        "chain_id": seal.chain_id,
        "registry_hash": seal.registry_hash.hex(),
        "registry_version": result.registry_version.hex(),
        "height": seal.height,
        "period": period_json(registry.period(result.period)),
        "version": result.version,
        "seal_hash": sha256(seal_bytes).hex(),
        "seal": base64.b64encode(seal_bytes).decode("ascii"),
        "summary": summary_json(result),
        "certificate": certificate_json(certificate, committee or registry),
        "files": {name: entry for name, entry in sorted(entries.items()) if name != MANIFEST},
    }


def manifest_bytes(manifest: dict) -> bytes:
    return json_document(manifest)
