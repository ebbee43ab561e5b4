from __future__ import annotations

from typing import Optional

import msgpack
import pytest
from hypothesis import given, strategies as st

from stromledger import codec
from stromledger.codec import I64, U8, U32, CodecError, Hash, Message, Seq, Sig, Str, message, nested


@nested
class Line(Message):
    name: Str(5)
    wh: I64


@message(250)
class Sample(Message):
    count: U32
    digest: Hash
    lines: Seq(Line, 3)
    flag: bool
    note: Optional[Str(8)]
    sig: Sig


def sample(**kw) -> Sample:
    base = dict(count=7, digest=b"\x01" * 32, lines=(Line("a", -5), Line("bb", 2**40)), flag=True, note=None,
                sig=b"\x02" * 64)
    base.update(kw)
    return Sample(**base)


def raw(*fields) -> bytes:
    return msgpack.packb([250, *fields], use_bin_type=True)


def test_roundtrip_and_fixed_layout():
    m = sample()
    data = m.encode()
    assert Sample.decode(data) == m
    assert codec.decode(data) == m
    assert data == raw(7, b"\x01" * 32, [["a", -5], ["bb", 2**40]], True, None, b"\x02" * 64)
    assert m.body() == raw(7, b"\x01" * 32, [["a", -5], ["bb", 2**40]], True, None)


@pytest.mark.parametrize(
    "data, reason",
    [
        (raw(7, b"\x01" * 32, [], True, None), "fields"),  # missing field
        (raw(7, b"\x01" * 32, [], True, None, b"\x02" * 64, 1), "fields"),  # unknown extra field
        (raw(-1, b"\x01" * 32, [], True, None, b"\x02" * 64), "range"),
        (raw(2**32, b"\x01" * 32, [], True, None, b"\x02" * 64), "range"),
        (raw(7.0, b"\x01" * 32, [], True, None, b"\x02" * 64), "type"),  # floats never
        (raw(7, b"\x01" * 31, [], True, None, b"\x02" * 64), "length"),
        (raw(7, "x" * 32, [], True, None, b"\x02" * 64), "type"),
        (raw(7, b"\x01" * 32, [["a", 1]] * 4, True, None, b"\x02" * 64), "oversized"),
        (raw(7, b"\x01" * 32, [["abcdef", 1]], True, None, b"\x02" * 64), "oversized"),
        (raw(7, b"\x01" * 32, [], 1, None, b"\x02" * 64), "type"),  # 1 is not a bool
        (raw(7, b"\x01" * 32, {"a": 1}, True, None, b"\x02" * 64), "malformed"),  # maps are refused
        (msgpack.packb([9999, 1]), "tag"),
        (msgpack.packb({"a": 1}), "malformed"),
        (b"\xc1", "malformed"),
        (b"", "malformed"),
        (sample().encode() + b"\x00", "trailing"),
        (sample().encode()[:-3], "malformed"),
    ],
)
def test_strict_rejections(data, reason):
    with pytest.raises(CodecError) as e:
        codec.decode(data)
    assert e.value.reason == reason


def test_non_canonical_integer_width_is_refused():
    good = sample(count=5).encode()
    # 5 is a positive fixint (0x05); the same value as uint32 (0xce 00 00 00 05) is a second encoding
    bad = good.replace(b"\xcc\xfa\x05", b"\xcc\xfa\xce\x00\x00\x00\x05", 1)
    assert bad != good
    with pytest.raises(CodecError) as e:
        codec.decode(bad)
    assert e.value.reason == "non_canonical"


def test_size_limit():
    with pytest.raises(CodecError) as e:
        codec.decode(sample().encode(), max_bytes=10)
    assert e.value.reason == "oversized"


def test_wrong_class():
    @message(251)
    class Other(Message):
        x: U8

    with pytest.raises(CodecError) as e:
        Sample.decode(Other(1).encode())
    assert e.value.reason == "tag"


def test_duplicate_tag_refused():
    with pytest.raises(TypeError):
        @message(250)
        class Again(Message):
            x: U8


@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    try:
        codec.decode(data)
    except CodecError:
        pass


@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)), max_size=3),
       st.booleans(), st.none() | st.text(max_size=8))
def test_roundtrip_any(count, lines, flag, note):
    m = sample(count=count, lines=tuple(Line(n, w) for n, w in lines), flag=flag, note=note)
    assert codec.decode(m.encode()) == m


def _peak_bytes(fn) -> int:
    import tracemalloc
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_an_array_header_over_the_field_bound_is_refused_before_its_elements_are_built():
    # Sample.lines holds at most 3: a header announcing a million empty arrays is refused at the header,
    # not after msgpack has built a million lists (about 60 MiB: the "4 MiB of empty arrays" attack).
    n = 1 << 20
    bomb = (b"\x97" + msgpack.packb(250) + msgpack.packb(7) + msgpack.packb(b"\x01" * 32, use_bin_type=True)
            + b"\xdd" + n.to_bytes(4, "big") + b"\x90" * n + b"\xc3\xc0" + msgpack.packb(b"\x02" * 64, use_bin_type=True))

    def attempt():
        with pytest.raises(CodecError) as e:
            codec.decode(bomb)
        assert e.value.reason == "oversized" and "Sample.lines" in str(e.value)

    assert _peak_bytes(attempt) < 4 * n  # the input's own copy, nothing per announced element


@pytest.mark.parametrize("field_bytes", [b"\x93\x01\x02\x03", b"\x91\x90", b"\x81\x01\x02", b"\xdc\x00\x01\x90"])
def test_a_container_where_a_scalar_belongs_is_refused_without_building_it(field_bytes):
    data = b"\x97" + msgpack.packb(250) + field_bytes + msgpack.packb(b"\x01" * 32, use_bin_type=True) + b"\x90\xc3\xc0" \
        + msgpack.packb(b"\x02" * 64, use_bin_type=True)
    with pytest.raises(CodecError) as e:
        codec.decode(data)
    assert e.value.reason == ("malformed" if field_bytes == b"\x81\x01\x02" else "type")
    assert "Sample.count" in str(e.value)
