"""The network chain's export of one NetworkResult: balancing groups, areas (used or absent), tie lines and
schedules, with the NetworkSeal, its certificate and the area checkpoints the result used, so that the
genesis alone verifies it: the network committee's certificate, every checkpoint (its area committee's
certificate, invariants, tie-line proofs), the cross-level checks against those checkpoints, every file.

`manifest.json` has the area export's layout with `scope` = "network"; the files:

    balancing-groups.csv   as in an area export (no generation mix: that is in the area exports)
    network-areas.csv      per genesis area: used (its area seal's height, hash, result version) or absent,
                           and its totals as the network books them
    ties.csv               every boundary meter: flows, the area whose certified seal gave them, disputed
    schedules.csv          as in an area export
    checkpoint-<EIC>.bin   the checkpoint of every used area (the bytes the network chain verified)
    registry-changes.jsonl the network chain's approved changes in effect by the seal's height, when there are
                           any (each approved by the committee before it): committee changes give the committee
                           that signed, market changes (groups opened or closed, market-partner ids) the groups
                           the result settles (docs/registry.md)
"""

from __future__ import annotations

import base64
import binascii
from typing import Mapping

from stromledger.chains.checkpoint import Certified, verify_checkpoint
from stromledger.chains.messages import ABSENT, NetworkResult, NetworkSeal
from stromledger.chains.network import check_network_result, market_version
from stromledger.codec import CodecError
from stromledger.consensus.certificate import CertificateError, verify_certificate
from stromledger.consensus.messages import CommitCertificate
from stromledger.crypto import sha256
from stromledger.registry import NETWORK, MarketChange, Registry, decode_change, registry_at, view, with_changes
from stromledger.registry.changes import is_approved, trust_problem

from . import tables
from .manifest import FORMAT, FORMAT_VERSION, MANIFEST, certificate_json, file_entry, manifest_bytes, period_json
from .report import Problem, Report
from .text import FormatError, csv_bytes, parse_json

NETWORK_AREAS_CSV = "network-areas.csv"
TIES_CSV = "ties.csv"
NETWORK_AREA_COLUMNS = ("period_start", "period_end", "version", "grid_area", "status", "area_height",
                        "area_seal_hash", "area_version", "injection_wh", "withdrawal_wh", "exchange_in_wh",
                        "exchange_out_wh", "loss_wh", "loss_balancing_group")
TIE_COLUMNS = ("period_start", "period_end", "version", "malo_id", "area_out", "area_in", "source",
               "flow_out_to_in_wh", "flow_in_to_out_wh", "disputed")


def checkpoint_file(area: str) -> str:
    return f"checkpoint-{area}.bin"


def export_network_committed(store, genesis: Registry, height: int, base_dir, checkpoints: Mapping[bytes, bytes],
                             changes: tuple = ()) -> list:
    """Write the export of every result in the committed NetworkSeal at `height` under `<base_dir>/exports/`,
    with the certificate the seal at height + 1 carries (the same on every node); return their directories.
    `checkpoints`: area seal hash -> checkpoint bytes with the area's canonical certificate
    (chains.canonical_checkpoints): every validator writes the same bytes. Raises ExportError while one the
    seal uses is not available (None): the caller tries again after a later commit. `changes`: the network
    chain's committed registry changes (its committee changes go along)."""
    from .build import ExportError
    from .writer import write_export

    commit, following = store.get_commit(height), store.get_commit(height + 1)
    if commit is None or following is None:
        raise ExportError(f"heights {height} and {height + 1} must both be committed")
    seal_bytes = bytes(commit.value)
    cert = CommitCertificate.decode(NetworkSeal.decode(bytes(following.value)).base.last_commit)
    seal = NetworkSeal.decode(seal_bytes)
    waiting = sorted({u.area for r in seal.results for u in r.areas_used
                      if u.seal_hash != ABSENT and checkpoints.get(u.seal_hash) is None})
    if waiting:
        raise ExportError(f"waiting for the canonical certificates of the area seals of {', '.join(waiting)}")
    return [write_export(base_dir, network_export_files(genesis, seal_bytes, cert, r.period, checkpoints, changes))
            for r in seal.results]


def network_export_files(genesis: Registry, seal_bytes: bytes, certificate: CommitCertificate, period: int,
                         checkpoints: Mapping[bytes, bytes], changes: tuple = ()) -> dict[str, bytes]:
    """{file name: bytes} of the export of `period`'s result in the NetworkSeal `seal_bytes`; `checkpoints`
    gives a checkpoint's bytes by its area seal hash (every area the result uses must be there); `changes`:
    the network chain's committed changes (those approved and in effect by the seal's height go along)."""
    seal = NetworkSeal.decode(seal_bytes)
    result = seal.result(period)
    if result is None:
        raise ValueError(f"the network seal at height {seal.height} has no result for period {period}")
    p = genesis.period(period)
    start, end = tables.interval(p)
    files = {
        tables.GROUPS_CSV: tables.groups_csv(p, result, None),
        tables.SCHEDULES_CSV: tables.schedules_csv(p, result),
        NETWORK_AREAS_CSV: csv_bytes(NETWORK_AREA_COLUMNS, _area_rows(genesis, result, start, end)),
        TIES_CSV: csv_bytes(TIE_COLUMNS, ([start, end, result.version, t.malo_id, t.area_out, t.area_in, t.source,
                                           t.fwd, t.back, int(t.disputed)] for t in result.ties)),
    }
    for u in result.areas_used:
        if u.seal_hash != ABSENT:
            files[checkpoint_file(u.area)] = bytes(checkpoints[u.seal_hash])
    chain = view(genesis, NETWORK)
    carried = tuple(c for c in changes if is_approved(c) and c.effective_period <= seal.height)
    if carried:
        files[tables.REGISTRY_CHANGES_JSONL] = tables.registry_changes_jsonl(carried)
    committee = registry_at(chain, seal.height, carried)
    # the network view with the market changes in effect in the period: the groups the result settles
    settled = registry_at(chain, period, tuple(c for c in carried if isinstance(c, MarketChange)))
    files[MANIFEST] = manifest_bytes(_manifest(settled, seal, seal_bytes, certificate, result, files, committee))
    return files


