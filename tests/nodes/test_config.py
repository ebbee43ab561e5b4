"""config.toml has one strict schema (a typo is a one-line error naming file, section, key and the allowed
keys, before anything opens a port), `stromledger config check`, the commented config `init` writes, the
one-line errors of `node run` for known conditions, and `genesis adopt` (re-genesis a home)."""

from __future__ import annotations

import socket

import pytest

from nodes.cli import main
from nodes.datagen.devnet_genesis import devnet_key, make_devnet_genesis
from nodes.home import ConfigError, load_config
from nodes.setup import init_home
from stromledger.registry import load_genesis
from stromledger.store import Store

START = 1_800_000_000


@pytest.fixture(scope="module")
def genesis(tmp_path_factory):
    return make_devnet_genesis(tmp_path_factory.mktemp("genesis"), 4, 2, 24, 10, 7, genesis_start=START,
                               chain_id="devnet-test-config")


@pytest.fixture
def home(tmp_path, genesis):
    return init_home(tmp_path / "val", "validator", genesis, key=devnet_key("validator-1"),
                     listen="/ip4/127.0.0.1/tcp/0").config


def edit(config, old: str, new: str) -> None:
    path = config.home / "config.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("section, line, message", [
    ("[consensus]", "propse_ms = 5000", "[consensus]: unknown key 'propse_ms'; allowed: propose_ms, "),
    ("[consensus]", "propose_ms = \"5s\"", "[consensus]: propose_ms must be a whole number >= 0, not '5s'"),
    ("[consensus]", "resend_ms = 0", "[consensus] resend_ms and answer_every must be > 0"),
    ("", "lisen = \"/ip4/127.0.0.1/tcp/1\"", "top level: unknown key 'lisen'; allowed: "),
])
def test_a_typo_is_one_line_naming_file_section_and_key(home, section, line, message):
    """Day one: a typo in [consensus] crashed the started node with a 60-line traceback."""
    if section:
        edit(home, f"{section}  # validator nodes only\n", f"{section}\n{line}\n")
    else:
        edit(home, "role =", f"{line}\nrole =")
    with pytest.raises(ConfigError) as e:
        load_config(home.home)
    text = str(e.value)
    assert "\n" not in text and str(home.home / "config.toml") in text and message in text


def test_a_typo_in_meter_point_is_no_longer_ignored(tmp_path, genesis):
    mp = init_home(tmp_path / "mp", "meter-point", genesis, key=devnet_key("meter-operator-1")).config
    edit(mp, 'feed = "inbox"', 'feed = "inbox"\nbatchsize = 100')
    with pytest.raises(ConfigError, match=r"\[meter_point\]: unknown key 'batchsize'; allowed: .*batch_size"):
        load_config(mp.home)
    edit(mp, "batchsize = 100", "")
    edit(mp, 'feed = "inbox"', 'feed = "inbx"')
    with pytest.raises(ConfigError, match="feed must be one of simulated, inbox, not 'inbx'"):
        load_config(mp.home)


def test_init_writes_every_setting_commented_and_it_reads_back(home):
    text = (home.home / "config.toml").read_text()
    assert "# propose_ms = 3000  # wait this long" in text and "# resend_ms = 2000" in text
    assert all(line.startswith("#") or "  # " in line or line.startswith("[") or not line
               for line in text.splitlines())
    assert load_config(home.home).to_toml() == text


def test_config_check(home, capsys):
    assert main(["config", "check", "--home", str(home.home)]) == 0
    out = capsys.readouterr().out
    assert "registered as a validator" in out and "chain devnet-test-config" in out
    edit(home, "[consensus]  # validator nodes only\n", "[consensus]\nprevote = 1\n")
    assert main(["config", "check", "--home", str(home.home)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'prevote'" in err


def test_node_run_explains_known_conditions_in_one_line(home, genesis, tmp_path, capsys):
    store = Store.open_home(home.home)  # a node that already runs on this home
    assert main(["node", "run", "--home", str(home.home)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use by another process" in err and "Stop that node first" in err
    store.close()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        edit(home, "/ip4/127.0.0.1/tcp/0", f"/ip4/127.0.0.1/tcp/{busy.getsockname()[1]}")
        assert main(["node", "run", "--home", str(home.home)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port is in use" in err and "change `listen`" in err

    other = init_home(tmp_path / "other", "validator", make_devnet_genesis(
        tmp_path / "g2", 4, 2, 24, 10, 7, genesis_start=START, chain_id="devnet-test-other"),
        key=devnet_key("validator-1")).config
    (other.data_dir / "ledger.sqlite3").unlink(missing_ok=True)
    s = Store.open_home(other.home)
    s.check_chain("devnet-test-config", load_genesis(home.genesis_path).hash)  # made with another genesis
    s.close()
    assert main(["node", "run", "--home", str(other.home)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "genesis adopt" in err
    assert main(["config", "check", "--home", str(other.home)]) == 1
    assert "belongs to chain 'devnet-test-config'" in capsys.readouterr().err

    assert main(["genesis", "adopt", "--home", str(other.home), "--genesis", str(genesis)]) == 0
    archives = list(other.home.glob("data.*"))
    assert len(archives) == 1 and (archives[0] / "data" / "ledger.sqlite3").exists()
    assert main(["config", "check", "--home", str(other.home)]) == 0


def test_config_check_refuses_a_retention_shorter_than_the_window(home, capsys):
    window = load_genesis(home.genesis_path).correction_window
    edit(home, "[history]  # validator nodes only\n", f"[history]\nretain_periods = {window}\n")
    assert main(["config", "check", "--home", str(home.home)]) == 1
    err = capsys.readouterr().err
    assert f"[history] retain_periods = {window} is shorter than the correction window ({window} periods)" in err
    edit(home, f"retain_periods = {window}\n", f"retain_periods = {window + 2}\n")
    assert main(["config", "check", "--home", str(home.home)]) == 0
