"""Hashes and Ed25519 signatures with domain separation.

Every signature covers `signing_input(domain, chain_id, payload)`: a fixed prefix, the domain tag (what kind
of message this is) and the chain id, each length-prefixed, then the canonical payload bytes. A signature
made for one message kind or one chain therefore never verifies as another.
"""

from __future__ import annotations

import hashlib

import nacl.bindings as sodium
import nacl.exceptions

PREFIX = b"stromledger\x00"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def signing_input(domain: str, chain_id: str, payload: bytes) -> bytes:
    d = domain.encode()
    c = chain_id.encode()
    return b"".join((PREFIX, len(d).to_bytes(2, "big"), d, len(c).to_bytes(2, "big"), c, payload))


class SigningKey:
    """An Ed25519 key pair built from a 32-byte seed; `public` is the 32-byte key the registry lists."""

    __slots__ = ("seed", "public", "_secret")

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self.seed = bytes(seed)
        self.public, self._secret = sodium.crypto_sign_seed_keypair(self.seed)

    @classmethod
    def generate(cls) -> SigningKey:
        import os

        return cls(os.urandom(32))

    @classmethod
    def from_label(cls, label: str) -> SigningKey:
        """A deterministic key for tests, simulations and devnets. Never for production keys."""
        return cls(sha256(b"stromledger-test-key\x00" + label.encode()))

    def sign_raw(self, message: bytes) -> bytes:
        return sodium.crypto_sign(message, self._secret)[:64]

    def sign(self, domain: str, chain_id: str, payload: bytes) -> bytes:
        return self.sign_raw(signing_input(domain, chain_id, payload))

    def __repr__(self) -> str:  # never print the seed
        return f"SigningKey(public={self.public.hex()[:16]}...)"


def verify_raw(public: bytes, sig: bytes, message: bytes) -> bool:
    if len(public) != 32 or len(sig) != 64:
        return False
    try:
        sodium.crypto_sign_open(sig + message, public)
        return True
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False


def verify(public: bytes, sig: bytes, domain: str, chain_id: str, payload: bytes) -> bool:
    return verify_raw(public, sig, signing_input(domain, chain_id, payload))
