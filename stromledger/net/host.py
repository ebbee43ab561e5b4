"""Build the hardened py-libp2p 0.8.1 host.

- Security: Noise only. ``new_host()``'s default security options also offer
  TLS, SECIO and unencrypted ``/plaintext/2.0.0``; a host built with them
  accepts a plaintext dialer. We pass exactly one security transport.
- Muxer: yamux only (the default also offers mplex).
- ``handshake_timeout``: an inbound connection must finish Noise and yamux
  within it (libp2p's default is 10 s), so idle sockets free their slot soon.
- Transport: TCP only.
- ``max_connections_per_peer=1``: the default (3) makes dials race extra
  connections (~250 ms per dial instead of ~10 ms).
- Dial retries off and the swarm's auto-connector off: the peer table in
  ``p2p`` owns dialing and backoff. Left on, the auto-connector dials every
  peer in the peerstore in the background and the swarm retries each failed
  dial three times (~0.7 s) and then blocks the peer for 60 s (negative cache).
- mDNS, UPnP, bootstrap, observed-address discovery: off.
- py-libp2p listens with SO_REUSEPORT, so a second node bound to a taken
  port starts without error and the kernel splits incoming connections
  between the two. ``check_port_free`` refuses that before we listen.
"""

from __future__ import annotations

import socket

import multiaddr
from libp2p import new_swarm
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.host.basic_host import BasicHost
from libp2p.network.auto_connector import AutoConnector
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP

from .errors import ListenError

NEGOTIATE_TIMEOUT = 10  # seconds; multistream-select per stream (library wants int)


class _ManualDialing(AutoConnector):
    """An auto-connector that never starts: we dial only on demand."""

    async def start(self) -> None:
        return None


def build_host(
    key_pair: KeyPair, listen: multiaddr.Multiaddr, *, dial_timeout: float,
    handshake_timeout: float,
) -> BasicHost:
    noise = NoiseTransport(key_pair, noise_privkey=new_x25519_key_pair().private_key)
    config = ConnectionConfig(
        max_connections_per_peer=1,
        dial_timeout=dial_timeout,
        inbound_upgrade_timeout=handshake_timeout,
        outbound_stream_protocol_negotiation_timeout=NEGOTIATE_TIMEOUT,
        inbound_stream_protocol_negotiation_timeout=NEGOTIATE_TIMEOUT,
    )
    swarm = new_swarm(
        key_pair=key_pair,
        sec_opt={NOISE_ID: noise},
        muxer_opt={TProtocol(YAMUX_ID): Yamux},
        listen_addrs=[listen],
        transports=[TCP()],
        retry_config=RetryConfig(max_retries=0),
        connection_config=config,
    )
    assert isinstance(swarm, Swarm)
    swarm.auto_connector = _ManualDialing(swarm=swarm)
    return BasicHost(
        network=swarm,
        enable_mDNS=False,
        enable_upnp=False,
        bootstrap=None,
        negotiate_timeout=NEGOTIATE_TIMEOUT,
        disable_identify_address_discovery=True,
    )


def security_protocols(host: BasicHost) -> list[str]:
    """The security protocols the host offers (for assertions and diagnostics)."""
    swarm = host.get_network()
    assert isinstance(swarm, Swarm)
    return [str(p) for p in swarm.upgrader.security_multistream.transports]


def check_port_free(listen: multiaddr.Multiaddr) -> None:
    """Raise ``ListenError("port_in_use")`` if a socket already listens on a fixed port."""
    try:
        port = int(listen.value_for_protocol("tcp") or 0)
        ip = listen.value_for_protocol("ip4")
    except Exception:
        return  # not an /ip4/.../tcp/... address: nothing we can probe
    if port == 0 or not ip:
        return
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR (not REUSEPORT): still fails on a listener, but not
        # on the TIME_WAIT leftovers of a node that just restarted.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((ip, port))
    except OSError as exc:
        raise ListenError("port_in_use", f"{listen}: {exc}") from exc
    finally:
        probe.close()
