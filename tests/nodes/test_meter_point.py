"""The meter-point light node against a stand-in validator on an in-memory network, time driven by hand."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from nodes.commands.submit import InputError, batches_of, meter_key_loader, read_readings_csv, send_all
from nodes.feed import InboxFeed
from nodes.meter_point import MeterPointNode, own_meters
from stromledger.cascade import Batch, SettledReading, make_batch
from nodes.datagen.devnet_genesis import devnet_key, meter_label
from stromledger.keys import write_key_file
from stromledger.net import MemoryHub
from stromledger.store import Store
from test_light import FEED, G, OPERATORS, PS, REG, VKEYS, Clock, StandIn, certify, make_ctx

MP = {"feed": "simulated", "seed": 1, "batch_size": 8}


def open_node(hub, tmp_path, clock, name="mop1", **cfg):
    ctx = make_ctx(tmp_path / name, "meter-point", "meter-operator-1", meter_point={**MP, **cfg})
    store = Store.open_home(ctx.config.home)
    store.check_chain(REG.chain_id, REG.hash)
    hub.detach(ctx.key.public)  # a restarted node takes its key's place on the hub again
    return MeterPointNode(ctx, store, hub.endpoint(ctx.key.public), clock=clock)


async def settle(node: MeterPointNode, v: StandIn, clock: Clock, period: int):
    """Submit `period` shortly after it ends, seal it after gate closure, verify."""
    clock.t = (period + 1) * PS + 0.5
    assert node.produce_due() == [period]
    await node.flush()
    clock.t = (period + 1) * PS + 2.5  # gate closure passed
    assert await node.verify_due() == []  # not committed yet
    v.seal()
    clock.t += 1
    return await node.verify_due()


async def test_light_node_verifies_its_readings_after_commit(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock(G * PS - 5)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        node = open_node(hub, tmp_path, clock)
        assert node.meters == own_meters(REG, OPERATORS[0].public) and len(node.meters) == 20
        assert node.produce_due() == []  # before genesis: nothing due
        checks = await settle(node, v, clock, G)
        checks += await settle(node, v, clock, G + 1)
        assert [(c.period, c.ok, len(c.verified)) for c in checks] == [(G, True, 20), (G + 1, True, 20)]
        registers = [m for m in node.meters if m in node.feed.register_meters]
        assert registers  # the register path is exercised: baseline at G, energy at G + 1
        s = node.status()
        assert s["meters"] == 20 and s["pending"] == 0
        assert s["submitted"] == {"periods": 2, "readings": 40, "batches": 6}  # batches of 8
        assert s["receipts"] == {"accepted": 40, "duplicates": 0, "rejected": {}}
        assert s["verified"] == {"periods": 2, "readings": 40, "failures": 0, "late": 0, "waiting": 0,
                                 "last_period": REG.period(G + 1).iso()}
        node.ctx.write_status(s)
        assert json.loads((tmp_path / "mop1" / "data" / "status.json").read_text())["verified"]["readings"] == 40
        node.store.close()


@pytest.mark.parametrize("case", ["tampered_leaf", "wrong_certificate", "missing_reading"])
async def test_a_validator_that_lies_is_caught(tmp_path, caplog, case):
    async with MemoryHub() as hub:
        clock = Clock(G * PS)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        node = open_node(hub, tmp_path, clock)
        victim = node.meters[4]
        if case == "tampered_leaf":
            def tamper(reply):
                proofs = []
                for p in reply.proofs:
                    if p.malo_id == victim:
                        leaf = SettledReading.decode(p.leaf)
                        p = dataclasses.replace(p, leaf=dataclasses.replace(leaf, export_wh=leaf.export_wh + 7).encode())
                    proofs.append(p)
                return dataclasses.replace(reply, proofs=tuple(proofs))
            v.tamper_light = tamper
        elif case == "wrong_certificate":
            v.tamper_light = lambda r: dataclasses.replace(r, certificate=certify(r.height, r.certificate.value_hash,
                                                                                   signers=(0, 3, 3)))
        else:
            v.forget = True  # receipts, but nothing settled
        with caplog.at_level(logging.WARNING):
            checks = await settle(node, v, clock, G)
            if case == "missing_reading":  # substitutes: a later version may still settle them, until the
                assert checks[0].failures == [] and len(checks[0].waiting) == len(node.meters)  # window ends
                assert node.status()["verified"]["waiting"] == len(node.meters)
                assert node.status()["verified"]["failures"] == 0
                for _ in range(REG.correction_window):
                    v.seal()
                clock.t += REG.correction_window * PS
                checks = await node.verify_due()
        failed = {f.malo_id for f in checks[0].failures}
        if case == "tampered_leaf":
            assert failed == {victim}
        else:
            assert failed == set(node.meters)
        assert node.status()["verified"]["failures"] == len(failed)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(victim in e and "VERIFICATION FAILED" in e for e in errors)
        node.store.close()


async def test_outbox_survives_a_restart_and_falls_back_to_the_next_validator(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)
        hub.endpoint(VKEYS[0].public)
        hub.detach(VKEYS[0].public)  # the node's own validator is down; the second one is not up yet
        node = open_node(hub, tmp_path, clock)
        assert node.produce_due() == [G]
        assert await node.flush() == [] and node.status()["pending"] == 3
        assert "dial_failed" in node.status()["last_submit_error"]  # the reasons are shown
        assert "unknown_peer" in node.status()["last_submit_error"]
        node.store.close()  # the node stops with three batches unsent

        v = StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        node = open_node(hub, tmp_path, clock)  # restart
        assert node.status()["pending"] == 3 and node.produce_due() == []  # nothing produced twice
        delivered = await node.flush(force=True)
        assert [d.validator for d in delivered] == [VKEYS[1].public] * 3
        assert node.status()["pending"] == 0 and node.status()["receipts"]["accepted"] == 20
        clock.t = (G + 1) * PS + 2.5
        v.seal()
        checks = await node.verify_due()
        assert checks[0].ok and len(checks[0].verified) == 20
        node.store.close()


async def test_outbox_waits_for_a_lagging_validator_and_drops_what_cannot_fit(tmp_path, caplog):
    async with MemoryHub(max_frame=4000) as hub:
        clock = Clock((G + 1) * PS + 0.5)
        behind = Clock(G * PS - 1)  # the validator's clock is still in the period before genesis
        StandIn(hub.endpoint(VKEYS[0].public), behind)
        node = open_node(hub, tmp_path, clock)
        node.produce_due()
        assert await node.flush() == [] and node.status()["pending"] == 3  # "future period": kept, retried
        behind.t = clock.t
        assert len(await node.flush(force=True)) == 3
        node.outbox.add(make_batch(OPERATORS[0], REG.chain_id, FEED.readings(G, REG.malo_order)))  # one frame of this hub holds 4000 bytes: this batch never fits
        with caplog.at_level(logging.ERROR):
            assert await node.flush(force=True) == []
        assert node.status()["pending"] == 0 and any("split it" in r.getMessage() for r in caplog.records)
        node.store.close()


async def test_inbox_batches_are_sent_and_rejections_counted(tmp_path, caplog):
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        node = open_node(hub, tmp_path, clock, feed="inbox")
        assert isinstance(node.feed, InboxFeed)
        mine = node.meters[:4]
        good = FEED.readings(G, mine[:3])
        forged = dataclasses.replace(FEED.readings(G, mine[3:])[0], import_wh=1)  # signature no longer matches
        unsigned = Batch(REG.chain_id, OPERATORS[0].public, tuple(good) + (forged,), (), (), (), bytes(64))
        (node.feed.directory / "G.batch").write_bytes(unsigned.encode())
        assert node.take_inbox() == 1 and not (node.feed.sent_dir / "G.batch").exists()  # waits for its answer
        with caplog.at_level(logging.WARNING):
            await node.flush()
        assert (node.feed.sent_dir / "G.batch").exists()
        assert node.status()["receipts"]["rejected"] == {"bad_signature": 1}
        assert any(mine[3] in r.getMessage() and "bad_signature" in r.getMessage() for r in caplog.records)
        clock.t = (G + 1) * PS + 2.5
        v.seal()
        checks = await node.verify_due()  # the rejected reading is not expected in the seal
        assert checks[0].ok and checks[0].verified == sorted(mine[:3])
        node.store.close()


async def test_inbox_holds_future_batches_retries_and_keeps_only_final_refusals(tmp_path):
    """Day one: a file for the coming period was sent at once, refused as future, and lost in sent/."""
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)  # period G has ended, G + 1 runs
        behind = Clock(G * PS - 1)  # the validator's clock is still before G
        StandIn(hub.endpoint(VKEYS[0].public), behind)
        node = open_node(hub, tmp_path, clock, feed="inbox")
        mine = node.meters[:3]
        inbox = node.feed
        (inbox.directory / "next.batch").write_bytes(make_batch(OPERATORS[0], REG.chain_id,
                                                                FEED.readings(G + 1, mine)).encode())
        (inbox.directory / "now.batch").write_bytes(make_batch(OPERATORS[0], REG.chain_id,
                                                               FEED.readings(G, mine)).encode())
        stranger = make_batch(devnet_key("nobody"), REG.chain_id, FEED.readings(G, mine))  # no registered submitter
        (inbox.directory / "stranger.batch").write_bytes(stranger.encode())
        assert node.take_inbox() == 2  # now + stranger; next waits until G + 1 has ended
        assert [p.name for p in inbox.pending()] == ["next.batch", "now.batch", "stranger.batch"]
        assert node.status()["inbox_held"] == 1
        await node.flush()  # the lagging validator calls "now" future: kept and retried; stranger is final
        assert [p.name for p in inbox.pending()] == ["next.batch", "now.batch"]
        assert (inbox.refused_dir / "stranger.batch").exists()
        assert "wrong_signer" in (inbox.refused_dir / "stranger.batch.reason").read_text()
        assert node.status()["retrying"] == 1 and node.status()["pending"] == 1
        behind.t = clock.t = (G + 2) * PS + 0.5  # both periods have ended, the validator's clock caught up
        assert node.take_inbox() == 1
        await node.flush(force=True)
        assert inbox.pending() == [] and sorted(p.name for p in inbox.sent_dir.iterdir()) == ["next.batch", "now.batch"]
        assert node.status()["receipts"]["accepted"] == 6 and node.status()["retrying"] == 0
        node.store.close()


async def test_a_future_refusal_becomes_final_once_its_period_cannot_settle(tmp_path):
    async with MemoryHub() as hub:
        clock = Clock((G + REG.correction_window + 3) * PS)  # G is past the correction window by our clock
        StandIn(hub.endpoint(VKEYS[0].public), Clock(G * PS - 1))  # a validator whose clock is far behind
        node = open_node(hub, tmp_path, clock, feed="inbox")
        (node.feed.directory / "old.batch").write_bytes(
            make_batch(OPERATORS[0], REG.chain_id, FEED.readings(G, node.meters[:2])).encode())
        assert node.take_inbox() == 1
        await node.flush()
        assert node.status()["retrying"] == 0 and node.feed.pending() == []
        assert "period_in_future" in (node.feed.refused_dir / "old.batch.reason").read_text()
        node.store.close()


async def test_submit_command_signs_a_csv_and_prints_the_receipt(tmp_path, capsys):
    meters = own_meters(REG, OPERATORS[0].public)[:3]
    keys = tmp_path / "keys"
    keys.mkdir()
    for m in meters:
        write_key_file(keys / f"{m}.key", devnet_key(meter_label(m)))
    csv = tmp_path / "readings.csv"
    start = REG.period(G).iso().split("/")[0]
    csv.write_text("malo_id,period,version,import_wh,export_wh,register\n"
                   f"{meters[0]},{start},1,12,0,false\n"
                   f"{meters[1]},{G},1,5,3,\n"
                   f"{meters[2]},{REG.period(G).iso()},1,{10**9},0,false\n")  # above max power
    readings = read_readings_csv(csv, REG, meter_key_loader(keys, REG))
    assert [r.period for r in readings] == [G, G, G] and readings[0].import_wh == 12
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)
        StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        net = hub.endpoint(OPERATORS[0].public)
        batches = [("readings.csv", b) for b in batches_of(readings, OPERATORS[0], REG.chain_id, 5000)]
        code = await send_all(net, [VKEYS[0].public, VKEYS[1].public], REG.chain_id, batches, timeout=1.0)
    out = capsys.readouterr().out
    assert code == 1  # one rejection
    assert "2 accepted, 0 duplicates, 1 rejected" in out and f"MaLo {meters[2]}" in out and "above_max_power" in out

    bad = tmp_path / "bad.csv"
    bad.write_text(f"malo_id,period,import_wh,export_wh\n{meters[0]},{G},12,0\n{meters[1]},2026-01-01T00:00:05Z,1,0\n")
    with pytest.raises(InputError, match="line 3"):
        read_readings_csv(bad, REG, meter_key_loader(keys, REG))
    with pytest.raises(InputError, match="not the key"):
        write_key_file(keys / "other.key", devnet_key("someone"))
        (keys / f"{meters[0]}.key").unlink()
        (keys / "other.key").rename(keys / f"{meters[0]}.key")
        read_readings_csv(csv, REG, meter_key_loader(keys, REG))


def test_submit_help_is_there(capsys):
    from nodes.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["submit", "--help"])
    out = capsys.readouterr().out
    assert "--readings" in out and "--meter-keys" in out and "malo_id" in out and "Exit status" in out



def test_submit_batch_files_are_kept_signed_or_signed_by_the_node(tmp_path):
    from stromledger.cascade import Batch, make_batch, sign_reading
    from stromledger.cascade.checks import NO_SIG
    from stromledger.crypto import SigningKey

    from nodes.commands.submit import load_batch_file

    key, meter = SigningKey.from_label("operator"), SigningKey.from_label("meter")
    reading = sign_reading(meter, "chain-a", "41373559241", 5, 3, 0)
    signed = make_batch(key, "chain-a", [reading]).encode()
    (tmp_path / "signed.batch").write_bytes(signed)
    assert load_batch_file(tmp_path / "signed.batch", key, "chain-a") == signed
    unsigned = Batch("chain-a", key.public, (reading,), (), (), (), NO_SIG).encode()
    (tmp_path / "unsigned.batch").write_bytes(unsigned)
    assert load_batch_file(tmp_path / "unsigned.batch", key, "chain-a") == signed  # Ed25519 is deterministic
    with pytest.raises(InputError, match="chain"):
        load_batch_file(tmp_path / "signed.batch", key, "chain-b")
    (tmp_path / "junk.batch").write_bytes(b"junk")
    with pytest.raises(InputError, match="canonical"):
        load_batch_file(tmp_path / "junk.batch", key, "chain-a")


async def test_a_validator_that_says_not_committed_is_not_the_last_word(tmp_path, caplog):
    """Issue 18: a validator that could not apply a height answered not_committed for good, and the light node
    stopped asking. Once the period is overdue (gate closure plus the grace), it asks the next validator."""
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)
        stuck = StandIn(hub.endpoint(VKEYS[0].public), clock)
        other = StandIn(hub.endpoint(VKEYS[1].public), clock, key=VKEYS[1])
        node = open_node(hub, tmp_path, clock)
        node.produce_due()
        await node.flush()
        for data in stuck.batches.values():  # pushed to the other validator, which settles the period
            other.admit(data)
        clock.t = (G + 1) * PS + REG.params.grace_seconds + 0.5
        other.seal()
        assert await node.verify_due() == []  # just after gate closure: not committed yet at its validator
        clock.t += REG.params.grace_seconds
        node.next_poll = 0
        with caplog.at_level(logging.WARNING):
            [check] = await node.verify_due()
        assert check.ok and len(check.verified) == 20 and node.status()["validators_behind"] >= 1
        assert any("said it is not committed, another validator has it" in r.getMessage() for r in caplog.records)
        node.store.close()


async def test_a_substitute_corrected_later_is_a_delay_not_a_failure(tmp_path, caplog):
    """Issue 18: version 1 of a period held substitutes although the readings had arrived; version 2 settled
    them a period later, and the light node had logged 20 "VERIFICATION FAILED" and a failure count that never
    cleared. Now it waits, re-checks later versions and records "settled late in version 2"."""
    async with MemoryHub() as hub:
        clock = Clock((G + 1) * PS + 0.5)
        v = StandIn(hub.endpoint(VKEYS[0].public), clock)
        node = open_node(hub, tmp_path, clock)
        v.forget = True  # receipts now, but the batches do not make it into version 1
        node.produce_due()
        await node.flush()
        clock.t = (G + 1) * PS + 2.5
        v.seal()
        clock.t += 1
        with caplog.at_level(logging.WARNING):
            [check] = await node.verify_due()
            assert check.failures == [] and len(check.waiting) == 20
            assert node.status()["verified"] | {"last_period": None} == {
                "periods": 1, "readings": 0, "failures": 0, "late": 0, "waiting": 20, "last_period": None}
            v.forget = False
            for digest in node.acked:  # the batches reach the validator late: version 2 corrects the period
                v.admit(node.store.get_batch(digest))
            clock.t = (G + 2) * PS + 2.5
            v.seal()
            clock.t += PS
            [check] = await node.verify_due()
        assert check.version == 2 and len(check.verified) == 20 and check.ok
        s = node.status()["verified"]
        assert (s["readings"], s["late"], s["failures"], s["waiting"]) == (20, 20, 0, 0)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("settled late in version 2" in m for m in messages) == 20
        assert not any("VERIFICATION FAILED" in m for m in messages)
        node.store.close()
        node = open_node(hub, tmp_path, clock)  # the counters survive a restart
        assert node.status()["verified"]["late"] == 20
        node.store.close()
