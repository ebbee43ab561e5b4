"""Node homes: creating one (`stromledger init`, the devnet) and looking into one (`stromledger status`).

Creating a home checks everything it can before writing anything: the genesis is usable, the node's key is
registered in it for the node's role (a validator key among the validators, a meter-point node's key among
the meter operators, a balancing-group node's key as the operator of the groups it serves), the peers and
listen address are well formed. A refused init leaves the directory as it was, except for a key it
generated: that one is kept, so its public key can be sent to whoever maintains the genesis and the same
command run again once the genesis lists it.

Looking into a home reads only: config.toml, data/status.json (written by the running node) and the ledger
database. While a node runs it holds the database's process lock, so the ledger is then read through a
read-only SQLite connection (WAL readers never block the writer).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from stromledger.crypto import SigningKey
from stromledger.keys import KeyFileError, read_public_key, write_key_file
from stromledger.periods import Period
from stromledger.registry import GenesisError, Registry, load_genesis

from .health import genesis_countdown, health_problems
from .home import ROLES, NodeConfig, Peer, load_config

GENESIS_FILE = "genesis.toml"
KEY_FILE = "node.key"
FEEDS = ("simulated", "inbox")
SCHEDULES = ("none", "simulated")
DEFAULT_LISTEN = {
    # A validator must be reachable by the other validators on a fixed port; light and balancing-group
    # nodes only dial out, so any free local port does.
    "validator": "/ip4/0.0.0.0/tcp/7411",
    "balancing-group": "/ip4/127.0.0.1/tcp/0",
    "meter-point": "/ip4/127.0.0.1/tcp/0",
}
STALE_AFTER_S = 60  # a running node rewrites status.json far more often than this
_LISTEN = re.compile(r"/(ip4|ip6|dns|dns4|dns6)/[^/]+/tcp/(\d{1,5})")


class InitError(Exception):
    """`stromledger init` refuses: the message says what is wrong and what to do."""


@dataclass
class InitResult:
    config: NodeConfig
    public_key: bytes
    key_origin: str  # "generated", "copied", "given" or "existing"
    registry: Registry
    warnings: list[str] = field(default_factory=list)


# -- creating a home -----------------------------------------------------------------------------------------


def init_home(home: str | Path, role: str, genesis: str | Path, *, key: SigningKey | None = None,
              key_file: str | Path | None = None, name: str | None = None, listen: str | None = None,
              peers: list[Peer] | tuple[Peer, ...] = (), groups: list[str] | None = None, feed: str | None = None,
              seed: int | None = None, schedules: str | None = None, simulated: dict[str, str] | None = None,
              consensus: dict[str, int] | None = None) -> InitResult:
    """Create a node home (config.toml, node.key, genesis.toml + its meter-point file, data/).

    The key is `key` (written to node.key), or copied from `key_file` (kept mode 0600), or an existing
    <home>/node.key, or a new one (generated and kept even when the init is refused). Raises InitError."""
    home = Path(home)
    if role not in ROLES:
        raise InitError(f"--role must be one of {', '.join(ROLES)}, not {role!r}")
    if key is not None and key_file is not None:
        raise InitError("give a key or a key file, not both")
    if (home / "config.toml").exists():
        raise InitError(f"{home} is already a node home (config.toml exists); edit its config.toml, or choose "
                        "another --home")
    if home.exists() and not home.is_dir():
        raise InitError(f"{home} exists and is not a directory")
    registry = _load_registry(Path(genesis))
    warnings: list[str] = []
    listen = listen or DEFAULT_LISTEN[role]
    _check_listen(listen)
    if role != "validator" and listen != DEFAULT_LISTEN[role] and not listen.startswith("/ip4/127.0.0.1/"):
        warnings.append(f"a {role} node only dials out to validators; listening on {listen} is not needed")
    validators = set(registry.validator_keys())
    for p in peers:
        if p.key not in validators:
            raise InitError(f"peer {p.key.hex()} is not a validator in {genesis}: [[peers]] lists the validators "
                            "this node connects to (KEYHEX@MULTIADDR, the key as in the genesis)")
    if not peers:
        warnings.append("no --peer given: the node will not find any validator until you add [[peers]] "
                        "entries to config.toml")

    key_path = home / KEY_FILE
    existing = key_path.exists()
    if key_file is not None and existing and Path(key_file).resolve() != key_path.resolve():
        raise InitError(f"{key_path} exists already: remove it, or init with --key {key_path}")
    if key is not None and existing:
        raise InitError(f"{key_path} exists already: refusing to replace a node key")
    if key is not None:
        public, origin = key.public, "given"
    elif key_file is not None and not existing:
        public, origin = _public_key_of(Path(key_file)), "copied"
        loose = Path(key_file).stat().st_mode & 0o077
        if loose:
            warnings.append(f"--key {key_file} is readable by others (mode {Path(key_file).stat().st_mode & 0o777:o}): "
                            "the home's copy is 0600; chmod 600 or delete the original")
    elif existing:
        mode = key_path.stat().st_mode & 0o777
        if mode & 0o077:
            raise InitError(f"{key_path} has mode {mode:o}: a key file must be readable by its owner only "
                            f"(chmod 600 {key_path})")
        public, origin = _public_key_of(key_path), "existing"
    else:
        key = SigningKey.generate()
        public, origin = key.public, "generated"

    try:
        registered_name, groups = _check_registered(registry, role, public, groups)
    except InitError as refusal:
        if origin == "generated":  # keep the new key, so its public key can go into the genesis
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_key_file(key_path, key)
            raise InitError(f"{refusal}\nA new key was generated and kept in {key_path} (public key "
                            f"{public.hex()}). Have it added to the genesis, then run this init again with the "
                            "updated --genesis: it uses that key.") from None
        raise

    options: dict[str, Any] = {}
    if role == "validator" and seed is not None:
        raise InitError("--seed is a meter-point or balancing-group option")
    if role == "meter-point":
        feed = feed or "inbox"
        if feed not in FEEDS:
            raise InitError(f"--feed must be one of {', '.join(FEEDS)}, not {feed!r}")
        options["meter_point"] = {"feed": feed}
        if seed is not None:
            options["meter_point"]["seed"] = seed
        options["meter_point"].update(simulated or {})  # the simulated feed's start and energy cache
        if feed == "simulated":
            warnings.append("--feed simulated signs made-up readings with the devnet's label-derived meter keys: "
                            "for a devnet only")
    elif feed is not None:
        raise InitError("--feed is a meter-point option")
    if role == "balancing-group":
        schedules = schedules or "none"
        if schedules not in SCHEDULES:
            raise InitError(f"--schedules must be one of {', '.join(SCHEDULES)}, not {schedules!r}")
        options["balancing_group"] = {"groups": groups, "schedules": schedules}
        if seed is not None:
            options["balancing_group"]["seed"] = seed
        options["balancing_group"].update(simulated or {})
    elif schedules is not None:
        raise InitError("--schedules is a balancing-group option")
    if consensus:
        if role != "validator":
            raise InitError("consensus settings are for validators only")
        options["consensus"] = dict(consensus)

    _check_free(home, Path(genesis))
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "data").mkdir(exist_ok=True, mode=0o700)
    if origin in ("given", "generated"):
        write_key_file(key_path, key)
    elif origin == "copied":
        _copy_key_file(Path(key_file), key_path)
    copy_genesis(Path(genesis), home)
    config = NodeConfig(home=home, role=role, name=name or registered_name or home.name, genesis=GENESIS_FILE,
                        key_file=KEY_FILE, listen=listen, peers=list(peers), **options)
    config.save()
    _check_home(config, registry, public)
    return InitResult(config, public, origin, registry, warnings)


def registered_roles(registry: Registry, public: bytes) -> list[str]:
    """The roles a public key is registered for in the genesis (to tell an operator which --role fits)."""
    out = []
    if public in registry.validator_keys():
        out.append("validator")
    if any(g.operator_key == public for g in registry.balancing_groups.values()):
        out.append("balancing-group")
    if any(o.public_key == public for o in registry.meter_operators.values()):
        out.append("meter-point")
    return out


def _check_registered(registry: Registry, role: str, public: bytes,
                      groups: list[str] | None) -> tuple[str | None, list[str]]:
    """(the name the genesis gives the key, the balancing groups served) or InitError."""
    where = {"validator": "[[validators]] public_key", "meter-point": "[[meter_operators]] public_key",
             "balancing-group": "[[balancing_groups]] operator_key"}[role]
    others = [r for r in registered_roles(registry, public) if r != role]
    hint = f" It is registered as: {', '.join(others)} (use that --role)." if others else ""
    refused = InitError(f"the key {public.hex()} is not registered as a {role} in the genesis "
                        f"(chain {registry.chain_id}): it must appear as {where}.{hint}")
    if role == "validator":
        for v in registry.validators:
            if v.public_key == public:
                return v.name, []
        raise refused
    if role == "meter-point":
        for o in registry.meter_operators.values():
            if o.public_key == public:
                return o.name, []
        raise refused
    held = [g.eic for g in registry.balancing_groups.values() if g.operator_key == public]
    if not held:
        raise refused
    if not groups:
        groups = held
    for eic in groups:
        g = registry.balancing_groups.get(eic)
        if g is None:
            raise InitError(f"--groups: {eic} is not a balancing group in the genesis")
        if g.operator_key != public:
            raise InitError(f"--groups: {eic} ({g.name}) is operated by key {g.operator_key.hex()}, not by this "
                            f"node's key {public.hex()}; this key operates: {', '.join(held)}")
    names = [registry.balancing_groups[e].name for e in groups]
    return (names[0] if len(names) == 1 else None), list(groups)


def _load_registry(genesis: Path) -> Registry:
    try:
        return load_genesis(genesis)
    except GenesisError as e:
        errors = [str(d) for d in e.defects if d.severity == "error"]
        raise InitError(f"{genesis} is not a usable genesis ({len(errors)} error(s); `stromledger genesis check "
                        f"{genesis}` lists them):\n  " + "\n  ".join(errors[:10])) from None


def _check_listen(listen: str) -> None:
    m = _LISTEN.fullmatch(listen)
    if not m or int(m.group(2)) > 65535:
        raise InitError(f"--listen {listen!r} is not a TCP multiaddr like /ip4/0.0.0.0/tcp/7411")


def _public_key_of(path: Path) -> bytes:
    """The public key a key file declares, checked against its seed when the seed is not encrypted."""
    try:
        return read_public_key(path)
    except FileNotFoundError:
        raise InitError(f"--key {path}: no such file") from None
    except (OSError, KeyFileError) as e:
        raise InitError(f"--key {path} is not a stromledger key file ({e}); create one with "
                        "`stromledger keys gen --out FILE`") from None


def _copy_key_file(src: Path, dest: Path) -> None:
    data = src.read_bytes()
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 from the first byte
    with os.fdopen(fd, "wb") as f:
        f.write(data)


_HOME_FILES = (KEY_FILE, "config.toml", GENESIS_FILE, "data")


def _genesis_copy(genesis: Path) -> tuple[str, tuple[Path, Path] | None]:
    """The text of the home's genesis copy and (source, path in the home) of the meter-point file it pins. A
    meter-point file outside the genesis' directory tree goes next to it, the copy's path line rewritten."""
    text = genesis.read_text()
    spec = tomllib.loads(text).get("meter_point_file")
    if not (isinstance(spec, dict) and isinstance(spec.get("path"), str)):
        return text, None
    rel = Path(spec["path"])
    src = genesis.parent / rel
    if rel.is_absolute() or ".." in rel.parts:
        new = rel.name
        text, n = re.subn(r'(?m)^(path\s*=\s*)"[^"\n]*"', lambda m: m.group(1) + json.dumps(new), text, count=1)
        if n != 1:
            raise InitError(f"{genesis}: cannot rewrite the meter-point file path for the home's copy")
        rel = Path(new)
    return text, (src, rel)


def _check_free(home: Path, genesis: Path, *, replacing: bool = False) -> None:
    """The genesis' meter-point file may not take the name of a file the home needs (node.key, config.toml,
    ...), nor, unless `replacing` an old genesis copy (genesis adopt), that of any file already there."""
    meter_file = _genesis_copy(genesis)[1]
    if meter_file is None:
        return
    rel = meter_file[1]
    if rel.parts[0] in _HOME_FILES or (not replacing and (home / rel).exists()):
        raise InitError(f"the genesis' meter-point file {rel} would overwrite {home / rel} in the home: rename "
                        "the meter-point file (and its path in the genesis)")


def copy_genesis(genesis: Path, home: Path, *, replacing: bool = False) -> Path:
    """Copy the genesis to <home>/genesis.toml with the meter-point file it pins beside it (see
    _genesis_copy). An existing file is never replaced (FileExistsError), except by `replacing` (genesis
    adopt, which has archived the old copy)."""
    text, meter_file = _genesis_copy(genesis)
    mode = "w" if replacing else "x"
    if meter_file is not None:
        src, rel = meter_file
        if rel.parts[0] in _HOME_FILES:
            raise InitError(f"the genesis' meter-point file may not be named {rel}")
        dest = home / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with src.open("rb") as f, dest.open(mode + "b") as out:
            shutil.copyfileobj(f, out)
    path = home / GENESIS_FILE
    with path.open(mode) as out:
        out.write(text)
    return path


def adopt_genesis(home: str | Path, genesis: str | Path, stamp: str) -> Path:
    """Start a stopped node home on another genesis: check the new genesis and that the home's key is
    registered in it for the home's role, move data/ (ledger, exports, inbox) and the old genesis copy to
    data.<stamp>/ (kept, never deleted), copy the new genesis in and create an empty data/. Returns the
    archive directory. InitError says why not (the node runs, the key is not in the new genesis, ...)."""
    from stromledger.store import DB_FILE, Store, StoreLocked

    config = load_config(home)
    registry = _load_registry(Path(genesis))
    _check_registered(registry, config.role, _public_key_of(config.key_path), config.balancing_group.get("groups"))
    _check_free(config.home, Path(genesis), replacing=True)
    db = config.home / DB_FILE
    if db.exists():
        try:
            Store(db).close()
        except StoreLocked as e:
            raise InitError(f"{e} Stop the node before changing its genesis.") from None
    archive = config.home / f"data.{stamp}"
    if archive.exists():
        raise InitError(f"{archive} exists already")
    archive.mkdir()
    if config.data_dir.exists():
        os.replace(config.data_dir, archive / "data")
    if config.genesis_path.exists():
        shutil.copyfile(config.genesis_path, archive / config.genesis_path.name)
    copy_genesis(Path(genesis), config.home, replacing=True)
    if config.genesis != GENESIS_FILE:
        config.genesis = GENESIS_FILE
        config.save()
    config.data_dir.mkdir()
    return archive


def _check_home(config: NodeConfig, registry: Registry, public: bytes) -> None:
    """The written home reads back as written: the config round-trips, the genesis copy is the same chain,
    the key file holds the checked key."""
    back = load_config(config.home)
    if back.to_toml() != config.to_toml():
        raise InitError(f"{config.home}/config.toml does not read back as written")
    copy = _load_registry(config.genesis_path)
    if copy.hash != registry.hash:
        raise InitError(f"{config.genesis_path} is not the same genesis as the one given")
    if _public_key_of(config.key_path) != public:
        raise InitError(f"{config.key_path} does not hold the key that was checked")


# -- reading a home ------------------------------------------------------------------------------------------


def home_status(home: str | Path, now: int) -> dict[str, Any]:
    """Everything `stromledger status` shows, as plain JSON-ready data. Raises ConfigError when `home` is not
    a node home. `now` is the current unix time (how fresh the node's status file is)."""
    config = load_config(home)
    out: dict[str, Any] = {"home": str(config.home), "role": config.role, "name": config.name,
                           "listen_configured": config.listen}
    try:
        registry: Registry | None = load_genesis(config.genesis_path)
        out["chain_id"] = registry.chain_id
    except GenesisError as e:
        registry = None
        out["genesis_error"] = str(e)
    try:
        out["public_key"] = json.loads(config.key_path.read_text())["public_key"]
    except (OSError, ValueError, KeyError):
        out["public_key"] = None
    status = _read_json(config.status_path)
    out["node"] = node_liveness(status, now)
    out["status"] = status
    out["ledger"] = ledger_summary(config.home, registry)
    keys = (status or {}).get("peer_keys")
    if registry is not None and isinstance(keys, list) and out["node"]["running"]:  # a stopped node has no peers
        names = party_names(registry)
        out["peer_names"] = [names.get(k, f"{k[:16]} (unknown)") for k in keys]
    out["problems"] = health_problems(config.role, out["node"], status, registry, now)
    out["genesis_countdown"] = genesis_countdown(registry, now)
    return out


def party_names(registry: Registry) -> dict[str, str]:
    """Public key (hex) -> who holds it, for showing peers."""
    names: dict[str, str] = {}
    for g in registry.balancing_groups.values():
        names.setdefault(g.operator_key.hex(), f"operator of {g.eic}")
    for o in registry.meter_operators.values():
        names[o.public_key.hex()] = f"meter operator {o.name}"
    for v in registry.validators:
        names[v.public_key.hex()] = v.name
    return names


def node_liveness(status: dict | None, now: int) -> dict[str, Any]:
    """Is the node running (its pid alive), and how old is what it last wrote?"""
    if status is None:
        return {"state": "never started", "running": False}
    pid = status.get("pid")
    updated = status.get("updated_at")
    age = now - updated if isinstance(updated, int) else None
    alive = isinstance(pid, int) and pid_alive(pid)
    if not alive:
        state = "stopped"
    elif age is not None and age > STALE_AFTER_S:
        state = "stale"  # the process exists but has not written status for a while: stuck, or a reused pid
    else:
        state = "running"
    return {"state": state, "running": state == "running", "pid": pid, "age_s": age, "updated_at": updated}


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"unreadable": f"{path}: {e}"}
    return doc if isinstance(doc, dict) else {"unreadable": f"{path}: not a JSON object"}


