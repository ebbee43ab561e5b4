"""A node's home directory and its config.toml.

    <home>/config.toml     what this node is and whom it talks to (below)
    <home>/node.key        its Ed25519 key (mode 0600), also its libp2p identity
    <home>/genesis.toml    the chain's genesis (and the meter-point file it pins)
    <home>/data/           ledger.sqlite3, exports/, and the status.json a running node keeps current

config.toml (checked against SCHEMA below: an unknown key or a wrong type in any section is a one-line
ConfigError; `init` writes every setting of the role, commented):

    role = "validator"              # validator | balancing-group | meter-point
    name = "validator-1"            # for logs and status only
    genesis = "genesis.toml"        # relative to the home
    key_file = "node.key"
    listen = "/ip4/127.0.0.1/tcp/0" # multiaddr; port 0 picks a free port (written to data/status.json)

    [[peers]]                       # validators this node connects to (a validator lists the others)
    key = "<hex Ed25519 public key, as in the genesis>"
    address = "/ip4/127.0.0.1/tcp/40001"

    [consensus]                     # validators only; integer milliseconds
    propose_ms = 3000

    [meter_point]                   # meter-point light nodes only
    feed = "simulated"              # "simulated" (devnet profiles) or "inbox" (signed batches dropped in data/inbox)
    seed = 1
    batch_size = 5000

    [balancing_group]               # balancing-group nodes only
    groups = ["11XBRP-A-------X"]   # EICs of the balancing groups this operator holds

    [ingest]                        # validators only
    workers = 0                     # threads verifying submitted batches' signatures; 0 = one per core

    [api]                           # every role: the operator HTTP API, /metrics and the dashboard (nodes/api/)
    listen = "127.0.0.1:0"          # HOST:PORT; port 0 picks a free port (api_url in data/status.json); "" = off
    token = ""                      # non-empty: every request needs `Authorization: Bearer <token>`

    [log]                           # every role
    format = "text"                 # text | json (one JSON object per line); --log-format overrides it
    levels = { libp2p = "INFO" }    # per logger; libp2p and multiaddr stay at WARNING unless named here
"""

from __future__ import annotations

import dataclasses
import os
from datetime import datetime
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