def _area_rows(genesis: Registry, result: NetworkResult, start: str, end: str):
    totals = {a.area: a for a in result.areas}
    for u in result.areas_used:
        a = totals[u.area]
        absent = u.seal_hash == ABSENT
        yield [start, end, result.version, u.area, "absent" if absent else "used", u.height,
               "" if absent else u.seal_hash.hex(), u.version, a.inj, a.wd, a.exin, a.exout, a.loss,
               genesis.grid_areas[u.area].loss_group]


def _manifest(chain: Registry, seal: NetworkSeal, seal_bytes: bytes, cert: CommitCertificate,
              result: NetworkResult, files: Mapping[str, bytes], committee: Registry) -> dict:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "scope": NETWORK,
        "chain_id": seal.base.chain_id,
        "registry_hash": seal.base.registry_hash.hex(),
        "registry_version": chain.version.hex(),  # the network view with the market changes in effect
        "height": seal.height,
        "period": period_json(chain.period(result.period)),
        "version": result.version,
        "seal_hash": sha256(seal_bytes).hex(),
        "seal": base64.b64encode(seal_bytes).decode("ascii"),
        "summary": {"areas_used": len(result.areas_used) - len(result.absent), "absent": list(result.absent),
                    "cells": len(result.cells), "net_export_wh": result.net_export},
        "certificate": certificate_json(cert, committee),
        "files": {name: file_entry(name, data) for name, data in sorted(files.items()) if name != MANIFEST},
    }


def verify_network_export(files: Mapping[str, bytes], genesis: Registry) -> Report:
    """Check a network export with the genesis alone; every problem with its file and place."""
    report = Report()
    chain = view(genesis, NETWORK)

    def fail(reason: str, file: str, message: str, where: str = "") -> Report:
        report.problems.append(Problem(reason, file, where, message))
        return report

    try:
        m = parse_json(files[MANIFEST].decode("utf-8"))
        seal_bytes = base64.b64decode(m["seal"], validate=True)
        seal = NetworkSeal.decode(seal_bytes)
        cert = CommitCertificate.decode(bytes.fromhex(m["certificate"]["encoded"]))
        period = m["period"]["index"]
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, FormatError, CodecError, binascii.Error) as e:
        return fail("bad_manifest", MANIFEST, f"not a readable network manifest: {e}")
    report.chain_id, report.height, report.period = seal.base.chain_id, seal.height, period
    report.seal_hash = sha256(seal_bytes).hex()
    if seal.base.chain_id != chain.chain_id or seal.base.registry_hash != chain.hash:
        return fail("wrong_chain", MANIFEST, f"the seal is of chain {seal.base.chain_id!r}, the genesis gives "
                                             f"{chain.chain_id!r}")
    try:
        changes = with_changes((), [decode_change(bytes.fromhex(parse_json(line.decode("utf-8"))["encoded"]),
                                                  approved_only=True)
                                    for line in files.get(tables.REGISTRY_CHANGES_JSONL, b"").split(b"\n") if line])
    except (KeyError, TypeError, ValueError, UnicodeDecodeError, FormatError, CodecError) as e:
        return fail("bad_registry_change", tables.REGISTRY_CHANGES_JSONL, f"not a committee change: {e}")
    problem = trust_problem(chain, changes)
    if problem is not None:
        return fail("bad_registry_change", tables.REGISTRY_CHANGES_JSONL, problem)
    try:
        verify_certificate(cert, sha256(seal_bytes), registry_at(chain, seal.height, changes).validator_keys(),
                           chain.chain_id, seal.height)
    except CertificateError as e:
        return fail(f"certificate_{e.reason}", MANIFEST, str(e), "certificate")
    result = seal.result(period)
    if result is None:
        return fail("no_result", MANIFEST, f"the seal has no result for period {period}")
    report.version = result.version
    certified: dict[bytes, Certified] = {}
    for u in result.areas_used:
        if u.seal_hash == ABSENT:
            continue
        name = checkpoint_file(u.area)
        cp = verify_checkpoint(genesis, files.get(name, b""))
        if not isinstance(cp, Certified):
            fail(f"checkpoint_{cp.reason.label}", name, cp.message)
        elif cp.seal_hash != u.seal_hash:
            fail("checkpoint_mismatch", name, "is not the area seal the network result used")
        else:
            certified[cp.seal_hash] = cp
    if report.problems:
        return report
    broken = check_network_result(market_version(genesis, changes, period), result, certified)
    if broken is not None:
        return fail("cross_level", MANIFEST, broken.message)
    expected = network_export_files(genesis, seal_bytes, cert, period,
                                    {h: cp.data for h, cp in certified.items()}, changes)
    for name in sorted(set(expected) | set(files)):
        if files.get(name) != expected.get(name):
            fail("file_mismatch", name, "missing" if name not in files else
                 "not part of this export" if name not in expected else "differs from what the seal gives")
    report.files = len(files)
    return report
