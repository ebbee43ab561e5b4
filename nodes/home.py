"""A node's home directory and its config.toml.

    <home>/config.toml     what this node is and whom it talks to (below)
    <home>/node.key        its Ed25519 key (mode 0600), also its libp2p identity
    <home>/genesis.toml    the chain's genesis (and the meter-point file it pins)
    <home>/data/           ledger.sqlite3, exports/, and the status.json a running node keeps current

config.toml:

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

    [api]                           # the operator HTTP API, /metrics and the dashboard (nodes/api/)
    listen = "127.0.0.1:0"          # HOST:PORT; port 0 picks a free port (api_url in data/status.json); "" = off
    token = ""                      # non-empty: every request needs `Authorization: Bearer <token>`

    [log]
    format = "text"                 # text | json (one JSON object per line); --log-format overrides it
    [log.levels]                    # per logger; libp2p and multiaddr stay at WARNING unless named here
    "stromledger.validator" = "DEBUG"
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

ROLES = ("validator", "balancing-group", "meter-point")


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
    api: dict[str, str] = dataclasses.field(default_factory=lambda: dict(API_DEFAULTS))
    log: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(LOG_DEFAULTS))

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
        doc: dict[str, Any] = {
            "role": self.role,
            "name": self.name,
            "genesis": self.genesis,
            "key_file": self.key_file,
            "listen": self.listen,
        }
        if self.peers:
            doc["peers"] = [{"key": p.key.hex(), "address": p.address} for p in self.peers]
        for section in ("consensus", "meter_point", "balancing_group"):
            if getattr(self, section):
                doc[section] = getattr(self, section)
        for section, defaults in (("api", API_DEFAULTS), ("log", LOG_DEFAULTS)):
            if getattr(self, section) != defaults:
                doc[section] = getattr(self, section)
        return tomli_w.dumps(doc)

    def save(self) -> Path:
        path = self.home / "config.toml"
        path.write_text(self.to_toml())
        return path


def load_config(home: str | Path) -> NodeConfig:
    home = Path(home)
    path = home / "config.toml"
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found: create the home with `stromledger init`") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None
    known = {"role", "name", "genesis", "key_file", "listen", "peers", "consensus", "meter_point", "balancing_group",
             "api", "log"}
    unknown = set(doc) - known
    if unknown:
        raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
    role = doc.get("role")
    if role not in ROLES:
        raise ConfigError(f"{path}: role must be one of {', '.join(ROLES)}, got {role!r}")
    peers = []
    for i, p in enumerate(doc.get("peers", [])):
        try:
            key = bytes.fromhex(p["key"])
            address = str(p["address"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{path}: peers[{i}] needs key (hex) and address (multiaddr)") from None
        if len(key) != 32:
            raise ConfigError(f"{path}: peers[{i}].key is not a 32-byte Ed25519 public key")
        peers.append(Peer(key, address))
    consensus = doc.get("consensus", {})
    for k, v in consensus.items():
        if type(v) is not int:
            raise ConfigError(f"{path}: consensus.{k} must be an integer (milliseconds)")
    return NodeConfig(
        home=home,
        role=role,
        name=str(doc.get("name", home.name)),
        genesis=str(doc.get("genesis", "genesis.toml")),
        key_file=str(doc.get("key_file", "node.key")),
        listen=str(doc.get("listen", "/ip4/127.0.0.1/tcp/0")),
        peers=peers,
        consensus=dict(consensus),
        meter_point=dict(doc.get("meter_point", {})),
        balancing_group=dict(doc.get("balancing_group", {})),
        api=api_section(path, doc.get("api", {})),
        log=log_section(path, doc.get("log", {})),
    )


# -- the operator sections: [api] and [log] (issue 14) ------------------------------------------------------------

API_DEFAULTS = {"listen": "127.0.0.1:0", "token": ""}
LOG_DEFAULTS: dict[str, Any] = {"format": "text", "levels": {}}
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_table(path: Path, name: str, section: Any, known: dict[str, Any]) -> None:
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    unknown = set(section) - set(known)
    if unknown:
        raise ConfigError(f"{path}: unknown settings in [{name}]: {sorted(unknown)}")


def api_section(path: Path, section: Any) -> dict[str, str]:
    """[api]: listen = "HOST:PORT" (port 0 = any free port, "" = no API), token = "" (no bearer token)."""
    _check_table(path, "api", section, API_DEFAULTS)
    out = {**API_DEFAULTS, **section}
    for key, value in out.items():
        if not isinstance(value, str):
            raise ConfigError(f"{path}: api.{key} must be a string")
    if out["listen"]:
        host, _, port = out["listen"].rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{path}: api.listen must be HOST:PORT (e.g. 127.0.0.1:8080), got {out['listen']!r}")
    return out


def log_section(path: Path, section: Any) -> dict[str, Any]:
    """[log]: format = "text" | "json", and [log.levels] mapping logger names to levels."""
    _check_table(path, "log", section, LOG_DEFAULTS)
    fmt = section.get("format", LOG_DEFAULTS["format"])
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"{path}: log.format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")
    levels = section.get("levels", {})
    if not isinstance(levels, dict):
        raise ConfigError(f"{path}: [log.levels] must be a table of logger = \"LEVEL\"")
    for name, level in levels.items():
        if not isinstance(level, str) or level.upper() not in LOG_LEVELS:
            raise ConfigError(f"{path}: log.levels.{name} must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return {"format": fmt, "levels": {name: level.upper() for name, level in levels.items()}}


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
