"""The one canonical encoding of every ledger message.

A message is a frozen dataclass deriving from `Message`. It travels as a msgpack array
`[TAG, field1, field2, ...]` in declaration order; a nested message is an array of its fields without the
tag (its type is known from the annotation). There are no maps on the wire, so there is no key order to
agree on, and an unknown field is simply a wrong array length.

Decoding is strict and bounded: the total size, every string, byte string and array are limited, each
field's type and range is checked against its annotation, floats, maps and extension types are refused,
and the bytes must re-encode to themselves (no second encoding of the same message exists).

Decoding is guided by the message type while it reads: every array header is checked against the field's
bound (a sequence's MaxLen, a nested message's arity) before a single element is built, and a scalar field
can never turn into a container. So a few MiB of crafted headers (say, millions of empty arrays where a
batch expects readings) are refused at the first header instead of first becoming millions of objects.

What is hashed or signed is always `msg.encode()` or, for signed messages, `msg.body()` (the encoding
without the trailing `sig` field), wrapped by `crypto.signing_input` with a domain tag and the chain id.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any, Callable, ClassVar, get_args, get_origin, get_type_hints

import msgpack

MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # a batch of many readings is the largest message
DEFAULT_MAX_STR = 256
DEFAULT_MAX_BYTES = 1024
DEFAULT_MAX_ITEMS = 1024


class CodecError(ValueError):
    """Malformed or non-canonical bytes. `reason` is a short code for logs and counters."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Range:
    lo: int
    hi: int


@dataclasses.dataclass(frozen=True)
class Len:
    """Exact length of a byte string."""

    n: int


@dataclasses.dataclass(frozen=True)
class MaxLen:
    """Upper bound on the length of a str, bytes or tuple."""

    n: int


U8 = Annotated[int, Range(0, 2**8 - 1)]
U16 = Annotated[int, Range(0, 2**16 - 1)]
U32 = Annotated[int, Range(0, 2**32 - 1)]
U64 = Annotated[int, Range(0, 2**64 - 1)]
I64 = Annotated[int, Range(-(2**63), 2**63 - 1)]
Hash = Annotated[bytes, Len(32)]
PubKey = Annotated[bytes, Len(32)]
Sig = Annotated[bytes, Len(64)]


def Str(n: int) -> Any:
    return Annotated[str, MaxLen(n)]


def Blob(n: int) -> Any:
    return Annotated[bytes, MaxLen(n)]


def Seq(item: Any, n: int) -> Any:
    return Annotated[tuple[item, ...], MaxLen(n)]


_REGISTRY: dict[int, type[Message]] = {}


