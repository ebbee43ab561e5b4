"""A market change concerns every chain: the same approved opening is committed by an area chain and by the
network chain, each judging it; the network settles the new group from the area's certified cells, and
refuses a checkpoint naming a group it has not opened itself."""

from __future__ import annotations

import pytest

from stromledger.cascade import NotEligible, make_batch
from stromledger.chains.checkpoint import Certified
from stromledger.chains.network import NetworkLedger, build_network_seal
from stromledger.registry import SUPPLIER_SWITCH, sign_change
from stromledger.registry.market import GROUP_OPENED, approve_change, market_change
from tests.cascade.tiny import A1, G, HOUSE1, key
from nodes.datagen.synthetic import eic_for
from stromledger.ids import make_market_partner_id

from stromledger.consensus.messages import CommitCertificate
from stromledger.export.network import network_export_files, verify_network_export
from stromledger.export.tables import REGISTRY_CHANGES_JSONL
from stromledger.registry import NETWORK

from .hierarchy import COMMITTEES, Area, certify, make_genesis
from .test_chains import readings

NEW_GROUP = eic_for("TESTBG", 9)
NETWORK_MEMBERS = COMMITTEES["network"]


def opening(genesis):
    c = market_change(GROUP_OPENED, G + 2, NEW_GROUP, name="New group", operator_key=key(NEW_GROUP).public,
                      market_partner_id=make_market_partner_id("990000000001"))
    return c.with_approvals(approve_change(key(n), genesis.root_chain_id, c) for n in NETWORK_MEMBERS[:3])


def run(genesis, network_opens: bool):
    """Area A1 commits the opening and, one height later, a switch of HOUSE1 into the group from G + 3; the
    network chain commits the opening too (or not). Returns (area, network ledger, A1's checkpoints, the
    network seals by height)."""
    opened = opening(genesis)
    a1, net = Area(genesis, A1), NetworkLedger(genesis)
    assert a1.ledger.admit(make_batch(key("validator-1"), a1.registry.chain_id, approved=[opened]), None).accepted
    if network_opens:
        assert net.admit(make_batch(key("validator-2"), net.registry.chain_id, approved=[opened]), None).accepted
    checkpoints, seals = [], {}
    for h in range(G, G + 4):
        if h == G + 1:
            switch = sign_change(key("validator-1"), genesis.root_chain_id, SUPPLIER_SWITCH, HOUSE1, G + 3,
                                 balancing_group=NEW_GROUP)
            assert a1.ledger.admit(make_batch(key("validator-1"), a1.registry.chain_id, changes=[switch]),
                                   None).accepted == 1
        readings(a1, h)
        cp = a1.seal()[0]
        checkpoints.append(cp)
        assert isinstance(net.add_checkpoint(cp), Certified)
        seals[h] = net.propose().seal_bytes
        net.commit(seals[h])
    return a1, net, checkpoints, seals


def test_the_network_settles_a_group_both_chains_opened():
    genesis = make_genesis()
    a1, net, _, seals = run(genesis, network_opens=True)
    result = net.state.results[G + 3]
    assert A1 not in result.absent
    group = next(g for g in result.groups if g.group == NEW_GROUP)
    assert group.wd == 1000  # HOUSE1's reading of G + 3, in its new group
    assert NEW_GROUP not in {g.group for g in net.state.results[G + 1].groups}  # not open before G + 2
    # the network export carries the opening: the genesis and it verify the result's groups
    cert = CommitCertificate.decode(certify(genesis, NETWORK, seals[G + 3], G + 3))
    cps = {cp.seal_hash: cp.data for cp in net.checkpoints.values()}
    files = network_export_files(genesis, seals[G + 3], cert, G + 3, cps, net.state.base.changes)
    assert REGISTRY_CHANGES_JSONL in files
    assert verify_network_export(files, genesis).ok
    bare = network_export_files(genesis, seals[G + 3], cert, G + 3, cps)  # without the change: not verifiable
    assert [p.reason for p in verify_network_export(bare, genesis).problems] == ["cross_level"]


def test_a_checkpoint_naming_a_group_the_network_never_opened_is_not_used():
    genesis = make_genesis()
    a1, net, checkpoints, _ = run(genesis, network_opens=False)
    assert A1 in net.state.results[G + 3].absent  # the area's cells name a group the network does not have
    assert A1 not in net.state.results[G + 2].absent
    last = net.add_checkpoint(checkpoints[-1])
    with pytest.raises(NotEligible, match=NEW_GROUP):
        build_network_seal(genesis, net.state, net.next_height, [], [last])
