from hypothesis import given, strategies as st

from stromledger import merkle


def reference_root(leaves):
    """RFC 6962 section 2.1, written recursively as the RFC states it."""
    if len(leaves) == 1:
        return merkle.leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_empty_and_known_vector():
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # leaf hash of the empty leaf, from RFC 6962 test vectors (certificate-transparency-go)
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70))
def test_root_matches_rfc_and_every_proof_verifies(leaves):
    tree = merkle.Tree(leaves)
    assert tree.root == reference_root(leaves) == merkle.root(leaves)
    for i, leaf in enumerate(leaves):
        proof = tree.proof(i)
        assert merkle.verify_inclusion(tree.root, leaf, i, len(leaves), proof)
        assert not merkle.verify_inclusion(tree.root, leaf + b"x", i, len(leaves), proof)
        assert not merkle.verify_inclusion(merkle.root([b"other"]), leaf, i, len(leaves), proof)


def test_proof_rejects_wrong_index_and_size():
    leaves = [bytes([i]) for i in range(11)]
    tree = merkle.Tree(leaves)
    p = tree.proof(5)
    assert not merkle.verify_inclusion(tree.root, leaves[5], 4, 11, p)
    assert not merkle.verify_inclusion(tree.root, leaves[5], 11, 11, p)
    assert not merkle.verify_inclusion(tree.root, leaves[5], 5, 11, p[:-1])
    assert not merkle.verify_inclusion(tree.root, leaves[5], 5, 11, p + [b"\x00" * 32])
