from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import export_chain as chain  # noqa: E402



@pytest.fixture(scope="session")
def genesis(tmp_path_factory):
    """(genesis file path, the registry loaded from it)."""
    return chain.write_registry(tmp_path_factory.mktemp("genesis"))


@pytest.fixture(scope="session")
def registry(genesis):
    return genesis[1]


@pytest.fixture(scope="session")
def commits(registry):
    return chain.run_chain(registry)


@pytest.fixture(scope="session")
def exports(registry, commits):
    """Every export of the chain by (period, version) but the last height's (not final yet)."""
    return chain.final_exports(registry, commits)


@pytest.fixture(scope="session")
def correction(exports):
    """The export of period G version 2 (committed at G+1): it has every kind of file, changes.csv too."""
    return exports[chain.G, 2]
