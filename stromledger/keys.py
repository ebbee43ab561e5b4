"""Key files: an Ed25519 seed on disk, mode 0600, optionally encrypted with a passphrase.

Format (JSON, one object):
  {"format": "stromledger-key/1", "type": "ed25519", "public_key": "<hex>", "seed": "<hex>"}
or, encrypted (scrypt n=2^15 r=8 p=1 -> ChaCha20-Poly1305, the public key as associated data):
  {"format": "stromledger-key/1", "type": "ed25519", "public_key": "<hex>",
   "kdf": "scrypt", "salt": "<hex>", "nonce": "<hex>", "ciphertext": "<hex>"}
A key file readable by group or others is refused, as ssh does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .crypto import SigningKey

FORMAT = "stromledger-key/1"
_SCRYPT_N = 2**15


class KeyFileError(Exception):
    pass


def _kek(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(passphrase.encode())


def write_key_file(path: str | os.PathLike, key: SigningKey, passphrase: str | None = None) -> None:
    doc = {"format": FORMAT, "type": "ed25519", "public_key": key.public.hex()}
    if passphrase:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        salt, nonce = os.urandom(16), os.urandom(12)
        sealed = ChaCha20Poly1305(_kek(passphrase, salt)).encrypt(nonce, key.seed, key.public)
        doc.update(kdf="scrypt", salt=salt.hex(), nonce=nonce.hex(), ciphertext=sealed.hex())
    else:
        doc["seed"] = key.seed.hex()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never overwrite a key by accident; 0600 from the first byte written.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def read_key_file(path: str | os.PathLike, passphrase: str | None = None) -> SigningKey:
    path = Path(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"{path} has mode {mode:o}: a key file must be readable by its owner only (chmod 600)")
    doc = _read_doc(path)
    if doc.get("format") != FORMAT or doc.get("type") != "ed25519":
        raise KeyFileError(f"{path}: unknown key format {doc.get('format')!r}")
    public = _hex_field(path, doc, "public_key", 32)
    if "seed" in doc:
        key = SigningKey(_hex_field(path, doc, "seed", 32))
    else:
        if not passphrase:
            raise KeyFileError(f"{path} is encrypted: a passphrase is needed (STROMLEDGER_PASSPHRASE)")
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        salt, nonce = _hex_field(path, doc, "salt", 16), _hex_field(path, doc, "nonce", 12)
        ciphertext = _hex_field(path, doc, "ciphertext", 48)  # the 32-byte seed and a 16-byte tag
        try:
            seed = ChaCha20Poly1305(_kek(passphrase, salt)).decrypt(nonce, ciphertext, public)
        except InvalidTag:
            raise KeyFileError(f"{path}: wrong passphrase") from None
        key = SigningKey(seed)
    if key.public != public:
        raise KeyFileError(f"{path}: the seed does not match the public key")
    return key


def read_public_key(path: str | os.PathLike) -> bytes:
    """The public key a key file declares (checked against its seed when the seed is not encrypted); no
    passphrase needed. Raises KeyFileError (or OSError) with a one-line reason."""
    path = Path(path)
    doc = _read_doc(path)
    public = _hex_field(path, doc, "public_key", 32)
    if "seed" in doc and SigningKey(_hex_field(path, doc, "seed", 32)).public != public:
        raise KeyFileError(f"{path}: the seed does not match the public key")
    return public


def _read_doc(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise KeyFileError(f"{path}: not a key file: {e}") from None
    if not isinstance(doc, dict):
        raise KeyFileError(f"{path}: not a key file: a JSON object is expected, not {type(doc).__name__}")
    return doc


def _hex_field(path: Path, doc: dict, name: str, size: int) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise KeyFileError(f"{path}: not a key file: {name} is missing or not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise KeyFileError(f"{path}: not a key file: {name} is not hex") from None
    if len(raw) != size:
        raise KeyFileError(f"{path}: not a key file: {name} has {len(raw)} bytes, not {size}")
    return raw
