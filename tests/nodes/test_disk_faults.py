"""A full or read-only disk stops `stromledger node run` with one line naming the path and the cause (issue 18,
D5), after the sign guard refused to record (so nothing was signed), never with an ExceptionGroup traceback."""

from __future__ import annotations

import errno
import time

import pytest

from nodes.cli import main
from nodes.commands.node import known_failure
from nodes.datagen.devnet_genesis import devnet_key, devnet_registry, make_devnet_genesis
from nodes.setup import init_home
from stromledger.store import Store


def test_a_read_only_store_stops_the_running_validator_in_one_line(tmp_path, monkeypatch, capsys):
    """Day one: the validator died with an ExceptionGroup traceback of the consensus loop."""
    genesis = make_devnet_genesis(tmp_path / "genesis", 4, 2, 24, 10, 7, genesis_start=int(time.time()) - 300,
                                  chain_id="devnet-test-disk")
    home = init_home(tmp_path / "val", "validator", genesis, key=devnet_key("validator-1"),
                     listen="/ip4/127.0.0.1/tcp/0", consensus={"propose_ms": 200}).config
    opened = Store.check_chain

    def then_read_only(store, *args):
        opened(store, *args)  # the store opens and is checked; from then on every write fails, as on a disk
        store.db._conn.execute("PRAGMA query_only = ON")  # remounted read-only

    monkeypatch.setattr(Store, "check_chain", then_read_only)
    assert main(["node", "run", "--home", str(home.home)]) == 1  # the first height's first signature fails
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("cannot run the node"))
    assert "Traceback" not in err and "ExceptionGroup" not in err
    assert "attempt to write a readonly database" in line and ".sqlite3: " in line and "stopped: cannot write" in line
    monkeypatch.undo()
    for path in (home.data_dir / "chains").glob("*.sqlite3"):
        with Store(path) as store:
            assert store.sign_guard.last() is None  # the guard's write failed: nothing was signed


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EROFS, "Read-only file system"),
                                         (errno.EACCES, "Permission denied")])
def test_a_file_the_node_cannot_write_is_one_line_naming_it(code, cause):
    status = OSError(code, cause, "/srv/node/data/status.json.tmp")
    nested = BaseExceptionGroup("nursery", [BaseExceptionGroup("chains", [status])])
    assert known_failure(nested, None) == (f"stopped: cannot write /srv/node/data/status.json.tmp: {cause}. Free "
                                           f"space or make the data directory writable, then start the node again "
                                           f"(it resumes where it stopped)")
    assert known_failure(OSError(errno.ECONNRESET, "reset"), None) is None  # not a disk: stays loud


@pytest.mark.trio
async def test_a_wal_write_that_fails_in_a_network_handler_stops_the_validator(tmp_path):
    """A handler's errors are only logged by the network layer: a disk fault there must still end the node."""
    import logging

    import trio

    from nodes.disk import disk_problem
    from nodes.home import NodeConfig
    from nodes.runtime import NodeContext
    from nodes.validator import Validator
    from stromledger.consensus.messages import Prevote, sign_vote
    from stromledger.net import MemoryHub
    from stromledger.store import StoreDiskError

    registry = devnet_registry(4, 2, 10, 60, genesis_start=int(time.time()) + 3600, chain_id="test-disk-wal")
    key, other = devnet_key("validator-1"), devnet_key("validator-2")
    store = Store(tmp_path / "ledger.sqlite3")
    async with MemoryHub() as hub:
        ctx = NodeContext(config=NodeConfig(home=tmp_path, role="validator", name="validator-1"), key=key,
                          registry=registry, log=logging.getLogger("test.disk"))
        v = Validator(ctx, store, hub.endpoint(key.public), write_exports=False)
        vote = sign_vote(Prevote, other, registry.chain_id, v.machine.height, 0, bytes(32)).encode()
        with store.db.read() as conn:
            conn.execute("PRAGMA query_only = ON")  # the disk turns read-only under the running node
        with pytest.raises(BaseExceptionGroup) as stopped, trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(v.serve)
                with pytest.raises(StoreDiskError):
                    await v._on_consensus(other.public, vote)  # what the network layer calls, and only logs
        leaves = [e for e in _leaves(stopped.value)]
        assert [disk_problem(e) for e in leaves] == [f"{store.path}: attempt to write a readonly database"]
    store.close()


def _leaves(group: BaseException):
    if isinstance(group, BaseExceptionGroup):
        for e in group.exceptions:
            yield from _leaves(e)
    else:
        yield group
