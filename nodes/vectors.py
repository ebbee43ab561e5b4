"""Test vectors of the wire protocol, for teams implementing it elsewhere (docs/protocol.md, "Test vectors").

`stromledger protocol vectors --out DIR` writes them; docs/vectors/ holds the checked-in copy, and a test
proves it still matches this code (so a change of encoding, signing or proof shows up as a diff there). Every
value is deterministic: keys come from fixed labels, Ed25519 signatures are deterministic, and the chain is
the devnet genesis settled by a real cascade Ledger.

Files (JSON; byte strings as lowercase hex):

- keys.json        seed -> Ed25519 public key -> libp2p protobuf key -> identity multihash -> peer id
- encodings.json   canonical encodings of messages (fields, hex, sha256), and non-canonical bytes to refuse
- signatures.json  per signed message: domain, chain id, body, signing input, signature
- frames.json      frames as they go on a stream: length, envelope kind, payload
- light.json       a light exchange: the genesis validators, a LightRequest, the LightReply, and what the
                   verifier must find (seal hash, quorum, Merkle root, leaf hashes); plus a tampered reply
- schemas.json     every message: tag, fields in order, types and limits (SCHEMAS.md: the same as tables)
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Annotated, get_args, get_origin, get_type_hints

import msgpack

from stromledger import merkle
from stromledger.cascade import Ledger, leaf_bytes, make_batch
from stromledger.cascade.messages import READING_DOMAIN, RECEIPT_DOMAIN, BATCH_DOMAIN
from stromledger.codec import _REGISTRY, Len, MaxLen, Message, Range, decode
from stromledger.consensus import ValidatorSet, build_certificate
from stromledger.consensus.messages import (
    PRECOMMIT_DOMAIN, PREVOTE_DOMAIN, PROPOSAL_DOMAIN, Precommit, Prevote, sign_proposal, sign_vote,
)
from stromledger.crypto import signing_input, sha256
from stromledger.net import wire
from stromledger.net.framing import encode_frame

from .datagen.devnet_genesis import devnet_key, devnet_registry
from .feed import SimulatedFeed
from .protocol import ErrorReply, LeafProof, LightReply, LightRequest

FORMAT = "stromledger-vectors/1"
KEY_LABELS = ("validator-1", "meter-operator-1", "outsider")
ED25519_PROTOBUF_PREFIX = bytes.fromhex("08011220")  # KeyType = Ed25519 (1), Data = 32 bytes
IDENTITY_MULTIHASH_PREFIX = bytes.fromhex("0024")  # identity hash, 36 bytes (the protobuf key)


def registry():  # type: ignore[no-untyped-def]
    """The genesis the vectors' chain runs on: 4 validators (quorum 3), 12 meter points, 15-minute periods."""
    return devnet_registry(validators=4, balancing_groups=2, meters=12, period_seconds=900, seed=7,
                           chain_id="stromledger-vectors")


# -- JSON forms -----------------------------------------------------------------------------------------------


def as_json(value: Any) -> Any:
    """A message's field values for the vector files: bytes as {"hex": ...}, messages as objects in field order."""
    if isinstance(value, Message):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, tuple):
        return [as_json(v) for v in value]
    return value


def encoding(msg: Message) -> dict:
    data = msg.encode()
    return {"type": type(msg).__name__, "tag": msg.TAG, "fields": as_json(msg), "hex": data.hex(),
            "sha256": sha256(data).hex()}


# -- the vectors ----------------------------------------------------------------------------------------------


def key_vectors() -> list[dict]:
    from stromledger.net.identity import libp2p_id, peer_id_for

    out = []
    for label in KEY_LABELS:
        key = devnet_key(label)
        protobuf = ED25519_PROTOBUF_PREFIX + key.public
        multihash = IDENTITY_MULTIHASH_PREFIX + protobuf
        assert libp2p_id(key.public).to_bytes() == multihash  # the spec's derivation is libp2p's
        out.append({"label": label, "seed": key.seed.hex(), "public_key": key.public.hex(),
                    "libp2p_public_key": protobuf.hex(), "peer_id_bytes": multihash.hex(),
                    "peer_id": peer_id_for(key.public)})
    return out


