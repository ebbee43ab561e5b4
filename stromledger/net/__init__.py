"""Transport layer: the ``Network`` interface and its implementations.

- ``base``: the interface (``Network``, ``PeerKey``, ``Handler``) and protocol ids.
- ``memory``: in-memory hub for tests and the simulator.
- ``p2p``: py-libp2p implementation (import ``stromledger.net.p2p`` explicitly;
  it pulls in libp2p, which takes about a second to import).
- ``framing``/``wire``: u32-length-prefixed frames and the envelope inside them.
"""

from .base import (
    BATCH,
    CONSENSUS,
    LIGHT,
    PROTOCOLS,
    SUBMIT,
    SYNC,
    Allowed,
    Handler,
    Network,
    PeerKey,
)
from .errors import (
    FrameError,
    FrameTooLarge,
    ListenError,
    MalformedMessage,
    NetError,
    PeerUnreachable,
    RemoteError,
    RequestTimeout,
    TruncatedFrame,
)
from .framing import MAX_FRAME, FrameReader, encode_frame
from .memory import MemoryHub, MemoryNetwork

__all__ = [
    "BATCH",
    "CONSENSUS",
    "LIGHT",
    "MAX_FRAME",
    "PROTOCOLS",
    "SUBMIT",
    "SYNC",
    "Allowed",
    "FrameError",
    "FrameReader",
    "FrameTooLarge",
    "Handler",
    "ListenError",
    "MalformedMessage",
    "MemoryHub",
    "MemoryNetwork",
    "NetError",
    "Network",
    "PeerKey",
    "PeerUnreachable",
    "RemoteError",
    "RequestTimeout",
    "TruncatedFrame",
    "encode_frame",
]
