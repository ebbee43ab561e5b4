from nodes.runtime import prometheus_lines


def test_status_numbers_become_prometheus_samples():
    doc = {
        "height": 12, "role": "validator", "listen": "/ip4/127.0.0.1/tcp/1",
        "last_commit": {"height": 11, "seal_hash": "ab", "groups": {"11YDEVBG1------N": {"imb": -5, "inj": 7}}},
        "rejections": {"batch_malformed": 2}, "verified": True,
    }
    lines = prometheus_lines(doc, 'node="v1",role="validator"')
    assert 'stromledger_height{node="v1",role="validator"} 12\n' in lines
    assert 'stromledger_last_commit_height{node="v1",role="validator"} 11\n' in lines
    assert 'stromledger_last_commit_groups_imb{node="v1",role="validator",key="11YDEVBG1------N"} -5\n' in lines
    assert 'stromledger_rejections{node="v1",role="validator",key="batch_malformed"} 2\n' in lines
    assert 'stromledger_verified{node="v1",role="validator"} 1\n' in lines
    assert not any("seal_hash" in line or "listen" in line for line in lines)  # strings are not samples
