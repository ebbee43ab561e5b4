"""Market identifiers: MaLo-ID, MeLo-ID and EIC, validated on every input.

`parse_*` return the identifier or raise `IdError` (a ValueError) whose `reason` is one of
"type", "length", "alphabet", "leading_zero", "check", "prefix", "object_type".
"""

from __future__ import annotations

EIC_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-"
_EIC_VALUE = {c: i for i, c in enumerate(EIC_ALPHABET)}
_ALNUM = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
EIC_OBJECT_TYPES = {
    "X": "party",
    "Y": "area",
    "Z": "measurement point",
    "W": "resource",
    "T": "tie line",
    "V": "location",
}


class IdError(ValueError):
    def __init__(self, kind: str, reason: str, message: str):
        super().__init__(f"invalid {kind}: {message}")
        self.kind = kind
        self.reason = reason


def malo_check_digit(first10: str) -> int:
    d = [int(c) for c in first10]
    a = d[0] + d[2] + d[4] + d[6] + d[8]
    b = 2 * (d[1] + d[3] + d[5] + d[7] + d[9])
    return (10 - (a + b) % 10) % 10


def parse_malo_id(s: object) -> str:
    """An 11-digit market location id, first digit not 0, 11th digit the check digit (not Luhn)."""
    if not isinstance(s, str):
        raise IdError("MaLo-ID", "type", f"expected a string, got {type(s).__name__}")
    if len(s) != 11:
        raise IdError("MaLo-ID", "length", f"{s!r} has {len(s)} characters, needs 11")
    if not s.isascii() or not s.isdigit():
        raise IdError("MaLo-ID", "alphabet", f"{s!r} must be digits only")
    if s[0] == "0":
        raise IdError("MaLo-ID", "leading_zero", f"{s!r} must not start with 0")
    want = malo_check_digit(s[:10])
    if int(s[10]) != want:
        raise IdError("MaLo-ID", "check", f"{s!r} check digit is {s[10]}, expected {want}")
    return s


def parse_melo_id(s: object) -> str:
    """A 33-character metering location id: DE, 6-digit grid operator, 5-digit postcode, 20 of A-Z0-9."""
    if not isinstance(s, str):
        raise IdError("MeLo-ID", "type", f"expected a string, got {type(s).__name__}")
    if len(s) != 33:
        raise IdError("MeLo-ID", "length", f"{s!r} has {len(s)} characters, needs 33")
    if not s.startswith("DE"):
        raise IdError("MeLo-ID", "prefix", f"{s!r} must start with DE")
    if not (s[2:13].isascii() and s[2:13].isdigit()):
        raise IdError("MeLo-ID", "alphabet", f"{s!r}: characters 3-13 must be digits")
    if not set(s[13:]) <= _ALNUM:
        raise IdError("MeLo-ID", "alphabet", f"{s!r}: characters 14-33 must be A-Z or 0-9")
    return s


def eic_check_char(first15: str) -> str:
    s = sum((16 - i) * _EIC_VALUE[c] for i, c in enumerate(first15))
    return EIC_ALPHABET[36 - ((s - 1) % 37)]


def parse_eic(s: object, object_type: str | None = None) -> str:
    """A 16-character Energy Identification Code; optionally require an object type (e.g. "Y")."""
    if not isinstance(s, str):
        raise IdError("EIC", "type", f"expected a string, got {type(s).__name__}")
    if len(s) != 16:
        raise IdError("EIC", "length", f"{s!r} has {len(s)} characters, needs 16")
    if not set(s) <= _EIC_VALUE.keys():
        raise IdError("EIC", "alphabet", f"{s!r} may only use 0-9, A-Z and '-'")
    want = eic_check_char(s[:15])
    if s[15] == "-" or s[15] != want:
        raise IdError("EIC", "check", f"{s!r} check character is {s[15]!r}, expected {want!r}")
    if object_type is not None and s[2] != object_type:
        raise IdError(
            "EIC", "object_type",
            f"{s!r} has object type {s[2]!r}, expected {object_type!r} ({EIC_OBJECT_TYPES.get(object_type, '?')})",
        )
    return s


def make_eic(first15: str) -> str:
    """Complete 15 characters with their check character (for generated test and devnet codes)."""
    check = eic_check_char(first15)
    if check == "-":
        raise ValueError(f"{first15!r} has no valid check character; choose another code")
    return first15 + check


def make_malo_id(first10: str) -> str:
    return first10 + str(malo_check_digit(first10))


def market_partner_check_digit(first12: str) -> int:
    """The 13th digit of a market-partner id (BDEW code number): GS1 mod 10, weights 1, 3, 1, ... from the
    left."""
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(first12))
    return (10 - total % 10) % 10


def parse_market_partner_id(s: object) -> str:
    """A 13-digit market-partner id (BDEW/DVGW code number or GS1 GLN), as EDI@Energy addresses parties."""
    if not isinstance(s, str):
        raise IdError("market-partner id", "type", f"expected a string, got {type(s).__name__}")
    if len(s) != 13 or not s.isascii() or not s.isdigit():
        raise IdError("market-partner id", "length", f"{s!r} is not 13 digits")
    if int(s[12]) != market_partner_check_digit(s[:12]):
        raise IdError("market-partner id", "check",
                      f"{s} has check digit {s[12]}, expected {market_partner_check_digit(s[:12])}")
    return s


def make_market_partner_id(first12: str) -> str:
    return first12 + str(market_partner_check_digit(first12))


def _valid(parse, s: object) -> bool:
    try:
        parse(s)
        return True
    except IdError:
        return False


def is_valid_malo_id(s: object) -> bool:
    return _valid(parse_malo_id, s)


def is_valid_melo_id(s: object) -> bool:
    return _valid(parse_melo_id, s)


def is_valid_eic(s: object) -> bool:
    return _valid(parse_eic, s)