class Message:
    """Base of every wire message. Subclasses are `@message(tag)` frozen dataclasses."""

    TAG: ClassVar[int] = -1
    _decode_fields: ClassVar[tuple[tuple[str, Callable[[Any], Any]], ...]]
    _wire_fields: ClassVar[tuple[tuple[str, Callable[[Any], Any]], ...]]
    _read_fields: ClassVar[tuple[tuple[str, Callable[[msgpack.Unpacker, bytes], Any]], ...]]

    def to_wire(self) -> list:
        return [enc(getattr(self, name)) for name, enc in self._wire_fields]

    @classmethod
    def from_wire(cls, obj: Any) -> Any:
        if not isinstance(obj, list):
            raise CodecError("type", f"{cls.__name__}: expected array, got {type(obj).__name__}")
        specs = cls._decode_fields
        if len(obj) != len(specs):
            raise CodecError("fields", f"{cls.__name__}: expected {len(specs)} fields, got {len(obj)}")
        try:
            # Positional, in declaration order: no per-message dict (this runs once per reading).
            return cls(*[check(value) for (_, check), value in zip(specs, obj)])
        except CodecError:
            for (name, check), value in zip(specs, obj):  # find the field to name in the error
                try:
                    check(value)
                except CodecError as e:
                    raise CodecError(e.reason, f"{cls.__name__}.{name}: {e}") from None
            raise

    @classmethod
    def read_from(cls, u: msgpack.Unpacker, data: bytes) -> Any:
        """Read this message's field array from the stream `u` (fed with `data`), field by field."""
        return cls._read_body(u, data, _array_header(u, data))

    @classmethod
    def _read_body(cls, u: msgpack.Unpacker, data: bytes, n: int) -> Any:
        if n != len(cls._read_fields):
            raise CodecError("fields", f"{cls.__name__}: expected {len(cls._read_fields)} fields, got {n}")
        values = []
        for name, read in cls._read_fields:
            try:
                values.append(read(u, data))
            except CodecError as e:
                raise CodecError(e.reason, f"{cls.__name__}.{name}: {e}") from None
        return cls(*values)

    def encode(self) -> bytes:
        return msgpack.packb([self.TAG, *self.to_wire()], use_bin_type=True)

    def body(self) -> bytes:
        """Canonical bytes without a trailing `sig` field: what a signature covers."""
        wire = self.to_wire()
        if self._wire_fields and self._wire_fields[-1][0] == "sig":
            wire = wire[:-1]
        return msgpack.packb([self.TAG, *wire], use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Any:
        msg = decode(data, max_bytes=max_bytes)
        if not isinstance(msg, cls):
            raise CodecError("tag", f"expected {cls.__name__}, got {type(msg).__name__}")
        return msg


def message(tag: int) -> Callable[[type], type]:
    """Class decorator: make a frozen dataclass message with a unique wire tag."""

    def wrap(cls: type) -> type:
        if tag in _REGISTRY:
            raise TypeError(f"tag {tag} used by {_REGISTRY[tag].__name__} and {cls.__name__}")
        cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
        cls.TAG = tag
        hints = get_type_hints(cls, include_extras=True)
        fields = dataclasses.fields(cls)
        cls._decode_fields = tuple((f.name, _checker(hints[f.name])) for f in fields)
        cls._wire_fields = tuple((f.name, _encoder(hints[f.name])) for f in fields)
        cls._read_fields = tuple((f.name, _reader(hints[f.name])) for f in fields)
        _REGISTRY[tag] = cls
        return cls

    return wrap


def nested(cls: type) -> type:
    """Decorator for a Message subclass that only appears inside others (no tag of its own)."""
    if not issubclass(cls, Message):
        raise TypeError(f"{cls.__name__} must derive from Message")
    cls = dataclasses.dataclass(frozen=True, slots=True)(cls)
    hints = get_type_hints(cls, include_extras=True)
    fields = dataclasses.fields(cls)
    cls._decode_fields = tuple((f.name, _checker(hints[f.name])) for f in fields)
    cls._wire_fields = tuple((f.name, _encoder(hints[f.name])) for f in fields)
    cls._read_fields = tuple((f.name, _reader(hints[f.name])) for f in fields)
    return cls


def registered() -> dict[int, type[Message]]:
    """Every message type registered so far, by tag (for fuzzing every decoder)."""
    return dict(_REGISTRY)


def decode(data: bytes, *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode any registered message from canonical bytes, or raise CodecError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError("type", "expected bytes")
    if len(data) > max_bytes:
        raise CodecError("oversized", f"{len(data)} bytes > limit {max_bytes}")
    data = bytes(data)
    # Containers are only ever opened by the readers (read_array_header, checked against the schema before
    # any element is read); `unpack` is called for scalar fields only, and with max_array_len=0 it refuses a
    # container header in a scalar's place before building anything.
    u = msgpack.Unpacker(None, raw=False, strict_map_key=True, max_buffer_size=max(1, len(data)),
                         max_str_len=64 * 1024, max_bin_len=16 * 1024 * 1024, max_array_len=0, max_map_len=0,
                         max_ext_len=0)
    u.feed(data)
    try:
        n = _array_header(u, data)
        tag = u.unpack() if n else None
        if type(tag) is not int:
            raise CodecError("malformed", "a message is an array starting with its tag")
        cls = _REGISTRY.get(tag)
        if cls is None:
            raise CodecError("tag", f"unknown message tag {tag}")
        msg = cls._read_body(u, data, n - 1)
    except CodecError:
        raise
    except msgpack.OutOfData:
        raise CodecError("malformed", "not msgpack: truncated") from None
    except (ValueError, TypeError, IndexError, msgpack.UnpackException) as e:
        raise CodecError("malformed", f"not msgpack: {e}") from None
    if u.tell() != len(data):
        raise CodecError("trailing", "bytes after the message")
    if msg.encode() != data:
        raise CodecError("non_canonical", f"{cls.__name__} is not in canonical form")
    return msg


def _array_header(u: msgpack.Unpacker, data: bytes) -> int:
    try:
        return u.read_array_header()
    except msgpack.OutOfData:
        raise
    except (ValueError, msgpack.UnpackException) as e:  # the unpacker stays at the offending header
        raise _misplaced(data, u.tell(), "array", e) from None


_NIL = 0xC0
_NOT_A_VALUE = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF, 0xC1}  # maps are refused anywhere; 0xc1 is unused


def _misplaced(data: bytes, at: int, expected: str, error: Exception) -> CodecError:
    """The error for a value at offset `at` that could not be read as `expected` ("array" or "scalar"): a
    wrong type, or bytes that are no msgpack value here (a map, byte 0xc1, a string over the bound)."""
    head = data[at] if at < len(data) else None
    if expected == "array" and head is not None and head not in _NOT_A_VALUE:
        return CodecError("type", f"expected array at offset {at}")
    if expected == "scalar" and "max_array_len" in str(error):  # (the offset is not reliable after it)
        return CodecError("type", "expected a scalar, got an array")
    return CodecError("malformed", f"not msgpack: {error}")


def _reader(tp: Any) -> Callable[[msgpack.Unpacker, bytes], Any]:
    """How to read a field of annotation `tp` from the stream: arrays header first, scalars via _checker."""
    base, meta = _split(tp)
    origin = get_origin(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = _reader([a for a in get_args(base) if a is not type(None)][0])

        def read_optional(u: msgpack.Unpacker, data: bytes) -> Any:
            if data[u.tell()] == _NIL:
                return u.unpack()
            return inner(u, data)
        return read_optional
    if origin is tuple:
        item = _reader(get_args(base)[0])
        limit = (_meta(meta, MaxLen) or MaxLen(DEFAULT_MAX_ITEMS)).n

        def read_seq(u: msgpack.Unpacker, data: bytes) -> tuple:
            n = _array_header(u, data)
            if n > limit:
                raise CodecError("oversized", f"{n} items > {limit}")
            return tuple([item(u, data) for _ in range(n)])
        return read_seq
    if isinstance(base, type) and issubclass(base, Message):
        return base.read_from
    check = _checker(tp)

    def read_scalar(u: msgpack.Unpacker, data: bytes) -> Any:
        try:
            value = u.unpack()
        except ValueError as e:  # a container where a scalar belongs (max_array_len and max_map_len are 0),
            # or a string over max_str_len
            raise _misplaced(data, u.tell(), "scalar", e) from None
        return check(value)
    return read_scalar


# -- per-annotation checkers and encoders, built once per class -------------------------------------


def _split(tp: Any) -> tuple[Any, tuple]:
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return base, tuple(meta)
    return tp, ()


def _meta(meta: tuple, kind: type) -> Any:
    for m in meta:
        if isinstance(m, kind):
            return m
    return None


def _checker(tp: Any) -> Callable[[Any], Any]:
    base, meta = _split(tp)
    origin = get_origin(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(base) if a is not type(None)]
        if len(args) != 1 or len(get_args(base)) != 2:
            raise TypeError(f"only Optional[X] unions are supported: {tp}")
        inner = _checker(args[0])
        return lambda v: None if v is None else inner(v)
    if base is bool:
        def check_bool(v: Any) -> bool:
            if type(v) is not bool:
                raise CodecError("type", f"expected bool, got {type(v).__name__}")
            return v
        return check_bool
    if base is int:
        rng = _meta(meta, Range) or Range(-(2**63), 2**64 - 1)
        lo, hi = rng.lo, rng.hi

        def check_int(v: Any) -> int:
            if type(v) is not int:
                raise CodecError("type", f"expected int, got {type(v).__name__}")
            if not lo <= v <= hi:
                raise CodecError("range", f"{v} outside [{lo}, {hi}]")
            return v
        return check_int
    if base is str:
        limit = (_meta(meta, MaxLen) or MaxLen(DEFAULT_MAX_STR)).n

        def check_str(v: Any) -> str:
            if type(v) is not str:
                raise CodecError("type", f"expected str, got {type(v).__name__}")
            if len(v) > limit:
                raise CodecError("oversized", f"string of {len(v)} > {limit}")
            return v
        return check_str
    if base is bytes:
        exact = _meta(meta, Len)
        limit = (_meta(meta, MaxLen) or MaxLen(DEFAULT_MAX_BYTES)).n

        def check_bytes(v: Any) -> bytes:
            if type(v) is not bytes:
                raise CodecError("type", f"expected bytes, got {type(v).__name__}")
            if exact is not None and len(v) != exact.n:
                raise CodecError("length", f"expected {exact.n} bytes, got {len(v)}")
            if len(v) > limit and exact is None:
                raise CodecError("oversized", f"{len(v)} bytes > {limit}")
            return v
        return check_bytes
    if origin is tuple:
        args = get_args(base)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported: {tp}")
        item = _checker(args[0])
        limit = (_meta(meta, MaxLen) or MaxLen(DEFAULT_MAX_ITEMS)).n

        def check_seq(v: Any) -> tuple:
            if type(v) is not list:
                raise CodecError("type", f"expected array, got {type(v).__name__}")
            if len(v) > limit:
                raise CodecError("oversized", f"{len(v)} items > {limit}")
            return tuple(item(x) for x in v)
        return check_seq
    if isinstance(base, type) and issubclass(base, Message):
        return base.from_wire
    raise TypeError(f"unsupported field type {tp}")


def _encoder(tp: Any) -> Callable[[Any], Any]:
    base, _ = _split(tp)
    origin = get_origin(base)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = _encoder([a for a in get_args(base) if a is not type(None)][0])
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        item = _encoder(get_args(base)[0])
        return lambda v: [item(x) for x in v]
    if isinstance(base, type) and issubclass(base, Message):
        return lambda v: v.to_wire()
    return _identity


def _identity(v: Any) -> Any:
    return v