ROLES = ("validator", "balancing-group", "meter-point")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One config.toml key: its type ("str", "int" = whole number >= 0, "list" = list of strings, "levels" =
    a table of logger name = log level, "time" = an ISO time such as 2026-06-21T00:00), its default (None:
    computed, see `help`), what it means, and the values allowed (empty: any)."""
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        if self.kind == "int" and (type(value) is not int or value < 0):
            return f"must be a whole number >= 0, not {value!r}"
        if self.kind == "str" and not isinstance(value, str):
            return f"must be a string, not {value!r}"
        if self.kind == "time" and not _is_time(value):
            return f"must be a time like \"2026-06-21T00:00\" (UTC unless it names an offset), not {value!r}"
        if self.kind == "list" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return f"must be a list of strings, not {value!r}"
        if self.kind == "levels" and not (isinstance(value, dict) and all(
                isinstance(v, str) and v.upper() in LOG_LEVELS for v in value.values())):
            return f"must be a table of logger = level ({', '.join(LOG_LEVELS)}), not {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, not {value!r}"
        return None


def _consensus_settings() -> dict[str, Setting]:
    from stromledger.consensus.config import ConsensusConfig

    helps = {"propose_ms": "wait this long for the round's proposal (building or validating a seal)",
             "propose_delta_ms": "... plus this much per further round", "resend_ms": "re-send own votes this often"}
    return {f.name: Setting("int", f.default, helps.get(f.name, "milliseconds" if f.name.endswith("_ms") else
                                                         "a bound against hostile peers (rarely changed)"))
            for f in dataclasses.fields(ConsensusConfig)}


# Every key config.toml may hold, by section ("" = the top level; "peers" = each [[peers]] table). Another
# section is one more entry here (and its role in SECTION_ROLES if only one role reads it).
SCHEMA: dict[str, dict[str, Setting]] = {
    "": {
        "role": Setting("str", None, "validator | balancing-group | meter-point", ROLES),
        "name": Setting("str", None, "for logs and status only (default: the home directory's name)"),
        "genesis": Setting("str", "genesis.toml", "the chain's genesis, relative to the home"),
        "key_file": Setting("str", "node.key", "this node's Ed25519 key file, relative to the home"),
        "listen": Setting("str", "/ip4/127.0.0.1/tcp/0", "TCP multiaddr; port 0 = any free port"),
    },
    "peers": {
        "key": Setting("str", None, "the validator's public key (64 hex characters), as in the genesis"),
        "address": Setting("str", None, "its multiaddr, e.g. /ip4/192.0.2.10/tcp/7411"),
    },
    "consensus": _consensus_settings(),
    "meter_point": {
        "feed": Setting("str", "simulated", "inbox = signed Batch files dropped into data/inbox/; simulated = "
                                            "devnet readings", ("simulated", "inbox")),
        "seed": Setting("int", 1, "the simulated feed's seed"),
        "start": Setting("time", None, "simulated feed: the quarter hour the genesis period stands for, e.g. "
                                      "2026-06-21T00:00 (default: the genesis time)"),
        "energies": Setting("str", None, "simulated feed: the energies the devnet computed once (.npz)"),
        "batch_size": Setting("int", 5000, "readings per batch sent (at most 20000)"),
        "submit_delay_ms": Setting("int", None, "send a period's readings this long after it ends (default: a "
                                                "tenth of the gate-closure grace, at most 1000)"),
        "timeout_ms": Setting("int", 10000, "per request to a validator"),
    },
    "balancing_group": {
        "groups": Setting("list", None, "EICs of the balancing groups this node serves (default: every group "
                                        "its key operates)"),
        "schedules": Setting("str", "none", "none = send schedules yourself; simulated = devnet forecast schedules",
                             ("none", "simulated")),
        "seed": Setting("int", 1, "the simulated schedules' seed"),
        "start": Setting("time", None, "simulated schedules: as [meter_point] start"),
        "energies": Setting("str", None, "simulated schedules: as [meter_point] energies"),
        "schedule_lead": Setting("int", 2, "simulated schedules: this many periods ahead"),
        "timeout_ms": Setting("int", 10000, "per request to a validator"),
    },
    # The settled history on disk (validators): every settled version of every period is kept unless pruned.
    "history": {
        "retain_periods": Setting("int", 0, "0 = keep every settled version on disk (archive); N = delete period "
                                            "rows and settled batches older than N periods (at least the "
                                            "correction window + 2)"),
    },
    # Checking submitted batches (validators): decode, then every reading's signature on a pool of threads
    # (PyNaCl releases the GIL while it verifies), docs/benchmarks.md "ingest".
    "ingest": {
        "workers": Setting("int", 0, "threads verifying a submitted batch's signatures in parallel, per chain; "
                                     "0 = one per core"),
    },
    # The operator surface (issue 14), read by every role.
    "api": {
        "listen": Setting("str", "127.0.0.1:0", "HTTP API, /metrics and dashboard: HOST:PORT (port 0 = any free "
                                                "port, in status.json as api_url); empty = no API"),
        "token": Setting("str", "", "non-empty: every API request needs `Authorization: Bearer <token>`"),
    },
    "log": {
        "format": Setting("str", "text", "text, or json: one object per line (--log-format overrides it)",
                          ("text", "json")),
        "levels": Setting("levels", {}, "per logger, e.g. { \"stromledger.validator\" = \"DEBUG\", libp2p = "
                                        "\"INFO\" }; libp2p, multiaddr and hypercorn stay at WARNING unless named"),
    },
}
EVERY_ROLE_SECTIONS = ("api", "log")
SECTION_ROLES = {"consensus": "validator", "meter_point": "meter-point", "balancing_group": "balancing-group",
                 "history": "validator", "ingest": "validator"}


def _is_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return False
    return True


class ConfigError(Exception):
    pass


@dataclasses.dataclass
class Peer:
    key: bytes
    address: str


@dataclasses.dataclass
class NodeConfig:
    home: Path
    role: str
    name: str
    genesis: str = "genesis.toml"
    key_file: str = "node.key"
    listen: str = "/ip4/127.0.0.1/tcp/0"
    peers: list[Peer] = dataclasses.field(default_factory=list)
    consensus: dict[str, int] = dataclasses.field(default_factory=dict)
    meter_point: dict[str, Any] = dataclasses.field(default_factory=dict)
    balancing_group: dict[str, Any] = dataclasses.field(default_factory=dict)
    history: dict[str, int] = dataclasses.field(default_factory=dict)
    ingest: dict[str, int] = dataclasses.field(default_factory=dict)
    api: dict[str, str] = dataclasses.field(default_factory=dict)
    log: dict[str, Any] = dataclasses.field(default_factory=dict)

    # [api] and [log] with their defaults filled in (the raw tables hold only what config.toml sets).
    @property
    def api_listen(self) -> str:
        return self.api.get("listen", SCHEMA["api"]["listen"].default)

    @property
    def api_token(self) -> str:
        return self.api.get("token", SCHEMA["api"]["token"].default)

    @property
    def ingest_workers(self) -> int:
        """[ingest] workers, 0 (the default) resolved to the machine's cores."""
        return self.ingest.get("workers", 0) or os.cpu_count() or 1

    @property
    def log_format(self) -> str:
        return self.log.get("format", SCHEMA["log"]["format"].default)

    @property
    def log_levels(self) -> dict[str, str]:
        return {name: level.upper() for name, level in self.log.get("levels", {}).items()}

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def genesis_path(self) -> Path:
        return self.home / self.genesis

    @property
    def key_path(self) -> Path:
        return self.home / self.key_file

    @property
    def status_path(self) -> Path:
        return self.data_dir / "status.json"

    def to_toml(self) -> str:
        """config.toml with every setting the role reads, each commented: the ones set as values, the others
        as commented-out defaults (what `init` writes)."""
        top = {"role": self.role, "name": self.name, "genesis": self.genesis, "key_file": self.key_file,
               "listen": self.listen}
        lines = ["# stromledger node configuration; docs/operations.md section 4 describes every setting.",
                 "# Changes take effect at the next start; `stromledger config check --home DIR` checks this file.",
                 ""]
        lines += _commented(SCHEMA[""], top)
        for p in self.peers:
            lines += ["", "[[peers]]  # a validator this node connects to (a validator lists the others)"]
            lines += _commented(SCHEMA["peers"], {"key": p.key.hex(), "address": p.address})
        for section, role in SECTION_ROLES.items():
            values = getattr(self, section)
            if values or role == self.role:
                lines += ["", f"[{section}]  # {role} nodes only"]
                lines += _commented(SCHEMA[section], values)
        for section in EVERY_ROLE_SECTIONS:
            lines += ["", f"[{section}]  # every role"]
            lines += _commented(SCHEMA[section], getattr(self, section))
        return "\n".join(lines) + "\n"

    def save(self) -> Path:
        path = self.home / "config.toml"
        path.write_text(self.to_toml())
        return path


