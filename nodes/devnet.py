"""The local devnet: a fresh chain and its node homes in one directory, every node its own OS process on
127.0.0.1, watched until the requested periods are settled and verified, then stopped and checked.

    devnet = create_devnet(Path("dn"), DevnetOptions(periods=3), now=int(time.time()))   # writes DIR
    code = run_devnet(devnet, console)                                                    # 0 = all good

DIR after a run:
    devnet.json                  the plan: chain id, heights, every node (role, home, port, public key)
    genesis/devnet.toml          the genesis (keys derived from labels: nodes.datagen.devnet_genesis)
    validator-1/ ...             one home per node (config.toml, node.key, genesis copy, data/, node.log)
    meter-operator-1/ ...        one meter-point light node per meter operator (simulated feed)
    bg-operator-1/ ...           one balancing-group node per supplier group operator

Success means: no node process died, every validator committed every requested height with the same seal
hash and a certificate that verifies against the genesis, and every light node verified its readings in
every requested period.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional
from zoneinfo import ZoneInfo

from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, make_devnet_genesis
from stromledger.periods import Period, format_utc
from stromledger.registry import NETWORK, Registry, committee, load_genesis

from .feed import parse_start
from .home import Peer, load_config
from .setup import init_home

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10.0  # SIGTERM, then this long for a clean exit, then SIGKILL
LOG_TAIL_LINES = 30
ENERGY_CACHE = "simulated-energies.npz"
SCHEDULE_LEAD = 2  # the balancing-group nodes schedule this many periods ahead


@dataclass(frozen=True)
class DevnetOptions:
    validators: int = 4
    balancing_groups: int = 3
    meters: int = 200
    periods: int = 3
    period_seconds: int = 5
    seed: int = 1
    areas: Optional[int] = None  # grid areas, each with its own chain (default validators // 2)
    start: str = ""  # the simulated quarter hour of the first period, e.g. 2026-06-21T00:00 ("": its real time)
    churn: bool = False  # registry changes while it settles (nodes/churn.py)

    def check(self) -> None:
        if min(self.validators, self.balancing_groups, self.meters, self.periods) < 1:
            raise ValueError("--validators, --balancing-groups, --meters and --periods must be at least 1")
        if self.areas is not None and self.areas < 1:
            raise ValueError("--areas must be at least 1")
        if self.period_seconds < 3:
            raise ValueError("--period-seconds must be at least 3 (gate closure, consensus and light "
                             "verification must fit)")
        if self.start:
            parse_start(self.start)
        if self.churn:
            from .churn import MIN_PERIODS
            if self.periods < MIN_PERIODS:
                raise ValueError(f"--churn needs --periods {MIN_PERIODS} or more (its changes take effect in period "
                                 f"{MIN_PERIODS - 2} and must be exported on both sides)")


@dataclass(frozen=True)
class NodeSpec:
    name: str  # the devnet key label: validator-1, meter-operator-1, bg-operator-1
    role: str
    home: Path
    port: int
    public_key: bytes

    @property
    def listen(self) -> str:
        return f"/ip4/{HOST}/tcp/{self.port}"


@dataclass
class Devnet:
    directory: Path
    options: DevnetOptions
    genesis: Path
    registry: Registry
    nodes: list[NodeSpec]

    @property
    def validators(self) -> list[NodeSpec]:
        """The validator processes seated on the network chain (with --churn, one more follows an area)."""
        seated = {v.name for v in committee(self.registry, NETWORK)}
        return [n for n in self.nodes if n.role == "validator" and n.name in seated]

    @property
    def followers(self) -> list[NodeSpec]:
        """Validator processes on no committee of the genesis: they follow their area's chain (--churn seats
        one there by a committee change, nodes/churn.py)."""
        return [n for n in self.nodes if n.role == "validator" and n not in self.validators]

    @property
    def light_nodes(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "meter-point"]

    @property
    def group_nodes(self) -> list[NodeSpec]:
        return [n for n in self.nodes if n.role == "balancing-group"]

    @property
    def heights(self) -> range:
        g = self.registry.genesis_period
        return range(g, g + self.options.periods)

    def gate_closure(self, height: int) -> int:
        return self.registry.period(height).gate_closure(self.registry.params.grace_seconds)

    def deadline(self) -> int:
        """Unix time by which everything must be settled and verified: the last period's gate closure plus
        a generous margin for consensus rounds, slow starts and light-node verification."""
        L = self.registry.period_seconds
        return self.gate_closure(self.heights[-1]) + max(45, 6 * L)


# -- planning and writing the homes ------------------------------------------------------------------------------


def start_margin(options: DevnetOptions) -> int:
    """Seconds from now to the earliest genesis start: every node process must be up by then."""
    nodes = options.validators + options.balancing_groups + 2 + (1 if options.churn else 0)
    feeds = options.balancing_groups + 2  # these also import numpy and pandas for the simulated feed: ~1 s each
    return max(6, 2 + (3 * nodes + 4) // 5) + (feeds + 1) // 2  # about 0.6 s per process on a shared machine


def genesis_start(now: int, period_seconds: int, margin: int) -> int:
    """The first period boundary at least `margin` seconds after `now`."""
    earliest = now + margin
    return -(-earliest // period_seconds) * period_seconds


def grace_seconds(period_seconds: int) -> int:
    """Gate closure after period end: short, so a devnet period settles quickly (2 s for 5 s periods)."""
    return max(1, min(period_seconds * 2 // 5, 30))


def new_chain_id(now: int) -> str:
    """Unique per run, so nodes of two devnets never accept each other's messages."""
    return f"devnet-{format_utc(now).replace('-', '').replace(':', '')}-{os.urandom(3).hex()}"


