"""`stromledger sim`: a table, exit 0 without violations, 1 with, 2 when refusing unsafe arguments."""

from nodes.cli import main


def test_clean_runs_exit_zero(capsys):
    assert main(["sim", "--validators", "4", "--byzantine", "1", "--seeds", "3", "--faults", "drop"]) == 0
    out = capsys.readouterr().out
    assert "heights decided by all honest" in out and "18 / 18" in out
    assert "violations: agreement" in out


def test_refuses_byzantine_beyond_the_bound(capsys):
    assert main(["sim", "--validators", "4", "--byzantine", "2", "--seeds", "1"]) == 2
    assert "--allow-unsafe" in capsys.readouterr().out


def test_unsafe_runs_find_violations_and_exit_nonzero(capsys):
    args = ["sim", "--validators", "4", "--byzantine", "2", "--seeds", "4", "--byzantine-mode", "split",
            "--allow-unsafe"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "agreement at height" in out


def test_hierarchy_runs_with_areas(capsys):
    assert main(["sim", "--areas", "2", "--byzantine", "1", "--seeds", "2", "--heights", "3"]) == 0
    out = capsys.readouterr().out
    assert "violations: cross_level" in out and "settled as absent" in out
    args = ["sim", "--areas", "2", "--byzantine", "2", "--seeds", "1", "--heights", "2", "--stalled", "0",
            "--byzantine-mode", "split", "--allow-unsafe"]
    assert main(args) == 1
    assert "cross_level" in capsys.readouterr().out


def test_byzantine_strategies_are_selectable(capsys):
    args = ["sim", "--validators", "4", "--byzantine", "1", "--seeds", "2", "--byzantine-strategy",
            "selective-precommit"]
    assert main(args) == 0
    assert "(selective-precommit)" in capsys.readouterr().out
    assert main(["sim", "--validators", "4", "--byzantine", "2", "--seeds", "3", "--byzantine-strategy",
                 "selective-precommit", "--allow-unsafe"]) == 1
    assert "agreement at height" in capsys.readouterr().out
