import pytest
from hypothesis import given, strategies as st

from stromledger import ids


def test_malo_example_and_reasons():
    assert ids.is_valid_malo_id("41373559241")
    cases = {
        "4137355924": "length",
        "4137355924a": "alphabet",
        "01373559241": "leading_zero",
        "41373559242": "check",
    }
    for text, reason in cases.items():
        with pytest.raises(ids.IdError) as e:
            ids.parse_malo_id(text)
        assert e.value.reason == reason, text
    assert not ids.is_valid_malo_id(41373559241)


def test_malo_is_not_luhn():
    # Luhn would give another check digit for this prefix; the MaLo rule weights odd positions by 1.
    assert ids.malo_check_digit("4137355924") == 1


@given(st.integers(min_value=10**9, max_value=10**10 - 1))
def test_malo_check_digit_catches_single_digit_errors(n):
    malo = ids.make_malo_id(str(n))
    assert ids.is_valid_malo_id(malo)
    for pos in range(1, 11):
        for d in "0123456789":
            delta = (int(d) - int(malo[pos])) % 10
            if delta == 0:
                continue
            changed = malo[:pos] + d + malo[pos + 1:]
            # odd positions (weight 1) and the check digit catch every change; even positions (weight 2)
            # miss a change by 5, a known property of the rule.
            expect_caught = pos % 2 == 0 or pos == 10 or delta != 5
            assert ids.is_valid_malo_id(changed) is not expect_caught, (malo, changed)


def test_melo():
    good = "DE0001234512345ABCDEFGHIJ0123456789"[:33]
    assert len(good) == 33 and ids.is_valid_melo_id(good)
    assert not ids.is_valid_melo_id("AT" + good[2:])
    assert not ids.is_valid_melo_id(good[:-1])
    assert not ids.is_valid_melo_id(good[:20] + "a" + good[21:])
    with pytest.raises(ids.IdError) as e:
        ids.parse_melo_id("DE00012X4512345ABCDEFGHIJ01234567")
    assert e.value.reason == "alphabet"


def test_eic():
    assert ids.is_valid_eic("10YDE-EON------1")
    assert ids.parse_eic("10YDE-EON------1", object_type="Y")
    with pytest.raises(ids.IdError) as e:
        ids.parse_eic("10YDE-EON------1", object_type="X")
    assert e.value.reason == "object_type"
    for bad, reason in [("10YDE-EON------2", "check"), ("10ydE-EON------1", "alphabet"), ("10YDE", "length")]:
        with pytest.raises(ids.IdError) as e:
            ids.parse_eic(bad)
        assert e.value.reason == reason


@given(st.text(alphabet=ids.EIC_ALPHABET, min_size=15, max_size=15))
def test_eic_make_roundtrip(first15):
    check = ids.eic_check_char(first15)
    if check == "-":
        with pytest.raises(ValueError):
            ids.make_eic(first15)
    else:
        assert ids.is_valid_eic(ids.make_eic(first15))
