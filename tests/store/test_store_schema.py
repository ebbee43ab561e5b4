import os
import sqlite3

import pytest

from stromledger.store import NotALedgerDatabase, SchemaTooNew, Store, StoreError, StoreLocked, schema


LATEST = schema.LATEST


def raw(path):
    return sqlite3.connect(path, isolation_level=None)


def test_fresh_database_is_at_the_latest_version_in_wal_mode(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with Store(path) as s:
        assert s.db.version == schema.LATEST == 2
        assert s.integrity_check() == []
        with s.db.read() as conn:
            assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn = raw(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert conn.execute("SELECT version, description FROM schema_version").fetchall() == [
        (m.version, m.description) for m in schema.MIGRATIONS]
    conn.close()


def test_reopening_does_not_migrate_again(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    with Store(path) as s:
        s.set_meta("k", b"v")
    with Store(path) as s:
        assert s.get_meta("k") == b"v" and s.db.version == schema.LATEST


def test_newer_database_is_refused_untouched(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Store(path).close()
    conn = raw(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 'from the future')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(SchemaTooNew, match="version 99"):
        Store(path)
    assert path.read_bytes() == before
    conn = raw(path)  # the refused open released everything: a downgrade tool can fix the file
    conn.execute("DELETE FROM schema_version WHERE version = 99")
    conn.close()
    Store(path).close()


def test_forward_migration_keeps_data(tmp_path):
    conn = raw(tmp_path / "db")
    assert schema.migrate(conn) == LATEST
    conn.execute("INSERT INTO meta VALUES ('k', x'01')")
    v2 = schema.Migration(LATEST + 1, "add a column", ("ALTER TABLE meta ADD COLUMN note TEXT",
                                                       "UPDATE meta SET note = 'migrated'"))
    assert schema.migrate(conn, schema.MIGRATIONS + (v2,)) == LATEST + 1
    assert conn.execute("SELECT key, value, note FROM meta").fetchall() == [("k", b"\x01", "migrated")]
    assert schema.current_version(conn) == LATEST + 1
    assert schema.migrate(conn, schema.MIGRATIONS + (v2,)) == LATEST + 1  # nothing pending
    with pytest.raises(SchemaTooNew):
        schema.migrate(conn)


def test_failed_migration_leaves_the_database_as_it_was(tmp_path):
    conn = raw(tmp_path / "db")
    schema.migrate(conn)
    v2 = schema.Migration(LATEST + 1, "good", ("CREATE TABLE extra (x)",))
    v3 = schema.Migration(LATEST + 2, "broken", ("THIS IS NOT SQL",))
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(conn, schema.MIGRATIONS + (v2, v3))
    assert schema.current_version(conn) == LATEST
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'extra'").fetchone()[0] == 0


def test_migration_breaking_foreign_keys_is_refused(tmp_path):
    conn = raw(tmp_path / "db")
    schema.migrate(conn)
    bad = schema.Migration(LATEST + 1, "orphan", ("INSERT INTO states (height, data) VALUES (5, x'00')",))
    with pytest.raises(StoreError, match="foreign keys"):
        schema.migrate(conn, schema.MIGRATIONS + (bad,))
    assert schema.current_version(conn) == LATEST


def test_not_a_database(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is a text file, not a ledger" * 100)
    with pytest.raises(NotALedgerDatabase):
        Store(path)


def test_another_programs_database(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    conn = raw(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(NotALedgerDatabase, match="another program"):
        Store(path)


def test_second_opener_is_locked_out(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    first = Store(path)
    with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        Store(path)
    first.close()
    Store(path).close()


def test_a_version_1_database_gains_the_history_tables(tmp_path):
    conn = raw(tmp_path / "db")
    assert schema.migrate(conn, schema.MIGRATIONS[:1]) == 1
    conn.execute("INSERT INTO meta VALUES ('k', x'01')")
    assert schema.migrate(conn) == LATEST
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"period_index", "batch_progress"} <= names
    assert conn.execute("SELECT value FROM meta WHERE key = 'k'").fetchone()[0] == b"\x01"
