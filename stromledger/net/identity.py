"""Node key <-> libp2p identity.

The libp2p identity *is* the node's Ed25519 key: the key pair is derived from
the node's 32-byte seed, so the libp2p peer id of a node can be computed from
the public key the registry lists (``peer_id_for``), and an authenticated
remote peer id maps back to that 32-byte key (``key_of``).

Ed25519 peer ids use the identity multihash, i.e. the protobuf-encoded public
key is *inside* the id: no lookup is needed to go back from id to key. The
id a Noise session reports is derived from the identity key that signed the
session's static key, so it is authenticated.

Pitfall: ``secured_conn.get_remote_public_key()`` on a py-libp2p 0.8.1 Noise
session returns the remote's X25519 *Noise static* key, not its identity key;
use the authenticated peer id instead.
"""

from __future__ import annotations

from libp2p.crypto.ed25519 import Ed25519PublicKey, create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.peer.id import ID

from .base import PeerKey, check_key

SEED_SIZE = 32


def key_pair_from_seed(seed: bytes) -> KeyPair:
    if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
        raise ValueError("a node seed is 32 raw bytes")
    return create_new_key_pair(seed)


def public_key_of(key_pair: KeyPair) -> PeerKey:
    return key_pair.public_key.to_bytes()


def libp2p_id(public_key: PeerKey) -> ID:
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(check_key(public_key)))


def peer_id_for(public_key: PeerKey) -> str:
    """The base58 libp2p peer id (``12D3KooW...``) of a registry key."""
    return libp2p_id(public_key).to_base58()


def key_of(peer_id: ID | str) -> PeerKey | None:
    """The 32-byte Ed25519 key inside an authenticated peer id, or None.

    None for ids that do not embed an Ed25519 key (RSA/secp256k1 identities,
    garbage): such peers can never be in our registry.
    """
    pid = ID.from_base58(peer_id) if isinstance(peer_id, str) else peer_id
    public = pid.extract_public_key()
    if public is None or public.get_type() != KeyType.Ed25519:
        return None
    key = public.to_bytes()
    # Refuse non-canonical encodings: the id must be exactly what we'd derive.
    if len(key) != 32 or ID.from_pubkey(public) != pid:
        return None
    return key
