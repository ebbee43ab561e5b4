"""Fault injection against real node processes: `stromledger chaos --scenario S --periods N --seed X`.

Each scenario writes a fresh devnet (nodes/devnet.py: 4 validators, 2 grid areas, meter-point light nodes and
balancing-group nodes, every one its own OS process on 127.0.0.1), injects its faults into the validators at
random and targeted moments while the periods settle, stops every node and then checks what the stores,
the exports and the light nodes say:

    kill9     kill -9 a validator at a random moment, or right after its commit log line (the export of the
              height before runs then); restart it a moment later. One down at a time.
    pause     SIGSTOP a validator for one to two and a half periods, then SIGCONT.
    beyond-f  kill -9 two validators at once (more than f of the network committee: the chains halt), bring
              them back two to three periods later.
    disk      restart a validator on a read-only store, later one on a full store (STROMLEDGER_CHAOS_DISK):
              it must stop with one line naming the path, exit status 1, no traceback; the others go on;
              it is then restarted on a good disk and must catch up.
    wal       kill -9 a validator, corrupt its consensus write-ahead log (a torn or garbage record), restart.
    skew      run one validator with its clock 3 s ahead and one 3 s behind (STROMLEDGER_CHAOS_CLOCK_OFFSET_MS).

Checks (every scenario): no node died unexpectedly; agreement (every validator has the same seal per height
per chain); no gaps (every chain of every validator committed every height from genesis through the last
requested one); valid certificates; no double-sign (no evidence in any store); every reading a light node
holds a receipt for settled as sent (its value in the latest export of its period); exports complete (every
final height of every chain), byte-identical across validators and verifying with the genesis alone (what
`stromledger export verify` runs); no light-node verification failures; version 1 complete (no period's
version 1 is all substitutes while a later version has its readings); clean disk stops (disk scenario).

The fault schedule is drawn from --seed; timing on a loaded machine still varies between runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from stromledger.registry import NETWORK, scopes_of, view

from .devnet import Devnet, DevnetOptions, NodeProcess, NodeSpec, create_devnet, read_status, stop_nodes
from .runtime import CHAOS_CLOCK_OFFSET_ENV, CHAOS_DISK_ENV

SCENARIOS = ("kill9", "pause", "beyond-f", "disk", "wal", "skew")
POLL_S = 0.05
SKEW_MS = 3000


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class ScenarioResult:
    scenario: str
    directory: Path
    faults: list[str]
    checks: list[Check]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- the cluster: the devnet's processes under fault injection -------------------------------------------------


class Cluster:
    def __init__(self, devnet: Devnet, say: Callable[[str], None]):
        self.devnet = devnet
        self.reg = devnet.registry
        self.say = say
        self.procs: dict[str, NodeProcess] = {}
        self.retired: list[NodeProcess] = []  # processes that ended by a fault (or were replaced)
        self.expected_exits: dict[int, str] = {}  # pid -> why its end is expected
        self.faults: list[str] = []
        self.disk_stops: list[tuple[str, Optional[int], str]] = []  # (validator, exit code, that run's log)
        self.began = time.time()

    @property
    def validators(self) -> list[NodeSpec]:
        return self.devnet.validators

    def start_all(self) -> None:
        for spec in self.devnet.nodes:
            self.procs[spec.name] = NodeProcess(spec)

    def note(self, text: str) -> None:
        line = f"{self._now()} {text}"
        self.faults.append(line)
        self.say(f"  fault: {line}")

    def _now(self) -> str:
        h = self.height_now()
        return f"t+{time.time() - self.began:5.1f}s (period {h - self.reg.genesis_period:+d})"

    def height_now(self) -> int:
        return int(time.time()) // self.reg.period_seconds

    def gate(self, height: int) -> float:
        return self.reg.period(height).gate_closure(self.reg.params.grace_seconds)

    def sleep_until(self, t: float) -> None:
        while time.time() < t:
            time.sleep(min(POLL_S * 4, max(0.0, t - time.time())))

    # -- faults -------------------------------------------------------------------------------------------

    def kill9(self, name: str, why: str) -> None:
        p = self.procs[name]
        self.expected_exits[p.pid] = why
        if p.exit_code() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.popen.wait()
        self.retired.append(p)
        self.note(f"kill -9 {name} ({why})")

    def restart(self, name: str, env: Optional[dict[str, str]] = None, why: str = "") -> NodeProcess:
        spec = next(s for s in self.devnet.nodes if s.name == name)
        old = self.procs[name]
        if old.exit_code() is None:
            raise RuntimeError(f"{name} is still running")
        self.procs[name] = NodeProcess(spec, env)
        self.note(f"restart {name}" + (f" ({why})" if why else ""))
        return self.procs[name]

    def pause(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGSTOP)
        self.note(f"SIGSTOP {name}")

    def resume(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGCONT)
        self.note(f"SIGCONT {name}")

    def wait_for_log(self, name: str, text: str, timeout: float) -> bool:
        """Wait until `name`'s node.log gets a new line containing `text` (from now on)."""
        path = self.procs[name].log_path
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            end = time.time() + timeout
            buffered = b""
            while time.time() < end:
                chunk = f.read()
                if chunk:
                    buffered = (buffered + chunk)[-65536:]
                    if text.encode() in buffered:
                        return True
                else:
                    time.sleep(POLL_S / 5)
        return False

    def wait_exit(self, name: str, timeout: float) -> Optional[int]:
        p = self.procs[name]
        end = time.time() + timeout
        while p.exit_code() is None and time.time() < end:
            time.sleep(POLL_S)
        return p.exit_code()

    # -- progress -------------------------------------------------------------------------------------------

    def chain_heights(self, spec: NodeSpec) -> dict[str, Optional[int]]:
        status = read_status(spec)
        chains = status.get("chains") if isinstance(status.get("chains"), dict) else {}
        return {scope: (c.get("last_height") if isinstance(c, dict) else None) for scope, c in chains.items()}

    def settled_through(self, height: int) -> bool:
        for spec in self.validators:
            heights = self.chain_heights(spec)
            expected = scopes_of(self.reg, spec.name)
            if set(heights) != set(expected) or any(h is None or h < height for h in heights.values()):
                return False
        return True

    def unexpected_deaths(self) -> list[str]:
        out = []
        for p in [*self.procs.values(), *self.retired]:
            code = p.exit_code()
            if code is not None and p.pid not in self.expected_exits:
                out.append(f"{p.spec.name} (pid {p.pid}) exited with {code}: {_last_line(p.log_path)}")
        return out

    def stop_all(self) -> list[str]:
        for p in self.procs.values():  # a paused node must hear SIGTERM
            if p.exit_code() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        running = [p for p in self.procs.values() if p.exit_code() is None]
        for p in running:
            self.expected_exits[p.pid] = "stopped at the end"
        killed = stop_nodes(running)
        return killed


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return lines[-1] if lines else "(empty log)"