def ledger_summary(home: str | Path, registry: Registry | None) -> dict[str, Any] | None:
    """The store's latest commit (decoded, its certificate checked), evidence and table statistics; None
    when the home has no database yet."""
    with open_ledger(home) as ledger:
        if ledger is None:
            return None
        out: dict[str, Any] = {"access": ledger.access, "stats": ledger.stats()}
        commit = ledger.latest_commit()
        out["latest_commit"] = None if commit is None else commit_summary(commit, registry)
        out["evidence"] = [{"hash": bytes(e.hash).hex(), "kind": e.kind, "height": e.height,
                            "first_seen": e.first_seen, "included_height": e.included_height}
                           for e in ledger.list_evidence(20)]
        return out


def commit_summary(commit, registry: Registry | None, history: tuple = ()) -> dict[str, Any]:
    """A stored commit (height, round, value = seal bytes, certificate bytes, ...) made readable. `history`:
    the chain's committed registry changes (its committee changes give the committee of the height)."""
    from stromledger.codec import CodecError
    from stromledger.consensus.certificate import CertificateError, verify_certificate
    from stromledger.consensus.messages import CommitCertificate

    out: dict[str, Any] = {"height": commit.height, "round": commit.round, "seal_hash": bytes(commit.value_hash).hex(),
                           "committed_at": commit.committed_at}
    from stromledger.chains import NetworkSeal, decode_seal
    from stromledger.registry import NETWORK, registry_at, view

    try:
        seal = decode_seal(commit.value)  # a validator process's home store holds the network chain
    except (CodecError, ValueError) as e:
        out["error"] = f"the stored seal does not decode: {e}"
        return out
    out.update(seal_summary(seal, registry))
    network = isinstance(seal, NetworkSeal)
    chain = view(registry, NETWORK) if network and registry is not None and not registry.scope else registry
    try:
        cert = CommitCertificate.decode(bytes(commit.certificate))
        out["signatures"] = len(cert.signatures)
        if registry is not None:
            committee = registry_at(chain, seal.height, history) if history else chain
            verify_certificate(cert, seal.hash(), committee.validator_keys(), chain.chain_id, seal.height)
            out["certificate"] = "valid"
    except (CodecError, ValueError) as e:  # CertificateError is a ValueError
        out["certificate"] = f"INVALID: {e}" if isinstance(e, CertificateError) else f"does not decode: {e}"
    return out


