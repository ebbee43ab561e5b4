"""The checked-in protocol test vectors (docs/vectors/) are what the code produces today, and say what they
claim: signatures verify over their signing inputs, frames carry their bodies, peer ids come from the keys,
the light reply verifies and its tampered twin does not."""

from __future__ import annotations

import json
from pathlib import Path

from nodes.light import verify_light_reply
from nodes.protocol import LightReply
from nodes.vectors import Chain, build_vectors, registry
from stromledger.codec import decode
from stromledger.crypto import signing_input, verify_raw
from stromledger.net.framing import encode_frame
from stromledger.net.identity import peer_id_for

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"


def load(name: str):  # type: ignore[no-untyped-def]
    return json.loads((VECTORS / name).read_text())["vectors"]


def test_checked_in_vectors_match_the_code() -> None:
    fresh = build_vectors()
    on_disk = {p.name: p.read_text() for p in VECTORS.iterdir()}
    assert sorted(on_disk) == sorted(fresh), "run: stromledger protocol vectors --out docs/vectors"
    stale = [name for name in fresh if fresh[name] != on_disk[name]]
    assert not stale, f"{stale} differ from the code; run: stromledger protocol vectors --out docs/vectors"


def test_vectors_say_what_they_claim() -> None:
    for v in load("keys.json"):
        assert peer_id_for(bytes.fromhex(v["public_key"])) == v["peer_id"]
    for v in load("signatures.json"):
        body = bytes.fromhex(v["body"])
        assert signing_input(v["domain"], v["chain_id"], body) == bytes.fromhex(v["signing_input"])
        assert verify_raw(bytes.fromhex(v["public_key"]), bytes.fromhex(v["signature"]),
                          bytes.fromhex(v["signing_input"]))
        assert decode(bytes.fromhex(v["message"])).body() == body
    for v in load("frames.json"):
        assert encode_frame(bytes([v["kind"]]) + bytes.fromhex(v["body"])) == bytes.fromhex(v["frame"])
    for v in load("encodings.json")["canonical"]:
        assert decode(bytes.fromhex(v["hex"])).encode().hex() == v["hex"]


def test_light_vector_verifies_and_its_tampered_twin_does_not() -> None:
    v, chain = load("light.json"), Chain()
    sent = {r.malo_id: r for r in chain.readings}
    assert v["validators"] == [k.hex() for k in registry().validator_keys()]
    check = verify_light_reply(chain.reg, LightReply.decode(bytes.fromhex(v["reply"])), v["period"], sent)
    assert check.ok and check.verified == sorted(sent)
    check = verify_light_reply(chain.reg, LightReply.decode(bytes.fromhex(v["tampered_reply"])), v["period"], sent)
    assert [f.malo_id for f in check.failures] == [v["tampered_fails"]["malo_id"]]