class Chain:
    """One committed height of the vectors' genesis: meter operator 1's readings of the genesis period."""

    def __init__(self) -> None:
        self.reg = reg = registry()
        self.g = g = reg.genesis_period
        self.validators = [devnet_key(f"validator-{i + 1}") for i in range(4)]
        self.operator = devnet_key("meter-operator-1")
        name = next(n for n, o in reg.meter_operators.items() if o.public_key == self.operator.public)
        self.mine = [m for m in reg.malo_order if reg.meter_points[m].meter_operator == reg.meter_operators[name].name]
        self.readings = SimulatedFeed(reg, seed=7).readings(g, self.mine)
        self.batch = make_batch(self.operator, reg.chain_id, self.readings)
        ledger = Ledger(reg)
        admission = ledger.admit(self.batch.encode(), g + 1)
        self.receipt = admission.receipt(self.validators[0], reg.chain_id)
        outcome = ledger.propose()
        ledger.commit(outcome.seal_bytes)
        self.seal, self.seal_bytes, self.seal_hash = outcome.seal, outcome.seal_bytes, outcome.seal_hash
        self.precommits = [sign_vote(Precommit, k, reg.chain_id, g, 0, self.seal_hash) for k in self.validators[:3]]
        self.certificate = build_certificate(g, 0, self.seal_hash, self.precommits,
                                             ValidatorSet(reg.validator_keys()))
        self.leaves = [leaf_bytes(g, row) for row in ledger.rows(g)]
        self.tree = merkle.Tree(self.leaves)
        self.result = self.seal.result(g)

    def light_reply(self, malo_ids: list[str]) -> LightReply:
        order = {m: i for i, m in enumerate(self.reg.malo_order)}
        proofs = tuple(LeafProof(m, order[m], self.leaves[order[m]], tuple(self.tree.proof(order[m])))
                       for m in malo_ids)
        return LightReply(self.g, self.result.version, self.seal_bytes, self.certificate, self.tree.size, proofs, ())


def signature_vectors(chain: Chain) -> list[dict]:
    reg, v = chain.reg, chain.validators[0]
    proposal = sign_proposal(v, reg.chain_id, chain.g, 0, -1, chain.seal_bytes)
    prevote = sign_vote(Prevote, v, reg.chain_id, chain.g, 0, chain.seal_hash)
    nil_prevote = sign_vote(Prevote, v, reg.chain_id, chain.g, 1, None)
    cases = [(chain.readings[0], READING_DOMAIN, chain.readings[0].meter_key),
             (chain.batch, BATCH_DOMAIN, chain.batch.submitter),
             (chain.receipt, RECEIPT_DOMAIN, chain.receipt.validator),
             (proposal, PROPOSAL_DOMAIN, proposal.proposer),
             (prevote, PREVOTE_DOMAIN, prevote.validator),
             (nil_prevote, PREVOTE_DOMAIN, nil_prevote.validator),
             (chain.precommits[0], PRECOMMIT_DOMAIN, chain.precommits[0].validator)]
    out = []
    for msg, domain, signer in cases:
        body = msg.body()
        out.append({"type": type(msg).__name__, "domain": domain, "chain_id": reg.chain_id,
                    "public_key": signer.hex(), "message": msg.encode().hex(), "body": body.hex(),
                    "signing_input": signing_input(domain, reg.chain_id, body).hex(),
                    "signature": msg.sig.hex()})
    return out


def _non_canonical(chain: Chain) -> list[dict]:
    """Bytes that decode as msgpack but are not the one encoding of a message: each must be refused."""
    prevote = sign_vote(Prevote, chain.validators[0], chain.reg.chain_id, chain.g, 0, chain.seal_hash)
    wire_fields = [Prevote.TAG, *prevote.to_wire()]
    cases = [
        ("an int not in its shortest form (round 0 as uint32 0xce00000000)",
         _pack_raw([b"\x96", _i(Prevote.TAG), _i(prevote.height), b"\xce\x00\x00\x00\x00",
                    _b(prevote.value_hash), _b(prevote.validator), _b(prevote.sig)]), "non_canonical"),
        ("a str where bin is due (validator key as str 8)",
         _pack_raw([b"\x96", _i(Prevote.TAG), _i(prevote.height), _i(0), _b(prevote.value_hash),
                    b"\xd9\x20" + b"a" * 32, _b(prevote.sig)]), "type"),
        ("a trailing extra field", msgpack.packb(wire_fields + [0], use_bin_type=True), "fields"),
        ("a map instead of an array", msgpack.packb({"tag": Prevote.TAG}, use_bin_type=True), "malformed"),
        ("a float where an int is due", msgpack.packb([Prevote.TAG, float(prevote.height), *wire_fields[2:]],
                                                      use_bin_type=True), "type"),
        ("bytes after the message", prevote.encode() + b"\xc0", "trailing"),
        ("an unknown tag", msgpack.packb([99, 1], use_bin_type=True), "tag"),
    ]
    out = []
    for why, data, reason in cases:
        try:
            decode(data)
        except ValueError as e:
            assert getattr(e, "reason", None) == reason, (why, e)
        else:
            raise AssertionError(f"non-canonical vector decodes: {why}")
        out.append({"why": why, "hex": data.hex(), "reason": reason})
    return out