def seal_summary(seal, registry: Registry | None) -> dict[str, Any]:
    """A PeriodSeal's content as JSON-ready data: per period result the totals per balancing group and grid
    area, the generation mix, meter-point quality counts; evidence and refused items."""
    from stromledger.cascade.rejections import Reason

    length = registry.period_seconds if registry is not None else None
    groups = registry.balancing_groups if registry is not None else {}
    areas = registry.grid_areas if registry is not None else {}
    results = []
    for r in seal.results:
        mix: dict[str, int] = {}
        for gm in getattr(r, "mix", ()):  # a network result has no mix (it is in the area seals)
            for s in gm.sources:
                mix[s.source] = mix.get(s.source, 0) + s.wh
        if hasattr(r, "absent"):  # a NetworkResult
            own = {"areas_in": len(r.areas_used) - len(r.absent), "absent": list(r.absent), "cells": len(r.cells),
                   "disputed_ties": sum(t.disputed for t in r.ties)}
        else:
            own = {"meter_points": r.meter_points, "measured": r.measured, "substituted": r.substituted,
                   "corrected": r.corrected, "missing": r.missing, "merkle_root": r.merkle_root.hex()}
        results.append({
            "period": r.period,
            "period_iso": Period(r.period, length).iso() if length else None,
            "version": r.version,
            **own,
            "groups": [{"group": g.group, "name": groups[g.group].name if g.group in groups else "",
                        "inj": g.inj, "wd": g.wd, "loss": g.loss, "fpi": g.fpi, "fpe": g.fpe, "imb": g.imb}
                       for g in r.groups],
            "areas": [{"area": a.area, "name": areas[a.area].name if a.area in areas else "", "inj": a.inj,
                       "wd": a.wd, "exin": a.exin, "exout": a.exout, "loss": a.loss} for a in r.areas],
            "mix": dict(sorted(mix.items())),
            "schedules": len(r.schedules),
            "schedule_issues": len(r.schedule_issues),
            "net_export": r.net_export,
            "external_net": r.checks.external_net,
            "implausible_loss": list(getattr(r, "implausible_loss", ())),  # a network result: in the area seals
        })
    rejected = {}
    for rc in getattr(seal, "base", seal).rejected:
        try:
            label = Reason(rc.reason).label
        except ValueError:
            label = f"reason_{rc.reason}"
        rejected[label] = rc.count
    return {"height": seal.height, "period_iso": Period(seal.height, length).iso() if length else None,
            "seal_hash": seal.hash().hex(), "batches": len(seal.batches), "results": results,
            "reading_conflicts": len(getattr(seal, "evidence", ())), "vote_evidence": len(seal.vote_evidence),
            "rejected": rejected, "checkpoints": len(getattr(seal, "checkpoints", ()))}