def free_ports(count: int, host: str = HOST) -> list[int]:
    """`count` distinct TCP ports free on `host` right now. All sockets stay bound until every port is
    picked, so the ports differ; another program may still take one before the node binds it (rare)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def create_devnet(directory: str | Path, options: DevnetOptions, now: int) -> Devnet:
    """Write a fresh devnet (genesis, node homes, devnet.json) into `directory`, which must not exist or be
    empty. `now` (unix s) fixes the genesis start: the first period boundary start_margin() after it."""
    options.check()
    directory = Path(directory).resolve()  # homes and logs named absolutely, whatever the caller's cwd
    if directory.exists() and any(directory.iterdir()):
        raise FileExistsError(f"{directory} is not empty: a devnet is written into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    L = options.period_seconds
    began = time.monotonic()
    start = parse_start(options.start) if options.start else dt.datetime.fromtimestamp(now - now % 900, dt.timezone.utc)
    options = dataclasses.replace(options, start=start.isoformat())
    simulated = write_simulated_energies(directory, options)
    prepared = math.ceil(time.monotonic() - began)  # the profiles took this long: the genesis waits for them
    # --churn: one more validator, seated on no committee, that a committee change seats (nodes/churn.py)
    seats = {"seated": options.validators} if options.churn else {}
    genesis = make_devnet_genesis(directory / "genesis", options.validators + len(seats), options.balancing_groups,
                                  options.meters, L, options.seed,
                                  genesis_start=genesis_start(now + prepared, L, start_margin(options)),
                                  chain_id=new_chain_id(now), grace_seconds=grace_seconds(L),
                                  grid_areas=options.areas, **seats)
    registry = load_genesis(genesis)

    labels = [(f"validator-{i + 1}", "validator") for i in range(len(registry.validators))]
    labels += [(f"meter-operator-{i + 1}", "meter-point") for i in range(len(registry.meter_operators))]
    labels += [(f"bg-operator-{i + 1}", "balancing-group") for i in range(options.balancing_groups)]
    ports = free_ports(len(labels))
    nodes = [NodeSpec(label, role, directory / label, port, devnet_key(label).public)
             for (label, role), port in zip(labels, ports)]
    peers = [Peer(n.public_key, n.listen) for n in nodes if n.role == "validator"]
    # clients submit to the seated validators (a follower serves its area's chain only)
    seated = {v.public_key for v in committee(registry, NETWORK)}
    client_peers = [p for p in peers if p.key in seated]
    for n in nodes:
        init_home(n.home, n.role, genesis, key=devnet_key(n.name), name=n.name, listen=n.listen,
                  peers=peers if n.role == "validator" else client_peers,
                  feed="simulated" if n.role == "meter-point" else None,
                  schedules="simulated" if n.role == "balancing-group" else None,
                  seed=options.seed if n.role != "validator" else None,
                  simulated=simulated if n.role != "validator" else None)
    devnet = Devnet(directory, options, genesis, registry, nodes)
    (directory / "devnet.json").write_text(json.dumps(describe(devnet), indent=2) + "\n")
    return devnet


def write_simulated_energies(directory: Path, options: DevnetOptions) -> dict[str, str]:
    """Compute the simulated meters' energies of the devnet's periods once (the profiles take seconds per
    process) into DIR/simulated-energies.npz; the node config options that point the feeds to it. The meter
    points do not depend on the genesis time, so this runs before the genesis is fixed."""
    from .feed import SimulatedFeed

    registry = devnet_registry(options.validators, options.balancing_groups, options.meters, options.period_seconds,
                               options.seed)
    feed = SimulatedFeed(registry, options.seed, start=parse_start(options.start))
    path = directory / ENERGY_CACHE
    feed.save_energies(path, range(options.periods + SCHEDULE_LEAD + 2))
    return {"start": options.start, "energies": str(path)}


def describe(devnet: Devnet) -> dict[str, Any]:
    reg = devnet.registry
    return {
        "chain_id": reg.chain_id,
        "genesis": str(devnet.genesis),
        "registry_hash": reg.hash.hex(),
        "period_seconds": reg.period_seconds,
        "grace_seconds": reg.params.grace_seconds,
        "genesis_start": format_utc(reg.genesis_period * reg.period_seconds),
        "heights": [devnet.heights[0], devnet.heights[-1]],
        "options": dataclasses.asdict(devnet.options),
        "nodes": [{"name": n.name, "role": n.role, "home": str(n.home), "listen": n.listen,
                   "public_key": n.public_key.hex()} for n in devnet.nodes],
    }


def load_devnet(directory: str | Path) -> Devnet:
    """A devnet written by create_devnet, read back from its directory (to inspect one after a run)."""
    directory = Path(directory)
    doc = json.loads((directory / "devnet.json").read_text())
    registry = load_genesis(doc["genesis"])
    nodes = [NodeSpec(n["name"], n["role"], Path(n["home"]), int(n["listen"].rsplit("/", 1)[1]),
                      bytes.fromhex(n["public_key"])) for n in doc["nodes"]]
    return Devnet(directory, DevnetOptions(**doc["options"]), Path(doc["genesis"]), registry, nodes)


# -- processes ------------------------------------------------------------------------------------------------


class NodeProcess:
    """One node as an OS process: `python -m nodes node run --home H`, output to H/node.log."""

    def __init__(self, spec: NodeSpec, env: Optional[dict[str, str]] = None):
        self.spec = spec
        self.log_path = spec.home / "node.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(self.log_path, "ab") as log:
            # A session of its own: a Ctrl-C in the terminal reaches the devnet, which stops the nodes in order.
            self.popen = subprocess.Popen([sys.executable, "-m", "nodes", "node", "run", "--home", str(spec.home)],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        self.killed = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError as e:
            return f"(cannot read {self.log_path}: {e})"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def start_nodes(devnet: Devnet) -> list[NodeProcess]:
    procs = []
    try:
        for spec in devnet.nodes:
            procs.append(NodeProcess(spec))
    except BaseException:
        stop_nodes(procs)
        raise
    return procs


def stop_nodes(procs: list[NodeProcess], timeout: float = STOP_TIMEOUT_S,
               clock: Callable[[], float] = time.monotonic) -> list[str]:
    """SIGTERM every running node, wait up to `timeout` for all, SIGKILL the rest. Returns a line per node
    that had to be killed."""
    for p in procs:
        if p.exit_code() is None:
            try:
                p.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = clock() + timeout
    for p in procs:
        try:
            p.popen.wait(max(0.0, end - clock()))
        except subprocess.TimeoutExpired:
            pass
    killed = []
    for p in procs:
        if p.exit_code() is None:
            p.popen.kill()
            p.popen.wait()
            p.killed = True
            killed.append(f"{p.spec.name} (pid {p.pid}) did not stop within {timeout:.0f} s of SIGTERM: killed")
    return killed


# -- watching the run -------------------------------------------------------------------------------------------


def read_status(spec: NodeSpec) -> dict[str, Any]:
    try:
        doc = json.loads((spec.home / "data" / "status.json").read_text())
    except (OSError, ValueError):  # not written yet, or caught between write and rename
        return {}
    return doc if isinstance(doc, dict) else {}


def verified_heights(status: dict[str, Any], role: str, heights: range,
                     period_seconds: int) -> tuple[set[int], list[str]]:
    """(the requested heights a light or balancing-group node has verified, its verification problems), from
    its status.json. Both verify in order, so "verified through X" covers every height up to X.

    meter-point: verified = {periods, readings, failures (readings not settled as sent), last_period (ISO)};
    balancing-group: verified = {heights, last_height, discrepancies}, plus `halted` when it had to stop."""
    section = status.get("verified")
    if not isinstance(section, dict):
        return set(), []
    through: int | None = None
    problems: list[str] = []
    if role == "meter-point":
        last = section.get("last_period")
        if isinstance(last, str):
            try:
                period = Period.from_iso(last)
                through = period.index if period.length == period_seconds else None
            except ValueError:
                problems.append(f"unreadable verified.last_period {last!r}")
        failures = section.get("failures")
        if isinstance(failures, int) and failures > 0:
            problems.append(f"{failures} reading(s) NOT settled as sent (VERIFICATION FAILED in its node.log)")
    else:
        last = section.get("last_height")
        through = last if isinstance(last, int) else None
        bad = section.get("discrepancies")
        if isinstance(bad, int) and bad > 0:
            problems.append(f"{bad} seal(s) it could not rebuild identically (DISCREPANCY in its node.log)")
        if status.get("halted"):
            problems.append(f"halted: {status.get('halted_reason') or status['halted']}")
    done = {h for h in heights if through is not None and h <= through}
    return done, problems


@dataclass
class Progress:
    """What the devnet has seen so far, from the nodes' status files."""

    committed: dict[int, dict[str, str]] = field(default_factory=dict)  # height -> validator -> seal hash or "?"
    verified: dict[str, set[int]] = field(default_factory=dict)  # light/group node -> heights verified
    problems: dict[str, list[str]] = field(default_factory=dict)  # light/group node -> verification problems
    listening: set[str] = field(default_factory=set)
    api_urls: dict[str, str] = field(default_factory=dict)  # node -> its operator API (dashboard at /)
    settled: set[int] = field(default_factory=set)  # heights every validator committed

    def finished(self, devnet: Devnet) -> bool:
        heights = set(devnet.heights)
        followers = devnet.light_nodes + devnet.group_nodes
        return self.settled >= heights and all(heights <= self.verified.get(n.name, set()) or self.problems.get(n.name)
                                               for n in followers)


