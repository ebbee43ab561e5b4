import os
import stat

import pytest

from stromledger import crypto, keys


def test_domain_and_chain_separation():
    k = crypto.SigningKey.from_label("meter-1")
    sig = k.sign("stromledger/reading/1", "chain-a", b"payload")
    assert crypto.verify(k.public, sig, "stromledger/reading/1", "chain-a", b"payload")
    assert not crypto.verify(k.public, sig, "stromledger/vote/1", "chain-a", b"payload")
    assert not crypto.verify(k.public, sig, "stromledger/reading/1", "chain-b", b"payload")
    assert not crypto.verify(k.public, sig, "stromledger/reading/1", "chain-a", b"payloae")
    other = crypto.SigningKey.from_label("meter-2")
    assert not crypto.verify(other.public, sig, "stromledger/reading/1", "chain-a", b"payload")
    # malformed inputs are a False, never an exception
    assert not crypto.verify(k.public[:31], sig, "d", "c", b"")
    assert not crypto.verify(k.public, sig[:63], "d", "c", b"")


def test_length_prefix_prevents_ambiguity():
    assert crypto.signing_input("ab", "c", b"") != crypto.signing_input("a", "bc", b"")


def test_key_file_plain(tmp_path):
    k = crypto.SigningKey.generate()
    path = tmp_path / "node.key"
    keys.write_key_file(path, k)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.read_key_file(path).public == k.public
    assert keys.read_public_key(path) == k.public
    with pytest.raises(FileExistsError):
        keys.write_key_file(path, k)  # never overwrite a key
    os.chmod(path, 0o644)
    with pytest.raises(keys.KeyFileError, match="chmod 600"):
        keys.read_key_file(path)


def test_key_file_encrypted(tmp_path):
    k = crypto.SigningKey.generate()
    path = tmp_path / "node.key"
    keys.write_key_file(path, k, passphrase="correct horse")
    assert k.seed.hex() not in path.read_text()
    assert keys.read_key_file(path, "correct horse").seed == k.seed
    with pytest.raises(keys.KeyFileError, match="wrong passphrase"):
        keys.read_key_file(path, "wrong")
    with pytest.raises(keys.KeyFileError, match="passphrase is needed"):
        keys.read_key_file(path)