# -- the scenarios' fault schedules --------------------------------------------------------------------------


def fault_heights(cluster: Cluster, periods: int) -> range:
    """The periods faults fall in: from the second to the third-last (the last ones show the recovery)."""
    g = cluster.reg.genesis_period
    return range(g + 1, g + max(2, periods - 2))


def _one_down_at_a_time(cluster: Cluster, rng: random.Random, periods: int, fault: Callable[[str, int], None]) -> None:
    """Run `fault(victim, i)` for the i-th fault, each in a later period than the previous one's end."""
    L = cluster.reg.period_seconds
    window = fault_heights(cluster, periods)
    i = 0
    while True:
        h = max(cluster.height_now() + 1, window.start) if i else window.start
        if h >= window.stop:
            return
        cluster.sleep_until(h * L + rng.uniform(0, L))
        fault(rng.choice([v.name for v in cluster.validators]), i)
        i += 1


def scenario_kill9(cluster: Cluster, rng: random.Random, periods: int) -> None:
    L = cluster.reg.period_seconds

    def fault(victim: str, i: int) -> None:
        if i % 2:
            seen = cluster.wait_for_log(victim, "committed period", 3 * L)
            cluster.kill9(victim, "right after its commit, during the export" if seen else "no commit seen: random")
        else:
            cluster.kill9(victim, "random moment")
        time.sleep(rng.uniform(0.3, 1.5) * L)
        cluster.restart(victim)

    _one_down_at_a_time(cluster, rng, periods, fault)


def scenario_pause(cluster: Cluster, rng: random.Random, periods: int) -> None:
    L = cluster.reg.period_seconds

    def fault(victim: str, i: int) -> None:
        cluster.pause(victim)
        time.sleep(rng.uniform(1.0, 2.5) * L)
        cluster.resume(victim)

    _one_down_at_a_time(cluster, rng, periods, fault)