def watch(devnet: Devnet, procs: list[NodeProcess], console, *, clock: Callable[[], float] = time.time,
          sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.5) -> tuple[str, Progress, str]:
    """Poll the nodes until every requested height is committed by every validator and verified by every
    light and balancing-group node ("done"), a node process exits ("died"), or the deadline passes
    ("timeout"). Prints progress as it goes. Returns (outcome, progress, detail)."""
    progress = Progress()
    heights = set(devnet.heights)
    deadline = devnet.deadline()
    genesis_at = devnet.registry.genesis_period * devnet.registry.period_seconds
    announced_genesis = False
    while True:
        dead = [p for p in procs if p.exit_code() is not None]
        if dead:
            return "died", progress, "\n".join(
                f"{p.spec.name} ({p.spec.role}, pid {p.pid}) {describe_exit(p.exit_code())}; last lines of "
                f"{p.log_path}:\n{p.log_tail()}" for p in dead)
        now = clock()
        poll(devnet, progress, console)
        if not announced_genesis and now >= genesis_at:
            announced_genesis = True
            missing = [s.name for s in devnet.nodes if s.name not in progress.listening]
            console.print(f"genesis period {devnet.registry.period(devnet.registry.genesis_period).iso()} begins"
                          + (f"; not yet listening: {', '.join(missing)}" if missing else "; every node is up"))
        if progress.finished(devnet):
            return "done", progress, ""
        if now > deadline:
            pending = sorted(heights - progress.settled)
            behind = {n.name: sorted(heights - progress.verified.get(n.name, set()))
                      for n in devnet.light_nodes + devnet.group_nodes
                      if not heights <= progress.verified.get(n.name, set())}
            return "timeout", progress, (f"deadline {format_utc(int(deadline))} passed; heights not committed by "
                                         f"every validator: {pending or 'none'}; heights not verified: "
                                         f"{behind or 'none'}")
        sleep(poll_s)