def _pack_raw(parts: list[bytes]) -> bytes:
    return b"".join(parts)


def _i(n: int) -> bytes:
    return msgpack.packb(n)


def _b(data: bytes) -> bytes:
    return msgpack.packb(data, use_bin_type=True)


def encoding_vectors(chain: Chain) -> dict:
    reply = chain.light_reply(chain.mine[:1])
    canonical = [chain.readings[0], chain.batch, chain.receipt, chain.precommits[0], chain.certificate,
                 LightRequest(chain.g, tuple(chain.mine[:2])), reply,
                 ErrorReply("not_committed", f"period {chain.g + 5} is not settled yet"),
                 decode(chain.leaves[0]), chain.seal]
    return {"canonical": [encoding(m) for m in canonical], "non_canonical": _non_canonical(chain)}


def frame_vectors(chain: Chain) -> list[dict]:
    request = LightRequest(chain.g, tuple(chain.mine[:2])).encode()
    error = ErrorReply("not_committed", "period 1 is not settled yet").encode()
    vote = chain.precommits[0].encode()
    cases = [("a light request", wire.REQ, request), ("an ErrorReply answer", wire.RESP, error),
             ("the refusal of an unregistered peer", wire.ERR, b"unauthorized"),
             ("a one-way consensus message", wire.MSG, vote), ("an empty one-way message", wire.MSG, b"")]
    out = []
    for name, kind, body in cases:
        frame = encode_frame(wire.pack(kind, body))
        out.append({"name": name, "kind": kind, "body": body.hex(), "frame": frame.hex(),
                    "length": len(body) + wire.ENVELOPE_SIZE})
    return out


def light_vectors(chain: Chain) -> dict:
    malo_ids = chain.mine
    reply = chain.light_reply(malo_ids)
    tampered = dataclasses.replace(reply, proofs=(
        dataclasses.replace(reply.proofs[0], leaf=reply.proofs[0].leaf[:-1] + bytes([reply.proofs[0].leaf[-1] ^ 1])),
        *reply.proofs[1:]))
    vset = ValidatorSet(chain.reg.validator_keys())
    return {
        "chain_id": chain.reg.chain_id,
        "registry_hash": chain.reg.hash.hex(),
        "validators": [k.hex() for k in chain.reg.validator_keys()],
        "quorum": vset.quorum,
        "period": chain.g,
        "request": LightRequest(chain.g, tuple(malo_ids)).encode().hex(),
        "reply": reply.encode().hex(),
        "expected": {
            "height": reply.height, "version": reply.version, "seal_hash": chain.seal_hash.hex(),
            "signers": [s.validator for s in chain.certificate.signatures],
            "merkle_root": chain.result.merkle_root.hex(), "size": reply.size,
            "proofs": [{"malo_id": p.malo_id, "index": p.index, "leaf_hash": merkle.leaf_hash(p.leaf).hex()}
                       for p in reply.proofs],
        },
        "tampered_reply": tampered.encode().hex(),
        "tampered_fails": {"malo_id": reply.proofs[0].malo_id, "check": "inclusion"},
    }


# -- schemas --------------------------------------------------------------------------------------------------