# -- the ledger database, read-only ----------------------------------------------------------------------------


class _StoreLedger:
    """The node's Store, when no node holds it."""

    access = "store"

    def __init__(self, store):
        self.store = store

    def latest_commit(self):
        return self.store.latest_commit()

    def get_commit(self, height: int):
        return self.store.get_commit(height)

    def list_evidence(self, limit: int):
        return self.store.list_evidence(limit)

    def stats(self) -> dict:
        s = self.store.stats()
        return {"path": s["path"], "db_bytes": s["db_bytes"], "wal_bytes": s["wal_bytes"],
                "last_height": s["last_height"], "commits": s["rows"]["commits"], "batches": s["rows"]["batches"],
                "evidence": s["rows"]["evidence"], "pending_evidence": s["pending_evidence"],
                "receipts": s["rows"]["receipts"], "outbox": s["rows"]["outbox"]}


class _ReadOnlyLedger:
    """The same queries through a read-only SQLite connection, while a running node holds the Store's lock.
    (Only SELECTs on the tables docs/storage.md documents; nothing here writes.)"""

    access = "read-only (the node is running)"

    def __init__(self, path: Path):
        self.path = path
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)

    def close(self) -> None:
        self.conn.close()

    def latest_commit(self):
        return self._commit("ORDER BY height DESC LIMIT 1", ())

    def get_commit(self, height: int):
        return self._commit("WHERE height = ?", (height,))

    def _commit(self, clause: str, params: tuple):
        from stromledger.store import Commit

        row = self.conn.execute("SELECT height, round, value, value_hash, certificate, committed_at FROM commits "
                                + clause, params).fetchone()
        return Commit(*row) if row else None

    def list_evidence(self, limit: int):
        from stromledger.store import Evidence

        rows = self.conn.execute("SELECT hash, kind, height, data, first_seen, included_height FROM evidence "
                                 "ORDER BY first_seen DESC, hash LIMIT ?", (limit,)).fetchall()
        return [Evidence(*r) for r in rows]

    def stats(self) -> dict:
        one = lambda sql: self.conn.execute(sql).fetchone()[0]  # noqa: E731
        wal = Path(f"{self.path}-wal")
        return {"path": str(self.path), "db_bytes": self.path.stat().st_size,
                "wal_bytes": wal.stat().st_size if wal.exists() else 0,
                "last_height": one("SELECT max(height) FROM commits"), "commits": one("SELECT count(*) FROM commits"),
                "batches": one("SELECT count(*) FROM batches"), "evidence": one("SELECT count(*) FROM evidence"),
                "pending_evidence": one("SELECT count(*) FROM evidence WHERE included_height IS NULL"),
                "receipts": one("SELECT count(*) FROM receipts"), "outbox": one("SELECT count(*) FROM outbox")}


