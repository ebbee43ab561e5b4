"""The export's fast paths write exactly the bytes of the generic ones they replace (issue 11, "export at the
speed of the seal"): meter-point lines formatted directly instead of csv.writer / json.dumps, MSCONS
meter-point segments in one text each, stored rows decoded in one call, record counts by bytes.count."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

import export_chain as chain
from stromledger.cascade.messages import MEASURED, MISSING, QUALITY_NAMES, PeriodSeal
from stromledger.cascade.rows import MeterRow, leaf_bytes
from stromledger.export import ExportError, tables
from stromledger.export.manifest import count_records
from stromledger.export.mscons import (
    MESSAGE_TYPE, OBIS_EXPORT, OBIS_IMPORT, ORIGINAL, QUALIFIERS, REPLACEMENT, UNA, Party, _utc, build_mscons, dtm,
    reference, segment,
)
from stromledger.export.period_data import PeriodRows, decode_period_rows, encode_period_rows
from stromledger.export.text import kwh


def generic_mscons(*, sender, recipient, group, seal_hash, period, version, start, end, prepared, rows) -> bytes:
    """build_mscons as it was before the fast path: one segment() per segment."""
    ref = reference(seal_hash, group, period, version)
    icr = ref[:14]
    t = _utc(prepared)
    body = [
        segment("UNH", "1", MESSAGE_TYPE),
        segment("BGM", "7", ref, ORIGINAL if version == 1 else REPLACEMENT),
        segment("DTM", dtm("137", prepared)),
        segment("NAD", "MS", (sender.id, "", sender.nad_agency)),
        segment("NAD", "MR", (recipient.id, "", recipient.nad_agency)),
        segment("UNS", "D"),
        segment("NAD", "DP"),
    ]
    line = 0
    for row in rows:
        if row.quality == MISSING:
            continue
        body.append(segment("LOC", "172", row.malo_id))
        for obis, wh in ((OBIS_IMPORT, row.import_wh), (OBIS_EXPORT, row.export_wh)):
            line += 1
            body += [segment("LIN", str(line)), segment("PIA", "5", (obis, "SRW")),
                     segment("QTY", (QUALIFIERS[row.quality], kwh(wh), "KWH")), segment("DTM", dtm("163", start)),
                     segment("DTM", dtm("164", end))]
    body.append(segment("UNT", str(len(body) + 1), "1"))
    lines = [UNA, segment("UNB", ("UNOC", "3"), (sender.id, sender.unb_agency), (recipient.id, recipient.unb_agency),
                          (t.strftime("%y%m%d"), t.strftime("%H%M")), icr), *body, segment("UNZ", "1", icr)]
    return ("\n".join(lines) + "\n").encode("ascii")


def row(malo="50000000001", area="10YAREA-A------1", group="11YGROUP-A-----1", quality=MEASURED, imp=1234,
        exp=0, register=True, kind="consumer", source="grid") -> MeterRow:
    return MeterRow(malo, area, group, 1, quality, imp, exp, 1 if quality != MISSING else 0, register, 10**9 + imp,
                    exp, bytes(range(64)) if quality != MISSING else b"", kind, source)


PLAIN_ROWS = [row(), row("50000000002", quality=MISSING, imp=0), row("50000000003", group="", kind="boundary"),
              row("50000000004", quality=2, imp=999, exp=5, register=False), row("50000000005", quality=3, imp=0)]
text = st.text(st.characters(min_codepoint=0, max_codepoint=0x3ff), max_size=6)


def generic_meter_files(period, seal_hash, rows):
    records = [tables.meter_record(period, seal_hash, r) for r in rows]
    return tables.meter_points_csv(records), tables.meter_points_jsonl(records)


def test_no_meter_points_still_make_both_files(registry, commits):
    from stromledger.export.build import Export

    c = commits[0]
    seal = PeriodSeal.decode(c.seal_bytes)
    export = Export(registry, seal, c.seal_bytes, None, seal.result(chain.G), [], None)
    names = {name for name, _ in export.pieces()}
    assert {tables.METER_POINTS_CSV, tables.METER_POINTS_JSONL} <= names


def test_meter_point_lines_are_the_generic_bytes(registry):
    p = registry.period(chain.G)
    for rows in (PLAIN_ROWS, []):
        csv, jsonl, records = tables.meter_points_files(p, b"\x07" * 32, rows)
        assert (csv, jsonl) == generic_meter_files(p, b"\x07" * 32, rows)
        assert records == len(rows) == count_records("a.csv", csv) == count_records("a.jsonl", jsonl)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(text, text, text, text, st.sampled_from(sorted(QUALITY_NAMES)), st.booleans()),
                max_size=4))
def test_meter_point_lines_with_any_text(registry, fields):
    """Text with delimiters, quotes, backslashes, control or non-ASCII characters goes the generic way."""
    rows = [row(malo=m, area=a, group=g, kind=k, quality=q, register=r) for m, a, g, k, q, r in fields]
    p = registry.period(chain.G)
    csv, jsonl, records = tables.meter_points_files(p, b"\x01" * 32, rows)
    assert (csv, jsonl) == generic_meter_files(p, b"\x01" * 32, rows)
    assert records in (None, count_records("a.csv", csv)) and records in (None, count_records("a.jsonl", jsonl))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(st.sampled_from("0123456789?':+ ab"), max_size=5),
                          st.sampled_from(sorted(QUALITY_NAMES)), st.integers(0, 10**7), st.integers(0, 10**7)),
                max_size=5), st.integers(1, 3), st.integers(0, 59))
def test_mscons_is_the_generic_bytes(malos, version, second):
    rows = [row(malo=m, quality=q, imp=i, exp=e) for m, q, i, e in malos]
    kw = dict(sender=Party.chain("chain-1"), recipient=Party.eic("11YGROUP-A-----1"), group="11YGROUP-A-----1",
              seal_hash=b"\x02" * 32, period=7, version=version, start=1_800_000_000 + second,
              end=1_800_000_900, prepared=1_800_001_800, rows=rows)
    assert build_mscons(**kw) == generic_mscons(**kw)


def test_mscons_refuses_what_kwh_refuses():
    kw = dict(sender=Party.chain("c"), recipient=Party.eic("g"), group="g", seal_hash=b"\x02" * 32, period=7,
              version=1, start=0, end=900, prepared=1800)
    with pytest.raises(ValueError):
        build_mscons(**kw, rows=[row(imp=-1)])


@given(st.binary(max_size=40), st.lists(st.sampled_from([b"QTY+", b"\nQTY+", b"QTY", b"\n", b"x"]), max_size=8))
def test_edi_record_count(noise, parts):
    data = noise + b"".join(parts)
    assert count_records("a.edi", data) == sum(1 for line in data.split(b"\n") if line.startswith(b"QTY+"))


def test_stored_rows_decode_with_their_leaves(registry, commits):
    period = chain.G
    rows = commits[0].rows[period]
    data = encode_period_rows(period, 1, rows)
    p, v, decoded = decode_period_rows(registry, data)
    assert (p, v) == (period, 1) and list(decoded) == list(rows) and isinstance(decoded, PeriodRows)
    assert decoded.leaves == [leaf_bytes(period, r) for r in rows]


def test_stored_rows_that_are_not_leaves_are_refused(registry):
    import msgpack

    bad = msgpack.packb(["stromledger/period-rows/1", 5, 1, [msgpack.packb([1, 2, 3])]], use_bin_type=True)
    with pytest.raises(ExportError):
        decode_period_rows(registry, bad)
    other_period = encode_period_rows(6, 1, [row()])
    data = msgpack.packb(["stromledger/period-rows/1", 5, 1, [msgpack.unpackb(other_period)[3][0]]],
                         use_bin_type=True)
    with pytest.raises(ExportError, match="period 6"):
        decode_period_rows(registry, data)
    unknown = encode_period_rows(5, 1, [row(malo="59999999999")])
    with pytest.raises(ExportError, match="not in the registry"):
        decode_period_rows(registry, unknown)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a.csv", "a.jsonl", "a.edi", "a.bin"]),
       st.lists(st.sampled_from([b"QTY+", b"\nQTY+", b"\nQT", b"Y+", b"Q", b"\n", b"x,1\n", b"TY+"]), max_size=12),
       st.lists(st.integers(0, 60), max_size=6))
def test_file_digest_is_file_entry(name, parts, cuts):
    """Hashed and counted piece by piece, cut anywhere (a record split across two pieces too), a file gets
    the manifest entry of its whole bytes."""
    from stromledger.export.manifest import FileDigest, file_entry

    data = b"".join(parts)
    bounds = sorted({0, len(data), *(min(c, len(data)) for c in cuts)})
    digest = FileDigest(name)
    for a, b in zip(bounds, bounds[1:]):
        digest.update(data[a:b])
    assert digest.entry() == file_entry(name, data)
    assert digest.entry(7)["records"] == 7
    given = FileDigest(name, count=False)
    given.update(data)
    assert given.entry(7) == {"sha256": file_entry(name, data)["sha256"], "records": 7}
    with pytest.raises(ValueError):
        given.entry()


def test_export_written_in_pieces_is_the_whole_export(tmp_path, registry, commits):
    """write_export_pieces writes what build_export makes, leaves an identical export alone and refuses a
    different one, as write_export does."""
    from stromledger.export import build_export, read_export
    from stromledger.export.build import prepare_export
    from stromledger.export.writer import write_export_pieces

    c = commits[0]
    cert = PeriodSeal.decode(commits[1].seal_bytes).last_commit
    files = build_export(registry, c.seal_bytes, cert, chain.G, c.rows[chain.G])
    path = write_export_pieces(tmp_path, prepare_export(registry, c.seal_bytes, cert, chain.G, c.rows[chain.G]))
    assert read_export(path) == files
    assert write_export_pieces(tmp_path, prepare_export(registry, c.seal_bytes, cert, chain.G,
                                                        c.rows[chain.G])) == path
    (path / "areas.csv").write_bytes(b"changed")
    with pytest.raises(ExportError, match="different export"):
        write_export_pieces(tmp_path, prepare_export(registry, c.seal_bytes, cert, chain.G, c.rows[chain.G]))