def _type_text(tp: Any) -> tuple[str, list[type]]:
    """A field's type as the spec writes it, and the nested messages it mentions."""
    base, meta = (get_args(tp)[0], get_args(tp)[1:]) if get_origin(tp) is Annotated else (tp, ())
    origin = get_origin(base)
    if origin is typing.Union:
        inner, nested = _type_text([a for a in get_args(base) if a is not type(None)][0])
        return f"{inner} or nil", nested
    limit = next((m.n for m in meta if isinstance(m, MaxLen)), None)
    if base is bool:
        return "bool", []
    if base is int:
        rng = next((m for m in meta if isinstance(m, Range)), Range(-(2**63), 2**64 - 1))
        if rng.lo == 0:
            bits = (rng.hi + 1).bit_length() - 1
            return (f"uint{bits}" if rng.hi == 2**bits - 1 else f"int {rng.lo}..{rng.hi}"), []
        if rng.lo == -(2**63) and rng.hi == 2**63 - 1:
            return "int64", []
        return f"int {rng.lo}..{rng.hi}", []
    if base is str:
        return f"str <= {limit if limit is not None else 256}", []
    if base is bytes:
        exact = next((m.n for m in meta if isinstance(m, Len)), None)
        return (f"bin = {exact}" if exact is not None else f"bin <= {limit if limit is not None else 1024}"), []
    if origin is tuple:
        inner, nested = _type_text(get_args(base)[0])
        return f"array <= {limit if limit is not None else 1024} of {inner}", nested
    if isinstance(base, type) and issubclass(base, Message):
        return base.__name__, [base]
    raise TypeError(f"no spec text for {tp}")


WIRE_MODULES = ("stromledger.cascade.messages", "stromledger.consensus.messages", "stromledger.consensus.evidence",
                "nodes.protocol")  # what crosses the wire (the simulator's and tests' messages do not)


def schema_vectors() -> list[dict]:
    import nodes.protocol  # noqa: F401  (registers tags 50-56)
    import stromledger.consensus.evidence  # noqa: F401

    out, seen = [], set()
    todo: list[type] = [cls for _, cls in sorted(_REGISTRY.items()) if cls.__module__ in WIRE_MODULES]
    while todo:
        cls = todo.pop(0)
        if cls in seen:
            continue
        seen.add(cls)
        hints = get_type_hints(cls, include_extras=True)
        fields = []
        for f in dataclasses.fields(cls):
            text, nested = _type_text(hints[f.name])
            fields.append({"name": f.name, "type": text})
            todo.extend(n for n in nested if n not in seen)
        tag = cls.TAG if cls.TAG >= 0 and _REGISTRY.get(cls.TAG) is cls else None
        out.append({"message": cls.__name__, "tag": tag, "module": cls.__module__, "fields": fields})
    return out


def schema_markdown(schemas: list[dict]) -> str:
    lines = ["# Message schemas", "",
             "Generated by `stromledger protocol vectors` from the code (do not edit by hand). A tagged message",
             "travels as `[tag, field, ...]`; a nested one (no tag) as `[field, ...]` inside its parent. Types:",
             "`uintN`/`int64` msgpack integers in that range, `str <= n` UTF-8 text of at most n code points,",
             "`bin = n` / `bin <= n` msgpack bin of exactly / at most n bytes, `array <= n of T`, `X or nil`.",
             "docs/protocol.md gives the encoding rules.", ""]
    for s in schemas:
        head = f"## {s['message']}" + (f" (tag {s['tag']})" if s["tag"] is not None else " (nested)")
        lines += [head, "", f"`{s['module']}`", "", "| # | field | type |", "|---|---|---|"]
        lines += [f"| {i + 1} | {f['name']} | {f['type']} |" for i, f in enumerate(s["fields"])]
        lines.append("")
    return "\n".join(lines)


# -- writing --------------------------------------------------------------------------------------------------


def build_vectors() -> dict[str, str]:
    """File name -> file text, for every vector file."""
    chain = Chain()
    schemas = schema_vectors()
    docs = {"keys.json": key_vectors(), "encodings.json": encoding_vectors(chain),
            "signatures.json": signature_vectors(chain), "frames.json": frame_vectors(chain),
            "light.json": light_vectors(chain), "schemas.json": schemas}
    files = {name: json.dumps({"format": FORMAT, "vectors": doc}, indent=1) + "\n" for name, doc in docs.items()}
    files["SCHEMAS.md"] = schema_markdown(schemas)
    return files


def write_vectors(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_vectors().items():
        path = out / name
        path.write_text(text)
        written.append(path)
    return written