def scenario_beyond_f(cluster: Cluster, rng: random.Random, periods: int) -> None:
    L = cluster.reg.period_seconds
    window = fault_heights(cluster, periods)
    h = window.start
    while h < window.stop:
        cluster.sleep_until(h * L + rng.uniform(0, L))
        pair = rng.sample([v.name for v in cluster.validators], 2)
        for name in pair:
            cluster.kill9(name, "two down: beyond f")
        time.sleep(rng.uniform(2.0, 3.0) * L)
        for name in pair:
            cluster.restart(name)
        h = cluster.height_now() + 4


def scenario_disk(cluster: Cluster, rng: random.Random, periods: int) -> None:
    L = cluster.reg.period_seconds

    def fault(victim: str, i: int) -> None:
        kind = ("read-only", "full")[i % 2]
        cluster.kill9(victim, f"to restart it on a {kind} disk")
        log = cluster.procs[victim].log_path
        offset = log.stat().st_size if log.exists() else 0
        p = cluster.restart(victim, {CHAOS_DISK_ENV: kind}, f"its stores on a {kind} disk")
        cluster.expected_exits[p.pid] = f"{kind} disk"
        code = cluster.wait_exit(victim, 6 * L + 10)
        if code is None:
            cluster.kill9(victim, f"did not stop on the {kind} disk")
        with open(log, "rb") as f:
            f.seek(offset)
            cluster.disk_stops.append((victim, code, f.read().decode(errors="replace")))
        cluster.retired.append(p)
        cluster.note(f"{victim} on the {kind} disk ended with status {code}")
        time.sleep(rng.uniform(0.5, 1.0) * L)
        cluster.restart(victim, why="on a good disk again")

    _one_down_at_a_time(cluster, rng, periods, fault)