def poll(devnet: Devnet, progress: Progress, console) -> None:
    """Read every node's status.json once, update `progress` and print what is new."""
    up: list[str] = []
    new: dict[int, list] = {}
    for spec in devnet.nodes:
        status = read_status(spec)
        if spec.name not in progress.listening and status.get("listen"):
            progress.listening.add(spec.name)
            up.append(spec.name)
        if spec.name not in progress.api_urls and isinstance(status.get("api_url"), str):
            progress.api_urls[spec.name] = status["api_url"]
            if spec.role != "meter-point":
                console.print(f"  dashboard of {spec.name}: {status['api_url']}/  (API: /status, /metrics, "
                              "/openapi.json)", markup=False)
        if spec in devnet.validators:
            _note_commit(devnet, spec, status, progress, new)
        elif spec.role != "validator":  # (a follower's commits are its area's: checked by nodes/churn.py)
            _note_verified(devnet, spec, status, progress, console)
    if up:
        console.print(f"  up and listening: {', '.join(up)}")
    _print_commits(devnet, progress, new, console)
    for h in set(devnet.heights) - progress.settled:
        if len(progress.committed.get(h, {})) == len(devnet.validators):
            progress.settled.add(h)


def _note_commit(devnet: Devnet, spec: NodeSpec, status: dict, progress: Progress, new: dict[int, list]) -> None:
    """A validator's latest commit (with its seal hash) and, from `last_height`, the heights it committed
    before that (a validator catching up may commit several between two polls)."""
    last = status.get("last_commit")
    if not isinstance(last, dict) or not isinstance(last.get("height"), int):
        return
    top = last["height"]
    through = status.get("last_height") if isinstance(status.get("last_height"), int) else top
    for h in devnet.heights:
        if h > max(top, through):
            break
        seen = progress.committed.setdefault(h, {})
        if spec.name not in seen:
            seen[spec.name] = str(last.get("seal_hash", "?")) if h == top else "?"
            new.setdefault(h, []).append((spec.name, last if h == top else {}))


