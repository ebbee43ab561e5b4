"""Commit certificates: every way one can fail names its reason (and the validator concerned)."""

import dataclasses

import pytest
from consensus_harness import CHAIN, H, KEYS, PUBS

from stromledger.codec import CodecError
from stromledger.consensus import (CertificateError, Commit, CommitCertificate, CommitSig, Precommit,
                                   build_certificate, certificate_holds, sign_vote, value_hash, verify_certificate)
from stromledger.consensus.validators import ValidatorSet

V = b"the period seal"
VH = value_hash(V)


def cert_of(signers, round: int = 2, height: int = H, h: bytes = VH, chain: str = CHAIN) -> CommitCertificate:
    votes = [sign_vote(Precommit, KEYS[i], chain, height, round, h) for i in signers]
    return build_certificate(height, round, h, votes, ValidatorSet(PUBS))


def reason(cert, **kw) -> tuple[str, int | None]:
    with pytest.raises(CertificateError) as e:
        verify_certificate(cert, kw.pop("h", VH), PUBS, CHAIN, **kw)
    return e.value.reason, e.value.index


def test_valid_certificate_is_canonical_and_round_trips():
    cert = cert_of([3, 0, 1])
    assert [s.validator for s in cert.signatures] == [0, 1, 3]
    assert verify_certificate(cert, VH, PUBS, CHAIN, height=H) is None
    again = CommitCertificate.decode(cert.encode())
    assert again == cert
    assert Commit.decode(Commit(V, cert).encode()).certificate == cert


def test_build_ignores_votes_for_other_values_rounds_and_strangers():
    votes = [sign_vote(Precommit, KEYS[0], CHAIN, H, 2, VH), sign_vote(Precommit, KEYS[1], CHAIN, H, 1, VH),
             sign_vote(Precommit, KEYS[2], CHAIN, H, 2, None),
             sign_vote(Precommit, KEYS[0].from_label("stranger"), CHAIN, H, 2, VH)]
    assert [s.validator for s in build_certificate(H, 2, VH, votes, ValidatorSet(PUBS)).signatures] == [0]


def test_wrong_height():
    assert reason(cert_of([0, 1, 2]), height=H + 1) == ("wrong_height", None)


def test_wrong_hash():
    assert reason(cert_of([0, 1, 2]), h=value_hash(b"another seal")) == ("wrong_hash", None)


def test_unknown_signer():
    cert = cert_of([0, 1, 2])
    bad = dataclasses.replace(cert, signatures=cert.signatures + (CommitSig(4, bytes(64)),))
    assert reason(bad) == ("unknown_signer", 4)


def test_duplicate_signer():
    cert = cert_of([0, 1])
    bad = dataclasses.replace(cert, signatures=cert.signatures + (cert.signatures[1],))
    assert reason(bad) == ("duplicate_signer", 1)


def test_unsorted_signers():
    cert = cert_of([0, 1, 2])
    bad = dataclasses.replace(cert, signatures=tuple(reversed(cert.signatures)))
    assert reason(bad) == ("unsorted_signers", 1)


def test_not_enough_power():
    assert reason(cert_of([1, 3])) == ("insufficient_power", None)
    assert reason(cert_of([])) == ("insufficient_power", None)


def test_bad_signature_names_the_validator():
    cert = cert_of([0, 1, 2])
    sigs = list(cert.signatures)
    sigs[1] = CommitSig(1, bytes(64))
    assert reason(dataclasses.replace(cert, signatures=tuple(sigs))) == ("bad_signature", 1)


def test_signature_of_another_round_or_chain_does_not_verify():
    cert = cert_of([0, 1, 2], round=2)
    assert reason(dataclasses.replace(cert, round=3)) == ("bad_signature", 0)
    assert reason(cert_of([0, 1, 2], chain="other-chain")) == ("bad_signature", 0)


def test_prevote_signatures_are_not_precommit_signatures():
    from stromledger.consensus import Prevote
    prevotes = [sign_vote(Prevote, KEYS[i], CHAIN, H, 2, VH) for i in range(3)]
    forged = CommitCertificate(H, 2, VH, tuple(CommitSig(i, p.sig) for i, p in enumerate(prevotes)))
    assert reason(forged) == ("bad_signature", 0)


def test_decoding_rejects_malformed_certificates():
    cert = cert_of([0, 1, 2])
    with pytest.raises(CodecError):
        CommitCertificate.decode(cert.encode()[:-3])


def test_certificate_holds_on_encoded_bytes():
    data = cert_of([0, 1, 2]).encode()
    assert certificate_holds(data, VH, PUBS, CHAIN, H)
    assert not certificate_holds(data, VH, PUBS, CHAIN, H + 1)
    assert not certificate_holds(data, value_hash(b"another seal"), PUBS, CHAIN, H)
    assert not certificate_holds(cert_of([0, 1]).encode(), VH, PUBS, CHAIN, H)
    assert not certificate_holds(data + b"\x00", VH, PUBS, CHAIN, H)
    assert not certificate_holds(b"", VH, PUBS, CHAIN, H)
    reversed_signers = dataclasses.replace(cert_of([0, 1, 2]), signatures=cert_of([0, 1, 2]).signatures[::-1])
    assert not certificate_holds(reversed_signers.encode(), VH, PUBS, CHAIN, H)
