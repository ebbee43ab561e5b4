from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import export_chain as chain  # noqa: E402

from stromledger.export import build_export  # noqa: E402


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
    """Every export of the chain by (period, version) but the last height's (not final yet): built from the
    seals, the certificates the following seals carry, and the rows."""
    from stromledger.cascade.messages import PeriodSeal
    from stromledger.consensus.messages import CommitCertificate

    out = {}
    latest: dict[int, list] = {}
    for c, following in zip(commits, commits[1:]):
        cert = CommitCertificate.decode(PeriodSeal.decode(following.seal_bytes).last_commit)
        for r in PeriodSeal.decode(c.seal_bytes).results:
            out[r.period, r.version] = build_export(registry, c.seal_bytes, cert, r.period, c.rows[r.period],
                                                    latest.get(r.period))
        latest.update(c.rows)
    return out


@pytest.fixture(scope="session")
def correction(exports):
    """The export of period G version 2 (committed at G+1): it has every kind of file, changes.csv too."""
    return exports[chain.G, 2]