def _print_commits(devnet: Devnet, progress: Progress, new: dict[int, list], console) -> None:
    """One line per height with the validators whose commit appeared since the last poll."""
    for h, entries in sorted(new.items()):
        names = ", ".join(name for name, _ in entries)
        seals = sorted({str(last["seal_hash"])[:16] for _, last in entries if last.get("seal_hash")})
        ms = sorted(last["ms_after_gate_closure"] for _, last in entries
                    if isinstance(last.get("ms_after_gate_closure"), int))
        rounds = sorted({str(last["round"]) for _, last in entries if "round" in last})
        detail = ", ".join(x for x in (f"round {'/'.join(rounds)}" if rounds else "",
                                       (f"{ms[0]}" if ms[0] == ms[-1] else f"{ms[0]}-{ms[-1]}") + " ms after gate closure" if ms else "") if x)
        line = (f"  period {devnet.registry.period(h).iso()} (height {h}): {names} committed"
                + (f" seal {'/'.join(seals)}" if seals else "") + (f" ({detail})" if detail else ""))
        seen = progress.committed[h]
        if len(seen) == len(devnet.validators):
            known = {v for v in seen.values() if v != "?"}
            verdict = "[red]DIFFERENT SEALS[/]" if len(known) > 1 else "[green]same seal[/]"
            line += f"; all {len(seen)} validators, {verdict}"
        else:
            line += f"; {len(seen)} of {len(devnet.validators)} validators so far"
        console.print(line)


def _note_verified(devnet: Devnet, spec: NodeSpec, status: dict, progress: Progress, console) -> None:
    done, problems = verified_heights(status, spec.role, devnet.heights, devnet.registry.period_seconds)
    before = progress.verified.setdefault(spec.name, set())
    what = "its readings" if spec.role == "meter-point" else "the seal (rebuilt it identically)"
    for h in sorted(done - before):
        console.print(f"  {spec.name} verified {what} for period {devnet.registry.period(h).iso()}")
    before |= done
    known = progress.problems.setdefault(spec.name, [])
    for problem in problems:
        if problem not in known:
            known.append(problem)
            console.print(f"  {spec.name}: {problem}", markup=False, style="red")


# -- the results, read from the validators' stores after the run -------------------------------------------------


@dataclass
class HeightResult:
    height: int
    seals: dict[str, str | None]  # validator -> seal hash (None: not committed)
    problems: list[str]  # certificate failures, undecodable seals
    summary: dict[str, Any] | None  # seal_summary of the seal (of the first validator that has it)

    @property
    def agreed(self) -> bool:
        hashes = set(self.seals.values())
        return not self.problems and len(hashes) == 1 and None not in hashes


def collect_results(devnet: Devnet) -> list[HeightResult]:
    """Each requested height as every validator's store has it (the nodes must be stopped)."""
    from stromledger.store import Store

    from .setup import commit_summary

    per: dict[int, HeightResult] = {h: HeightResult(h, {}, [], None) for h in devnet.heights}
    for v in devnet.validators:
        try:
            store = Store.open_home(v.home)
        except Exception as e:  # a locked or broken database is a result to report, not a crash
            for r in per.values():
                r.seals[v.name] = None
                r.problems.append(f"{v.name}: cannot open its ledger: {e}")
            continue
        with store:
            for h, r in per.items():
                commit = store.get_commit(h)
                if commit is None:
                    r.seals[v.name] = None
                    continue
                summary = commit_summary(commit, devnet.registry)
                r.seals[v.name] = summary["seal_hash"]
                if "error" in summary:
                    r.problems.append(f"{v.name}: {summary['error']}")
                elif summary.get("certificate") != "valid":
                    r.problems.append(f"{v.name}: certificate {summary.get('certificate')}")
                elif bytes.fromhex(summary["seal_hash"]) != bytes(commit.value_hash):
                    r.problems.append(f"{v.name}: the stored value hash is not the seal's hash")
                if r.summary is None and "results" in summary:
                    r.summary = summary
    return [per[h] for h in devnet.heights]