@contextlib.contextmanager
def open_ledger(home: str | Path) -> Iterator[_StoreLedger | _ReadOnlyLedger | None]:
    """The home's ledger for reading: the Store when the node is stopped, a read-only connection while it
    runs, None when there is no database yet (nothing is created)."""
    from stromledger.store import DB_FILE, Store, StoreLocked

    path = Path(home) / DB_FILE
    if not path.exists():
        yield None
        return
    try:
        store = Store(path)
    except StoreLocked:
        ro = _ReadOnlyLedger(path)
        try:
            yield ro
        finally:
            ro.close()
        return
    try:
        yield _StoreLedger(store)
    finally:
        store.close()


def describe_age(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


# -- tables an operator reads (rich) -----------------------------------------------------------------------------


def wh(value: int) -> str:
    """Watt-hours with thousands separators, exact (no rounding to kWh)."""
    return f"{value:,}"


def result_lines(result: dict[str, Any]) -> list[str]:
    """One period result from `seal_summary` in a few lines: meter-point quality, net export, schedules,
    the generation mix."""
    if "absent" in result:  # the network chain's result
        return [f"areas {result['areas_in']} in, absent: {', '.join(result['absent']) or 'none'}; "
                f"{result['cells']} cells from certified area seals; net export {wh(result['net_export'])} Wh; "
                f"schedules {result['schedules']} matched, {result['schedule_issues']} not matched"]
    total = sum(result["mix"].values())
    mix = ", ".join(f"{source} {wh(v)} Wh ({100 * v / total:.1f} %)"
                    for source, v in sorted(result["mix"].items(), key=lambda kv: -kv[1])) if total else "none"
    return [f"meter points {result['meter_points']}: {result['measured']} measured, {result['substituted']} "
            f"substituted, {result['corrected']} corrected, {result['missing']} missing; net export "
            f"{wh(result['net_export'])} Wh; schedules {result['schedules']} matched, {result['schedule_issues']} "
            "not matched",
            f"generation mix: {mix}"] + (
        [f"implausible grid loss (over the genesis' loss_plausibility_percent of throughput) in "
         f"{', '.join(result['implausible_loss'])}"] if result.get("implausible_loss") else [])


def imbalance_share(group: dict[str, Any]) -> str:
    """|IMB| as a share of the group's throughput (the larger of what came in, INJ + FPI, and what went out,
    WD + FPE)."""
    throughput = max(group["inj"] + group["fpi"], group["wd"] + group["fpe"])
    return f"{100 * abs(group['imb']) / throughput:.1f}" if throughput else "-"


def result_tables(result: dict[str, Any]) -> list:
    """Tables of one period result from `seal_summary`: per balancing group and per grid area."""
    from rich.table import Table

    title = f"{result['period_iso'] or result['period']} version {result['version']}"
    groups = Table(title=f"balancing groups, {title} (Wh; IMB = INJ + FPI - WD - FPE, > 0 = long; IMB % of the "
                         "group's throughput)", title_justify="left")
    for col in ("group", "name", "INJ", "WD", "FPI", "FPE", "IMB", "IMB %"):
        groups.add_column(col, justify="left" if col in ("group", "name") else "right", no_wrap=col == "group")
    for g in result["groups"]:
        groups.add_row(g["group"], g["name"], wh(g["inj"]), wh(g["wd"]), wh(g["fpi"]), wh(g["fpe"]), wh(g["imb"]),
                       imbalance_share(g))
    areas = Table(title=f"grid areas, {title} (Wh; the loss is booked to the area's loss group)",
                  title_justify="left")
    for col in ("area", "name", "INJ", "WD", "exchange in", "exchange out", "loss"):
        areas.add_column(col, justify="left" if col in ("area", "name") else "right", no_wrap=col == "area")
    for a in result["areas"]:
        areas.add_row(a["area"], a["name"], wh(a["inj"]), wh(a["wd"]), wh(a["exin"]), wh(a["exout"]), wh(a["loss"]))
    return [groups, areas]