def load_config(home: str | Path) -> NodeConfig:
    """Read and check <home>/config.toml against SCHEMA: an unknown key, a wrong type or a value not allowed
    is a one-line ConfigError naming the file, the section, the key and what is allowed."""
    home = Path(home)
    path = home / "config.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: create the home with `stromledger init`") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None
    tables = [name for name in SCHEMA if name]
    top = {k: v for k, v in doc.items() if k not in tables}
    _check_table(path, "", top)
    if "role" not in doc:
        raise ConfigError(f"{path}: role is missing; allowed: {', '.join(ROLES)}")
    peers = []
    raw_peers = doc.get("peers", [])
    if not isinstance(raw_peers, list):
        raise ConfigError(f"{path}: peers must be [[peers]] tables with key and address")
    for i, p in enumerate(raw_peers):
        if not isinstance(p, dict):
            raise ConfigError(f"{path}: [[peers]] #{i + 1} must be a table with key and address")
        _check_table(path, "peers", p, where=f"[[peers]] #{i + 1}")
        try:
            key = bytes.fromhex(p["key"])
            address = p["address"]
        except KeyError as e:
            raise ConfigError(f"{path}: [[peers]] #{i + 1}: {e.args[0]} is missing (needs key and address)") from None
        except ValueError:
            raise ConfigError(f"{path}: [[peers]] #{i + 1} key is not hex") from None
        if len(key) != 32:
            raise ConfigError(f"{path}: [[peers]] #{i + 1} key is not a 32-byte Ed25519 public key (64 hex digits)")
        peers.append(Peer(key, address))
    sections = {}
    for name in tables:
        if name == "peers":
            continue
        table = doc.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name} must be a [{name}] table")
        _check_table(path, name, table)
        sections[name] = dict(table)
    if sections["consensus"]:
        from stromledger.consensus.config import ConsensusConfig

        try:
            ConsensusConfig(**sections["consensus"])
        except ValueError as e:
            raise ConfigError(f"{path}: [consensus] {e}") from None
    listen = sections["api"].get("listen")
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{path}: [api]: listen must be HOST:PORT (e.g. 127.0.0.1:8080) or empty, not {listen!r}")
    return NodeConfig(
        home=home,
        role=doc["role"],
        name=doc.get("name", home.name),
        genesis=doc.get("genesis", "genesis.toml"),
        key_file=doc.get("key_file", "node.key"),
        listen=doc.get("listen", "/ip4/127.0.0.1/tcp/0"),
        peers=peers,
        **sections,
    )


def _check_table(path: Path, section: str, table: dict[str, Any], where: str = "") -> None:
    schema = SCHEMA[section]
    where = where or (f"[{section}]" if section else "top level")
    for key, value in table.items():
        setting = schema.get(key)
        if setting is None:
            allowed = list(schema) + ([f"[{t}]" for t in SCHEMA if t and t != "peers"] + ["[[peers]]"]
                                        if not section else [])
            raise ConfigError(f"{path}: {where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
        problem = setting.problem(value)
        if problem:
            raise ConfigError(f"{path}: {where}: {key} {problem}")


def _commented(schema: dict[str, Setting], values: dict[str, Any]) -> list[str]:
    lines = []
    for key, setting in schema.items():
        if key in values:
            lines.append(f"{key} = {_toml_value(values[key])}  # {setting.help}")
        elif setting.default is not None:
            lines.append(f"# {key} = {_toml_value(setting.default)}  # {setting.help}")
        else:
            lines.append(f"# {key}: {setting.help}")
    return lines


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):  # an inline table: tomli_w would write a [section]
        return "{ " + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def parse_peer(text: str) -> Peer:
    """KEYHEX@MULTIADDR, as given on the command line."""
    try:
        key_hex, address = text.split("@", 1)
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise ConfigError(f"peer {text!r} is not KEYHEX@MULTIADDR") from None
    if len(key) != 32 or not address.startswith("/"):
        raise ConfigError(f"peer {text!r} is not KEYHEX@MULTIADDR")
    return Peer(key, address)