def simulated_time(devnet: Devnet, height: int) -> str:
    """The simulated quarter hour (local time of the profiles) a devnet period stands for."""
    from .feed import default_start

    start = parse_start(devnet.options.start) if devnet.options.start else default_start(devnet.registry)
    t = start + dt.timedelta(minutes=15 * (height - devnet.registry.genesis_period))
    return t.astimezone(ZoneInfo("Europe/Berlin")).strftime("%a %Y-%m-%d %H:%M %Z")


def report(devnet: Devnet, results: list[HeightResult], progress: Progress, console) -> bool:
    """Print every requested period: its seal, totals, mix, agreement and light verification. True when
    every validator committed the same valid seal and every light node verified every period."""
    from .setup import result_lines, result_tables

    ok = True
    for r in results:
        period = devnet.registry.period(r.height)
        if not any(r.seals.values()) and not r.problems:
            console.print(f"[red]period {period.iso()} (height {r.height}): committed by no validator[/]")
            ok = False
            continue
        console.rule(f"period {period.iso()} (height {r.height}), simulated {simulated_time(devnet, r.height)}")
        if r.agreed:
            console.print(f"seal {next(iter(r.seals.values()))}: [green]the same on all {len(r.seals)} validators, "
                          "certificates valid[/]")
        else:
            ok = False
            console.print("[red]the validators do not agree on one valid seal:[/]")
            for name, h in r.seals.items():
                console.print(f"  {name:<14} {h or 'not committed'}", markup=False)
            for problem in r.problems:
                console.print(f"  {problem}", markup=False, style="red")
        if r.summary is not None:
            own = r.summary["results"][-1]
            for line in result_lines(own):
                console.print(line, markup=False)
            for extra in r.summary["results"][:-1]:
                console.print(f"also settled in this seal: {extra['period_iso']} version {extra['version']} "
                              "(corrections)")
            if r.summary["rejected"]:
                console.print("items refused by the seal: "
                              + ", ".join(f"{k}: {v}" for k, v in r.summary["rejected"].items()), markup=False)
            for table in result_tables(own):
                console.print(table)
        for label, nodes, what in (("light nodes", devnet.light_nodes, "verified its readings"),
                                   ("balancing-group nodes", devnet.group_nodes, "rebuilt the seal")):
            if not nodes:
                continue
            parts = []
            for n in nodes:
                if r.height in progress.verified.get(n.name, set()):
                    parts.append(f"{n.name} [green]{what}[/]")
                else:
                    parts.append(f"{n.name} [red]did not verify[/]")
                    ok = False
            console.print(f"{label}: " + "; ".join(parts))
    for name, problems in sorted(progress.problems.items()):
        for problem in problems:
            console.print(f"{name}: {problem}", markup=False, style="red")
            ok = False
    return ok


