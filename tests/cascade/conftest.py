from __future__ import annotations

import pytest

from stromledger.cascade import Ledger
from stromledger.registry import Registry

from .tiny import Net, make_registry


@pytest.fixture
def registry() -> Registry:
    return make_registry()


@pytest.fixture
def net(registry: Registry) -> Net:
    return Net(registry)


@pytest.fixture
def ledger(registry: Registry) -> Ledger:
    return Ledger(registry)