def corrupt_wal(home: Path, reg, rng: random.Random) -> list[str]:
    """Corrupt the newest consensus WAL record of each of the validator's stores (torn: its second half
    replaced by garbage); a store with an empty WAL gets a garbage record at its next height."""
    done = []
    for path in sorted([home / "data" / "ledger.sqlite3", *(home / "data" / "chains").glob("*.sqlite3")]):
        conn = sqlite3.connect(path)
        try:
            row = conn.execute("SELECT seq, height, data FROM consensus_wal ORDER BY seq DESC LIMIT 1").fetchone()
            if row is not None:
                seq, height, data = row
                torn = bytes(data[: len(data) // 2]) + rng.randbytes(max(1, len(data) - len(data) // 2))
                conn.execute("UPDATE consensus_wal SET data = ? WHERE seq = ?", (torn, seq))
                done.append(f"{path.name}: tore record {seq} (height {height})")
            else:
                last = conn.execute("SELECT max(height) FROM commits").fetchone()[0]
                height = (last if last is not None else reg.genesis_period - 1) + 1
                conn.execute("INSERT INTO consensus_wal (height, kind, data) VALUES (?, 'msg', ?)",
                             (height, rng.randbytes(97)))
                done.append(f"{path.name}: garbage record at height {height}")
            conn.commit()
        finally:
            conn.close()
    return done


def scenario_wal(cluster: Cluster, rng: random.Random, periods: int) -> None:
    L = cluster.reg.period_seconds

    def fault(victim: str, i: int) -> None:
        cluster.kill9(victim, "to corrupt its WAL")
        spec = next(v for v in cluster.validators if v.name == victim)
        for line in corrupt_wal(spec.home, cluster.reg, rng):
            cluster.note(f"{victim} {line}")
        time.sleep(rng.uniform(0.2, 1.0) * L)
        cluster.restart(victim)

    _one_down_at_a_time(cluster, rng, periods, fault)


def scenario_skew(cluster: Cluster, rng: random.Random, periods: int) -> None:
    names = rng.sample([v.name for v in cluster.validators], 2)
    for name, offset in zip(names, (SKEW_MS, -SKEW_MS)):
        cluster.kill9(name, "to restart it with a skewed clock")
        cluster.restart(name, {CHAOS_CLOCK_OFFSET_ENV: str(offset)}, f"clock {offset:+d} ms")


FAULTS = {"kill9": scenario_kill9, "pause": scenario_pause, "beyond-f": scenario_beyond_f, "disk": scenario_disk,
          "wal": scenario_wal, "skew": scenario_skew}


# -- running one scenario ---------------------------------------------------------------------------------------


def run_scenario(scenario: str, directory: Path, options: DevnetOptions, say: Callable[[str], None]) -> ScenarioResult:
    """One scenario on a fresh devnet of `options` in `directory`."""
    began = time.time()
    rng = random.Random(f"{options.seed}/{scenario}")
    devnet = create_devnet(directory, options, now=int(time.time()))
    reg = devnet.registry
    last = devnet.heights[-1]
    say(f"scenario {scenario}: devnet {reg.chain_id} in {directory}, heights {devnet.heights[0]}..{last}")
    cluster = Cluster(devnet, say)
    cluster.start_all()
    stragglers: list[str] = []
    try:
        cluster.sleep_until(reg.genesis_period * reg.period_seconds)
        FAULTS[scenario](cluster, rng, options.periods)
        # Settled through last + 1: the seal of last + 1 carries the certificate that makes `last` final.
        deadline = cluster.gate(last + 1) + max(60, 10 * reg.period_seconds)
        while not cluster.settled_through(last + 1) and time.time() < deadline:
            time.sleep(POLL_S * 10)
        if not cluster.settled_through(last + 1):
            stragglers.append(f"not every chain of every validator reached height {last + 1} by the deadline")
        time.sleep(2 * reg.params.grace_seconds)  # the last exports and light verifications
    finally:
        stragglers += cluster.stop_all()
    checks = check_run(cluster, last, stragglers)
    return ScenarioResult(scenario, directory, cluster.faults, checks, time.time() - began)


# -- the checks ----------------------------------------------------------------------------------------------------


@dataclass
class ChainData:
    scope: str
    commits: dict[str, dict[int, tuple[bytes, bytes, bytes]]] = field(default_factory=dict)  # name -> h -> (value, hash, cert)
    evidence: dict[str, int] = field(default_factory=dict)


def _chain_store(home: Path, scope: str) -> Path:
    return home / "data" / ("ledger.sqlite3" if scope == NETWORK else f"chains/{scope}.sqlite3")


def _export_root(home: Path, scope: str) -> Path:
    return home / "data" if scope == NETWORK else home / "data" / "chains" / scope


def read_chains(devnet: Devnet) -> dict[str, ChainData]:
    from stromledger.store import Store

    chains: dict[str, ChainData] = {}
    for v in devnet.validators:
        for scope in scopes_of(devnet.registry, v.name):
            data = chains.setdefault(scope, ChainData(scope))
            with Store(_chain_store(v.home, scope)) as store:
                last = store.last_height()
                rows = store.commits_from(devnet.registry.genesis_period, 1_000_000) if last is not None else []
                data.commits[v.name] = {c.height: (bytes(c.value), bytes(c.value_hash), bytes(c.certificate))
                                        for c in rows}
                data.evidence[v.name] = len(store.list_evidence(1000))
    return chains


def check_run(cluster: Cluster, last: int, stragglers: list[str]) -> list[Check]:
    devnet = cluster.devnet
    checks = [Check("no unexpected exit", not cluster.unexpected_deaths() and not stragglers,
                    "; ".join(cluster.unexpected_deaths() + stragglers) or "every node ran until stopped")]
    chains = read_chains(devnet)
    checks += check_chains(devnet, chains, last)
    checks += check_exports(devnet, chains, last)
    checks.append(check_readings(devnet, last))
    checks.append(check_light_nodes(devnet))
    checks.append(check_version_one(devnet, chains, last))
    if cluster.disk_stops:
        checks.append(check_disk_stops(cluster.disk_stops))
    return checks


def check_disk_stops(stops: list[tuple[str, Optional[int], str]]) -> Check:
    """Each validator run on a bad disk ended with status 1 and the one-line message, no traceback of its end
    (a handler's logged error earlier in the run is not its end)."""
    bad, lines = [], []
    for name, code, log in stops:
        last = log.strip().splitlines()[-1] if log.strip() else "(empty log)"
        if code != 1 or not last.startswith("cannot run the node") or "cannot write" not in last:
            bad.append(f"{name}: status {code}: {last[:200]}")
        elif "ExceptionGroup" in log or "Traceback" in "\n".join(log.strip().splitlines()[-12:]):
            bad.append(f"{name}: a traceback before its last line")
        else:
            lines.append(last)
    return Check("clean disk stops", not bad, "; ".join(bad) or
                 f"{len(lines)} stop(s), exit status 1, one line each, e.g. " + lines[0][:220])


def check_chains(devnet: Devnet, chains: dict[str, ChainData], last: int) -> list[Check]:
    from stromledger.consensus.certificate import certificate_holds
    from stromledger.crypto import sha256

    reg = devnet.registry
    g = reg.genesis_period
    disagree, gaps, bad_certs, evidence, heights = [], [], [], [], 0
    for scope, data in sorted(chains.items()):
        chain = view(reg, scope)
        keys = list(chain.validator_keys())
        for name, commits in data.commits.items():
            top = max(commits, default=g - 1)
            missing = [h for h in range(g, max(top, last) + 1) if h not in commits]
            if missing:
                gaps.append(f"{scope}/{name}: {len(missing)} missing from {missing[0]}")
            for h, (value, value_hash, cert) in commits.items():
                if sha256(value) != value_hash or not certificate_holds(cert, value_hash, keys, chain.chain_id, h):
                    bad_certs.append(f"{scope}/{name}@{h}")
            if data.evidence[name]:
                evidence.append(f"{scope}/{name}: {data.evidence[name]}")
        for h in sorted({h for c in data.commits.values() for h in c}):
            seen = {c[h][1] for c in data.commits.values() if h in c}
            heights += 1
            if len(seen) > 1:
                disagree.append(f"{scope}@{h}")
    return [
        Check("agreement", not disagree, ", ".join(disagree[:5]) or f"{heights} (chain, height) pairs, one seal each"),
        Check("no gaps", not gaps, "; ".join(gaps[:5]) or f"every chain of every validator from genesis to {last}+"),
        Check("valid certificates", not bad_certs, ", ".join(bad_certs[:5]) or "every stored certificate verifies"),
        Check("no double-sign", not evidence, "; ".join(evidence) or "no evidence in any store"),
    ]


def _seal_results(scope: str, value: bytes):
    from stromledger.cascade import PeriodSeal
    from stromledger.chains import NetworkSeal

    return (NetworkSeal if scope == NETWORK else PeriodSeal).decode(value).results


def check_exports(devnet: Devnet, chains: dict[str, ChainData], last: int) -> list[Check]:
    """Every height up to `last` - 1 whose next height every validator committed: its exports on every
    validator of the chain, the same bytes everywhere, verifying with the genesis alone."""
    from stromledger.export import export_dir, exported, read_export, verify_export
    from stromledger.periods import format_utc

    reg = devnet.registry
    homes = {v.name: v.home for v in devnet.validators}
    missing, different, invalid, count = [], [], [], 0
    for scope, data in sorted(chains.items()):
        for h in range(reg.genesis_period, last):
            holders = [n for n, c in data.commits.items() if h + 1 in c]
            if not holders:
                continue
            for r in _seal_results(scope, data.commits[holders[0]][h][0]):
                dirs = {n: export_dir(_export_root(homes[n], scope), format_utc(reg.period(r.period).start), r.version)
                        for n in holders}
                absent = [n for n in holders if not exported(_export_root(homes[n], scope), reg, r.period, r.version)]
                if absent:
                    missing.append(f"{scope}@{h} p{r.period}v{r.version} on {', '.join(absent)}")
                    continue
                files = {n: read_export(d) for n, d in dirs.items()}
                first = files[holders[0]]
                if any(f != first for f in files.values()):
                    different.append(f"{scope} p{r.period}v{r.version}")
                report = verify_export(first, reg)
                if not report.ok:
                    invalid.append(f"{scope} p{r.period}v{r.version}: {report}")
                count += 1
    return [
        Check("exports complete", not missing, "; ".join(missing[:4]) or f"{count} exports on every validator"),
        Check("exports identical", not different, ", ".join(different[:5]) or "byte-identical across validators"),
        Check("exports verify", not invalid, "; ".join(invalid[:3]) or "every export verifies with the genesis"),
    ]


def check_readings(devnet: Devnet, last: int) -> Check:
    """Every reading a meter-point node holds a receipt for (not rejected) is in the latest exported version
    of its period with the values sent (import, export and reading version), up to `last` - 1."""
    import csv
    import io

    from stromledger.export import read_index
    from stromledger.export.tables import METER_POINTS_CSV
    from stromledger.export.writer import EXPORTS_DIR
    from stromledger.store import Store

    from .light import latest_readings
    from .meter_point import receipted_readings

    reg = devnet.registry
    first = devnet.validators[0]
    settled: dict[tuple[int, str], dict] = {}  # (period, malo) -> its row in the latest export
    for area in scopes_of(reg, first.name):
        if area == NETWORK:
            continue
        root = _export_root(first.home, area)
        for entry in read_index(root):
            text = (root / EXPORTS_DIR / entry["path"] / METER_POINTS_CSV).read_text()
            for row in csv.DictReader(io.StringIO(text)):
                settled[_period_of(reg, row["period_start"]), row["malo_id"]] = row
    served = {m for a in scopes_of(reg, first.name) if a != NETWORK for m in view(reg, a).meter_points}
    wrong, checked = [], 0
    for node in devnet.light_nodes:
        with Store.open_home(node.home) as store:
            for period in range(reg.genesis_period, last):
                sent = [r for d in store.batches_for_periods([period]) for r in receipted_readings(store, d) or ()]
                for malo, r in latest_readings(sent, period).items():
                    if malo not in served:
                        continue  # a meter point of an area the first validator does not serve
                    checked += 1
                    row = settled.get((period, malo))
                    if row is None:
                        wrong.append(f"{malo} p{period - reg.genesis_period}: not in any export")
                    elif (row["reading_import_wh"], row["reading_export_wh"], row["reading_version"]) != \
                            (str(r.import_wh), str(r.export_wh), str(r.version)):
                        wrong.append(f"{malo} p{period - reg.genesis_period}: sent {r.import_wh}/{r.export_wh} "
                                     f"v{r.version}, settled {row['reading_import_wh'] or '-'}/"
                                     f"{row['reading_export_wh'] or '-'} v{row['reading_version'] or '-'} "
                                     f"({row['quality']})")
    return Check("receipted readings settled as sent", not wrong,
                 "; ".join(wrong[:3]) + (f" (+{len(wrong) - 3})" if len(wrong) > 3 else "") if wrong else
                 f"{checked} receipted readings, each in the latest export as sent")


def _period_of(reg, start_utc: str) -> int:
    from stromledger.periods import parse_utc

    return int(parse_utc(start_utc).timestamp()) // reg.period_seconds


def check_light_nodes(devnet: Devnet) -> Check:
    failures, verified = [], 0
    for node in devnet.light_nodes:
        section = read_status(node).get("verified") or {}
        verified += int(section.get("readings") or 0)
        if section.get("failures"):
            failures.append(f"{node.name}: {section['failures']} failure(s)")
    return Check("no light-node failures", not failures,
                 "; ".join(failures) or f"{verified} readings verified by the light nodes, no failure")


def check_version_one(devnet: Devnet, chains: dict[str, ChainData], last: int) -> Check:
    """No area period's version 1 settled without any reading (all substituted or missing) while a later
    version has readings (they had arrived: issue 18 D3/D4). Periods whose version 1 lacked some readings
    that a later version has are counted."""
    reg = devnet.registry
    empty, partial, periods = [], 0, 0
    for scope, data in sorted(chains.items()):
        if scope == NETWORK or not data.commits:
            continue
        commits = max(data.commits.values(), key=len)
        found: dict[int, dict[int, tuple[int, int]]] = {}  # period -> version -> (measured, substituted)
        for h in sorted(commits):
            for r in _seal_results(scope, commits[h][0]):
                # (readings settled, meter points without one: substituted or missing)
                found.setdefault(r.period, {})[r.version] = (r.measured + r.corrected, r.substituted + r.missing)
        for period in range(reg.genesis_period, last + 1):
            versions = found.get(period)
            if not versions or 1 not in versions:
                continue
            periods += 1
            settled, lacking = versions[1]
            if min(v[1] for v in versions.values()) < lacking:  # a later version has readings it lacked
                partial += 1
                if settled == 0:
                    empty.append(f"{scope} p{period - reg.genesis_period}")
    return Check("version 1 complete", not empty,
                 (f"version 1 without any reading: {', '.join(empty[:6])}; " if empty else "") +
                 f"{partial} of {periods} area periods corrected later")


# -- the table ---------------------------------------------------------------------------------------------------


def result_table(result: ScenarioResult):
    from rich.table import Table

    table = Table(title=f"chaos {result.scenario}: {'PASS' if result.ok else 'FAIL'} "
                        f"({len(result.faults)} fault events, {result.seconds:.0f} s, {result.directory})",
                  title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for c in result.checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]", c.detail)
    return table


def write_summary(directory: Path, results: list[ScenarioResult]) -> Path:
    path = directory / "chaos.json"
    path.write_text(json.dumps([{**dataclasses.asdict(r), "directory": str(r.directory), "ok": r.ok}
                                for r in results], indent=2) + "\n")
    return path