def run_devnet(devnet: Devnet, console, *, clock: Callable[[], float] = time.time) -> int:
    """Start every node, watch until done, stop them, check and print the results. The exit status: 0 when
    everything settled, agreed and verified; 1 otherwise (a node died, the deadline passed, disagreement);
    130 on Ctrl-C."""
    from rich.table import Table

    reg = devnet.registry
    console.print(f"devnet [bold]{reg.chain_id}[/] in {devnet.directory}: {len(devnet.validators)} validators, "
                  f"{len(devnet.light_nodes)} meter-point nodes, {len(devnet.group_nodes)} balancing-group nodes, "
                  f"{len(reg.meter_points)} meter points, {reg.period_seconds} s periods "
                  f"(gate closure +{reg.params.grace_seconds} s)")
    console.print(f"settling periods {devnet.heights[0]}..{devnet.heights[-1]} from "
                  f"{format_utc(reg.genesis_period * reg.period_seconds)}; deadline {format_utc(devnet.deadline())}")
    procs = start_nodes(devnet)
    churn = _start_churn(devnet, console) if devnet.options.churn else None
    started = Table(title=f"node processes (each logs to <home>/node.log; homes in {devnet.directory})",
                    title_justify="left")
    for col in ("node", "role", "pid", "listen"):
        started.add_column(col)
    for p in procs:
        started.add_row(p.spec.name, p.spec.role, str(p.pid), p.spec.listen)
    console.print(started)
    interrupted = False
    try:
        outcome, progress, detail = watch(devnet, procs, console, clock=clock)
    except KeyboardInterrupt:
        interrupted = True
        outcome, progress, detail = "interrupted", Progress(), "interrupted (Ctrl-C)"
    finally:
        console.print("stopping every node (SIGTERM) ...")
        for line in stop_nodes(procs):
            console.print(f"[yellow]{line}[/]")
    if interrupted:
        console.print(f"stopped; the node homes stay in {devnet.directory}")
        return 130
    if outcome == "died":
        console.print(f"a node died: {detail}", markup=False, style="red")
    elif outcome == "timeout":
        console.print(f"timed out: {detail}", markup=False, style="red")
    died_early = detail if outcome == "died" else ""
    for p in procs:
        if not p.killed and p.exit_code() not in (0, -signal.SIGTERM) and f"{p.spec.name} (" not in died_early:
            console.print(f"{p.spec.name} {describe_exit(p.exit_code())} when asked to stop (see {p.log_path})",
                          markup=False, style="yellow")
    poll(devnet, progress, _Quiet())  # what the nodes wrote last, while stopping
    results = collect_results(devnet)
    good = report(devnet, results, progress, console) and outcome == "done"
    export_lines, export_problems = check_exports(devnet)
    if churn is not None:
        lines, problems = _check_churn(devnet, *churn)
        export_lines += lines
        export_problems += problems
    for line in export_lines:
        console.print(line, markup=False)
    for problem in export_problems:
        console.print(problem, markup=False, style="red")
    good = good and not export_problems
    console.rule()
    if good:
        console.print(f"[green bold]devnet OK[/]: {len(results)} period(s) settled, the same seal on every validator, "
                      "every light node verified its readings, every balancing-group node rebuilt every seal. "
                      f"Homes in {devnet.directory}")
        return 0
    console.print(f"[red bold]devnet FAILED[/] ({outcome}). Node homes and logs in {devnet.directory}")
    return 1


def _start_churn(devnet: Devnet, console):
    """Submit the churn plan's registry changes in the background (nodes/churn.py)."""
    from .churn import ChurnSubmitter, plan_churn

    reg = devnet.registry
    changes = plan_churn(reg, devnet.options.periods)
    for c in changes:
        console.print(f"churn: {c.describe()}", markup=False)
    submitter = ChurnSubmitter(reg, changes, {n.public_key: n.listen for n in devnet.validators + devnet.followers},
                               deadline=(reg.genesis_period + 1) * reg.period_seconds,
                               ready=lambda: all(read_status(v) for v in devnet.validators),
                               committed=lambda scope: min(_last_height(read_status(v), scope)
                                                           for v in devnet.validators))
    submitter.start()
    return changes, submitter


def _last_height(status: dict, scope: str) -> int:
    """The last height a validator's status says it committed on a chain (-1: none yet, or not served)."""
    last = status.get("chains", {}).get(scope, {}).get("last_height")
    return last if isinstance(last, int) else -1


def _check_churn(devnet: Devnet, changes, submitter) -> tuple[list[str], list[str]]:
    from .churn import check_churn

    submitter.join()
    lines, problems = check_churn(devnet.registry, changes, [v.home for v in devnet.validators + devnet.followers])
    return submitter.lines + lines, submitter.problems + problems


