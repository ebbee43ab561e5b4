"""CLI consistency: one placeholder per kind of value, global options before or after the command and
validated, a description for every command, the exit-code table, one devnet default period length, and
progress on long commands."""

from __future__ import annotations

import argparse
import io
import logging

import pytest

from nodes.cli import EXIT_CODES, build_parser, main, subparsers

ALLOWED = {"DIR", "FILE", "PATH", "N", "SECONDS", "LEVEL", "CSV", "MULTIADDR", "KEYHEX@MULTIADDR", "EIC,...",
           "F", "K", "S", "H", "MS", "B", "N,N", "NUMBER", "KIND", "V", "PERIOD", "UTC", "NAME"}


def every_parser(parser=None, path=("stromledger",)):
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, path + (name,))


def test_placeholders_are_the_same_everywhere():
    """Day one: --home DIR, --home HOME, --out OUT."""
    seen = {}
    for path, parser in every_parser():
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.choices or action.dest == "help":
                continue
            metavar = action.metavar or action.dest.upper()
            seen[" ".join(path) + " " + action.option_strings[-1]] = metavar
    assert {k: v for k, v in seen.items() if k.endswith(" --home")} and \
        all(v == "DIR" for k, v in seen.items() if k.endswith(" --home"))
    assert [f"{k} {v}" for k, v in seen.items() if v not in ALLOWED] == []


def test_every_command_is_described_and_names_its_exit_status():
    for path, parser in every_parser():
        if parser._subparsers is not None and len(path) > 1:
            continue  # a group of actions (keys, node, ...): its actions are checked
        assert parser.description, path
        text = " ".join(parser.format_help().split())
        assert "Exit status" in text or "exit status" in text.lower(), path
    assert "130" in EXIT_CODES and "Exit status" in build_parser().format_help()


def test_log_level_is_accepted_anywhere_and_checked(tmp_path, capsys):
    root = logging.getLogger()
    before = root.level
    try:
        root.handlers.clear()
        assert main(["status", "--home", str(tmp_path), "--log-level", "warning"]) == 2  # not a home, parsed
        assert root.level == logging.WARNING
    finally:
        root.setLevel(before)
    with pytest.raises(SystemExit) as e:
        main(["--log-level", "TRACE", "status", "--home", str(tmp_path)])
    assert e.value.code == 2 and "'TRACE' is not one of DEBUG, INFO, WARNING, ERROR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["status", "--home", str(tmp_path), "--log-level", "trace"])


def test_devnet_commands_share_the_default_period_length():
    parser = build_parser()
    genesis = parser.parse_args(["genesis", "devnet", "--dir", "x"])
    devnet = parser.parse_args(["devnet", "--dir", "x"])
    assert genesis.period_seconds == devnet.period_seconds


def test_sim_shows_progress(monkeypatch):
    import contextlib

    import nodes.progress

    calls = []

    @contextlib.contextmanager
    def recording(description, total=None, console=None):
        class Bar:
            def advance(self, steps=1):
                calls.append(steps)
        yield Bar()
        calls.append(("total", total))

    monkeypatch.setattr(nodes.progress, "progress_bar", recording)
    assert main(["sim", "--seeds", "3", "--heights", "1"]) == 0
    assert calls == [1, 1, 1, ("total", 3)]


def test_progress_bar_counts_on_a_terminal():
    from rich.console import Console

    from nodes.progress import progress_bar

    out = io.StringIO()
    with progress_bar("seeds", total=3, console=Console(file=out, force_terminal=True, width=100)) as bar:
        for _ in range(3):
            bar.advance()
        bar.step("last step")
    assert "last step" in out.getvalue()


def test_subparsers_walks_nested_actions():
    names = {p.prog for p in subparsers(build_parser())}
    assert "stromledger keys" in names and "stromledger batch" in names
