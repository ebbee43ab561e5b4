"""Every decoder under generated and mutated input (the short campaign; `stromledger bench attack` runs the
long one with the same generators): only CodecError, and nothing non-canonical ever decodes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from nodes.bench.attack import message_types, mutate, sample, verdict
from stromledger import codec

TYPES = message_types()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPES), st.randoms(use_true_random=False), st.integers(1, 4))
def test_every_decoder_refuses_damage_cleanly(cls, rng, damages):
    msg = sample(cls, rng)
    data = msg.encode()
    assert codec.decode(data) == msg
    for _ in range(damages):
        data = mutate(data, rng)
        assert verdict(data) == "ok" or verdict(data).startswith("refused:"), verdict(data)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TYPES), st.binary(max_size=300))
def test_a_valid_tag_followed_by_anything(cls, tail):
    import msgpack
    data = msgpack.packb(cls.TAG) + tail
    for head in (b"\x91", b"\x9f", b"\xdc\x00\x20"):
        v = verdict(head + data)
        assert v == "ok" or v.startswith("refused:"), v