def check_exports(devnet: Devnet) -> tuple[list[str], list[str]]:
    """(lines, problems) about the first validator's exports: every area and network export verifies with
    the genesis alone; each area export holds only its area's meter points (and the tie lines touching it);
    and each network export's balancing-group totals are the sums of the area exports it used (injection,
    and withdrawal without loss: the cells; the losses too where no tie line is disputed)."""
    import csv
    import io

    from stromledger.export import verify_export
    from stromledger.export.network import NETWORK_AREAS_CSV
    from stromledger.export.tables import GROUPS_CSV, METER_POINTS_CSV
    from stromledger.export.writer import read_export
    from stromledger.registry import view

    reg = devnet.registry
    data = devnet.validators[0].home / "data"
    lines, problems = [], []

    def rows(files: dict, name: str) -> list[dict]:
        return list(csv.DictReader(io.StringIO(files[name].decode("utf-8"))))

    area_exports: dict[tuple[str, str, str], dict] = {}  # (area, period start dir, "v<N>") -> files
    for area in reg.grid_areas:
        base = data / "chains" / area / "exports"
        own = set(view(reg, area).meter_points)
        for manifest in sorted(base.glob("*/v*/manifest.json")):
            files = read_export(manifest.parent)
            report = verify_export(files, reg)
            where = f"{area} {manifest.parent.parent.name}/{manifest.parent.name}"
            if not report.ok:
                problems.append(f"area export {where} does not verify: {report}")
                continue
            added = {json.loads(line)["malo_id"] for line in files.get("registry-changes.jsonl", b"").splitlines()
                     if json.loads(line)["kind"] == "add_meter_point"}  # registry changes (docs/registry.md)
            foreign = sorted(r["malo_id"] for r in rows(files, METER_POINTS_CSV) if r["malo_id"] not in own | added)
            if foreign:
                problems.append(f"area export {where} holds meter points of other areas: {foreign[:3]}")
            area_exports[area, manifest.parent.parent.name, manifest.parent.name] = files
    checked = 0
    for manifest in sorted((data / "exports").glob("*/v*/manifest.json")):
        files = read_export(manifest.parent)
        where = f"{manifest.parent.parent.name}/{manifest.parent.name}"
        report = verify_export(files, reg)
        if not report.ok:
            problems.append(f"network export {where} does not verify: {report}")
            continue
        sums: dict[str, list[int]] = {}
        missing = []
        for a in rows(files, NETWORK_AREAS_CSV):
            if a["status"] != "used":
                continue
            used = area_exports.get((a["grid_area"], manifest.parent.parent.name, f"v{a['area_version']}"))
            if used is None:
                missing.append(a["grid_area"])
                continue
            for g in rows(used, GROUPS_CSV):
                s = sums.setdefault(g["balancing_group"], [0, 0, 0])
                s[0] += int(g["injection_wh"])
                s[1] += int(g["withdrawal_wh"]) - int(g["loss_wh"])
                s[2] += int(g["loss_wh"])
        if missing:
            lines.append(f"network export {where}: area exports of {', '.join(missing)} not written yet")
            continue
        disputed = any(t["disputed"] == "1" for t in rows(files, "ties.csv"))
        for g in rows(files, GROUPS_CSV):
            inj, cells_wd, loss = sums.get(g["balancing_group"], [0, 0, 0])
            if (int(g["injection_wh"]), int(g["withdrawal_wh"]) - int(g["loss_wh"])) != (inj, cells_wd) or \
                    (not disputed and int(g["loss_wh"]) != loss):
                problems.append(f"network export {where}: group {g['balancing_group']} is not the sum of the "
                                f"area exports (injection {g['injection_wh']} vs {inj}, withdrawal without loss "
                                f"{int(g['withdrawal_wh']) - int(g['loss_wh'])} vs {cells_wd}, loss {g['loss_wh']} "
                                f"vs {loss})")
        checked += 1
    lines[:0] = [f"exports: {len(area_exports)} area and {checked} network export(s) verify with the genesis alone",
                 "area exports hold only their area's meter points; network group totals = sums of the area "
                 "exports"]
    return lines, problems


class _Quiet:
    def print(self, *args, **kwargs) -> None:
        pass


def check_homes(devnet: Devnet) -> list[str]:
    """Problems with the written homes (what the setup test checks): each config loads, names its genesis
    copy of this chain, its key file (0600) holds the node's key, and it lists every validator as a peer."""
    from stromledger.keys import read_key_file

    problems = []
    validators = {v.public_key for v in devnet.nodes if v.role == "validator"}
    seated = {v.public_key for v in devnet.validators}
    for n in devnet.nodes:
        config = load_config(n.home)
        if config.role != n.role or config.listen != n.listen:
            problems.append(f"{n.name}: config role/listen {config.role} {config.listen}")
        if load_genesis(config.genesis_path).hash != devnet.registry.hash:
            problems.append(f"{n.name}: genesis copy differs")
        mode = config.key_path.stat().st_mode & 0o777
        if mode != 0o600:
            problems.append(f"{n.name}: key file mode {mode:o}")
        if read_key_file(config.key_path).public != n.public_key:
            problems.append(f"{n.name}: key file holds another key")
        if {p.key for p in config.peers} != (validators if n.role == "validator" else seated):
            problems.append(f"{n.name}: peers are not the validators")
    return problems


__all__ = ["Devnet", "DevnetOptions", "HeightResult", "NodeProcess", "NodeSpec", "Progress", "check_homes",
           "collect_results", "create_devnet", "describe", "free_ports", "genesis_start", "grace_seconds",
           "load_devnet", "new_chain_id", "read_status", "report", "run_devnet", "start_margin", "start_nodes",
           "stop_nodes", "verified_heights", "watch", "poll"]
