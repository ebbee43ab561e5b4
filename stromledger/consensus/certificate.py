"""Commit certificates: build one from precommits, verify one with nothing but the genesis validator list.

Light nodes, balancing-group nodes and export verification rest on `verify_certificate`, so it checks the
cheap structure first (height, hash, signer indices, order, count) and only then the signatures.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from stromledger.codec import CodecError
from stromledger.crypto import verify

from .messages import PRECOMMIT_DOMAIN, CommitCertificate, CommitSig, Precommit
from .validators import ValidatorSet


class CertificateError(ValueError):
    """A certificate that does not prove a commit. `reason` is one of: wrong_height, wrong_hash,
    unknown_signer, duplicate_signer, unsorted_signers, insufficient_power, bad_signature. `index` names
    the validator concerned, where there is one."""

    def __init__(self, reason: str, message: str, index: Optional[int] = None):
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.index = index


def build_certificate(height: int, round: int, value_hash: bytes, precommits: Iterable[Precommit],
                      validators: ValidatorSet) -> CommitCertificate:
    """The canonical certificate of these precommits for (height, round, value_hash): signers sorted."""
    sigs = {}
    for p in precommits:
        i = validators.index(p.validator)
        if i is not None and p.height == height and p.round == round and p.value_hash == value_hash:
            sigs.setdefault(i, p.sig)
    return CommitCertificate(height, round, value_hash, tuple(CommitSig(i, sigs[i]) for i in sorted(sigs)))


def verify_certificate(cert: CommitCertificate, value_hash: bytes, validators: ValidatorSet | Sequence[bytes],
                       chain_id: str, height: Optional[int] = None) -> None:
    """Raise CertificateError unless more than 2/3 of `validators` signed a precommit for `value_hash`
    (and, when given, `height`) on `chain_id`. Returns None when the certificate holds."""
    vset = ValidatorSet.of(validators)
    if height is not None and cert.height != height:
        raise CertificateError("wrong_height", f"certificate is for height {cert.height}, expected {height}")
    if cert.value_hash != value_hash:
        raise CertificateError("wrong_hash", f"certificate is for value {cert.value_hash.hex()[:16]}..., "
                                             f"expected {bytes(value_hash).hex()[:16]}...")
    previous = -1
    for s in cert.signatures:
        if s.validator >= vset.n:
            raise CertificateError("unknown_signer", f"signer index {s.validator} but only {vset.n} validators",
                                   s.validator)
        if s.validator == previous:
            raise CertificateError("duplicate_signer", f"validator {s.validator} signs twice", s.validator)
        if s.validator < previous:
            raise CertificateError("unsorted_signers", f"validator {s.validator} after {previous}", s.validator)
        previous = s.validator
    if len(cert.signatures) < vset.quorum:
        raise CertificateError("insufficient_power", f"{len(cert.signatures)} of {vset.n} validators signed, "
                                                     f"{vset.quorum} needed")
    for s in cert.signatures:
        body = Precommit(cert.height, cert.round, cert.value_hash, vset.keys[s.validator], s.sig).body()
        if not verify(vset.keys[s.validator], s.sig, PRECOMMIT_DOMAIN, chain_id, body):
            raise CertificateError("bad_signature", f"signature of validator {s.validator} does not verify",
                                   s.validator)


def certificate_holds(data: bytes, value_hash: bytes, validators: ValidatorSet | Sequence[bytes], chain_id: str,
                      height: int) -> bool:
    """Is `data` the canonical encoding of a certificate that verify_certificate accepts for `value_hash` at
    `height`? What a seal's `last_commit` must be: canonical, so every node exports the very same bytes."""
    try:
        cert = CommitCertificate.decode(data)
        verify_certificate(cert, value_hash, validators, chain_id, height)
    except (CodecError, CertificateError):
        return False
    return cert.encode() == bytes(data)
