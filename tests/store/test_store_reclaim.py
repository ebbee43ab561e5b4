"""The database gives space back: a flood of consensus messages, once truncated, does not leave the file
big (issue 19, finding 2: the file never shrank)."""

from stromledger.store import Store


def test_truncating_the_wal_gives_its_space_back(tmp_path):
    with Store(tmp_path / "ledger.sqlite3") as store:
        baseline = store.db.size()[0]
        for i in range(16):
            store.wal_append(7, "msg", bytes([i]) * (512 * 1024))
        assert store.db.size()[0] > baseline + 8 * 1024 * 1024
        assert store.wal_truncate_below(8) == 16
        assert store.db.size()[0] < baseline + 1024 * 1024
        assert store.wal_read(7) == []


def test_an_older_file_is_converted_to_incremental_vacuum(tmp_path):
    import sqlite3

    path = tmp_path / "ledger.sqlite3"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA auto_vacuum = NONE")
    conn.execute("VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    with Store(path) as store:
        with store.db.read() as c:
            assert c.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
