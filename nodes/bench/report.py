"""Rich tables of benchmark results (what `stromledger bench` prints without --json)."""

from __future__ import annotations

from typing import Any, Callable

from .machine import machine_line


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:,.0f}"


def _table(title: str, columns: list[str]):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def ingest_tables(r: dict) -> list:
    t = _table(f"ingest: {r['readings']:,} signed readings in batches of {r['batch_size']:,} "
               f"({r['batch_bytes']:,} bytes each), best of {r['repeat']}, interleaved; parallel capacity "
               f"{r['parallel_capacity']} (2.0 = two full cores)",
               ["workers", "raw verify /s", "ingestion path /s", "ratio", "paired ratio (median)",
                f"{r.get('in_flight', 1)} in flight /s", "ratio", "check_batch µs", "admit µs", "store µs",
                "receipt µs"])
    for row in r["rows"]:
        st = row["stages_us_per_reading"]
        flight = row.get("in_flight_per_s")
        pr = f"{row['paired_ratio']:.2f}" if "paired_ratio" in row else "-"
        t.add_row(str(row["workers"]), _n(row["raw_verify_per_s"]), _n(row["ingest_per_s"]), f"{row['ratio']:.2f}",
                  pr, _n(flight), "-" if flight is None else f"{row['in_flight_ratio']:.2f}",
                  _n(st["check_batch"], 1), _n(st["admit"], 2), _n(st["store"], 2), _n(st["receipt"], 2))
    c = r["stage_costs_us_per_reading"]
    s = _table("ingest: single-thread cost per reading, one piece at a time (µs)", ["piece", "µs / reading"])
    for k, label in (("decode_rows", "fast decode (cascade/wire.py: regex shape proof, C unpack), serial"),
                     ("batch_signature", "batch signature (body sliced from the bytes + verify), serial"),
                     ("worker_loop", "worker loop but the verify: build, registry checks, body, signing input"),
                     ("build_readings", "  of which: building the Reading objects"),
                     ("ed25519_verify", "Ed25519 verify (crypto_sign_open)"),
                     ("gil_held_python", "Python work holding the GIL (decode + batch signature + worker loop)"),
                     ("strict_decode_batch", "for comparison: Batch.decode (strict, canonical re-encode check)"),
                     ("encoded_body_and_signing_input", "for comparison: reading.body() encoded + signing input")):
        if k in c:
            s.add_row(label, _n(c[k], 2))
    return [t, s]


def cascade_tables(r: dict) -> list:
    t = _table(f"cascade: seal of N meter points, steady state (height g+2, {r['skip']:.0%} substituted), one core",
               ["meter points", "build s", "validate s", "build µs/mp", "validate µs/mp", "linearity",
                "commit s", "persist s", "seal bytes"])
    for run, c in zip(r["runs"], r["curve"]):
        s = run["steady"]
        t.add_row(_n(run["meter_points"]), _n(s["build_s"], 2), _n(s["validate_s"], 2), _n(s["build_us_per_mp"], 2),
                  _n(s["validate_us_per_mp"], 2), f"{c['build_linearity']:.2f} / {c['validate_linearity']:.2f}",
                  _n(s["commit_s"], 3), _n(s["persist_s"], 2), _n(s["seal_bytes"]))
    p = _table("cascade: after the commit (what Validator._on_decide does), steady state, seconds",
               ["meter points", "rows", "state.encode", "encode rows", "sqlite write", "export", "state MB",
                "rows MB", "build+validate peak MB"])
    for run in r["runs"]:
        s = run["steady"]
        q = s["persist"]
        p.add_row(_n(run["meter_points"]), _n(q["rows_s"], 2), _n(q["state_encode_s"], 2), _n(q["encode_rows_s"], 2),
                  _n(q["sqlite_write_s"], 2), _n(s["export_s"], 2), _n(q["state_bytes"] / 2**20, 1),
                  _n(q["rows_bytes"] / 2**20, 1), _n(s["build_validate_peak_extra_mb"]))
    e = _table("cascade: the export of height h - 1 against the seal build of h, same run (target: export "
               "<= 2 x build); first: the registry's first export (g at g + 1), steady: g + 1 at g + 2",
               ["meter points", "export", "build s", "export s", "export ÷ build", "build CPU s", "export CPU s",
                "export ÷ build (CPU)"])
    for run in r["runs"]:
        for label, s in (("first", run.get("first_export")), ("steady", run["steady"])):
            if s and s.get("export_per_build") is not None:
                e.add_row(_n(run["meter_points"]), label, _n(s["build_s"], 2), _n(s["export_s"], 2),
                          f"{s['export_per_build']:.2f}", _n(s["build_cpu_s"], 2), _n(s["export_cpu_s"], 2),
                          f"{s['export_cpu_per_build_cpu']:.2f}")
    b = _table("cascade: parts of a build, re-run alone (seconds)",
               ["meter points", "entry rows", "leaf bytes", "merkle root", "summarize (all three + totals)",
                "invariants"])
    for run in r["runs"]:
        x = run["breakdown"]
        b.add_row(_n(run["meter_points"]), _n(x["entry_rows_s"], 3), _n(x["leaf_bytes_s"], 3),
                  _n(x["merkle_root_s"], 3), _n(x["summarize_s"], 3), _n(x["check_invariants_s"], 4))
    return [t, p, *([e] if e.row_count else []), b]


def merkle_tables(r: dict) -> list:
    t = _table(f"merkle: {r['leaves']:,} leaves of {r['leaf_bytes']} bytes, best of {r['repeat']}",
               ["measure", "value"])
    rows = [
        ("root: time", f"{r['root_s']:.3f} s"),
        ("root: leaves / s", _n(r["root_leaves_per_s"])),
        ("tree with all levels (for proofs): time", f"{r['tree_build_s']:.3f} s"),
        ("tree with all levels: memory (RSS growth)", f"{_n(r['tree_levels_mb'])} MB"),
        ("raw SHA-256 of the leaves: time", f"{r['raw_sha256_leaves_s']:.3f} s"),
        ("raw SHA-256: leaves / s", _n(r["raw_sha256_leaves_per_s"])),
        ("lower bound: 2N - 1 raw hashes", f"{r['tree_lower_bound_s']:.3f} s"),
        ("root / lower bound (1.00 = no overhead)", f"{r['root_vs_lower_bound']:.2f}"),
        ("proof: path length (hashes)", f"{r['proof_path_len_min']}-{r['proof_path_len']}"),
        ("proof: bytes (path; with the leaf)", f"{r['proof_bytes']} ; {r['proof_with_leaf_bytes']}"),
        ("proof: extraction µs", _n(r["proof_us"], 1)),
        ("proof: verification µs", _n(r["verify_us"], 1)),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return [t]


def consensus_tables(r: dict) -> list:
    t = _table("consensus: real validators, latency per height in ms (median / p95; 'all' = the last validator's "
               "commit)", ["validators", "network", "heights", "gate→proposal", "proposal→commit",
                           "proposal→all committed", "gate→all committed", "decide→commit", "rounds>0",
                           "CPU s/height", "in handle s/height"])
    for x in r["runs"]:
        def mp(key: str) -> str:
            s = x[key]
            return f"{_ms(s['median'])} / {_ms(s['p95'])}"
        t.add_row(str(x["validators"]), x["transport"], str(x["heights"]), mp("gate_to_proposal_s"),
                  mp("proposal_to_commit_s"), mp("proposal_to_all_committed_s"), mp("gate_to_all_committed_s"),
                  mp("decide_to_commit_s"), str(x["rounds_max"]), f"{x['cpu_s_per_height']:.2f}",
                  f"{x['handle_s_per_height']:.3f}")
    d = r["disk"]
    s = _table("consensus: the disk under it (median of 30, this run)", ["measure", "ms"])
    s.add_row("raw 64-byte write + fdatasync", _n(d["raw_fdatasync_ms"], 2))
    s.add_row("one sign-guard record (durable SQLite transaction), median / p95",
              f"{_n(d['sign_guard_record_ms'], 2)} / {_n(d['sign_guard_record_p95_ms'], 2)}")
    return [t, s]


def sim_tables(r: dict) -> list:
    t = _table(f"sim: a simulated day ({r['heights']} heights, {r['interval_ms'] // 60000} min apart) of "
               f"{r['validators']} validators, faults {r['faults']}",
               ["seed", "simulate s", "check s", "heights / s", "events", "messages", "decided", "violations"])
    for x in r["runs"]:
        t.add_row(str(x["seed"]), _n(x["simulate_s"], 2), _n(x["check_s"], 2), _n(x["heights_per_s"], 1),
                  _n(x["events"]), _n(x["messages"]), f"{x['decisions']}/{x['decisions_expected']}",
                  str(x["violations"]))
    s = _table("sim: the Ed25519 floor", ["measure", "value"])
    s.add_row("Ed25519 verify (µs, this run)", _n(r["ed25519_verify_us"], 1))
    s.add_row("verifies of the best run x that cost (s)", _n(r["ed25519_lower_bound_s"], 2))
    s.add_row("share of simulate + check spent in Ed25519", f"{r['crypto_share']:.0%}")
    return [t, s]


def devnet_tables(r: dict) -> list:
    t = _table("devnet: real node processes (nodes/devnet.py), per size",
               ["meter points", "outcome", "periods", "from readings / period (min-max)", "ms after gate (median)",
                "validator peak MB", "light node peak MB", "group node peak MB"])
    for x in r["processes"]:
        pk = x["peak_rss_mb"]
        measured = [h["measured"] for h in x["per_height"]]
        t.add_row(_n(x["meters"]), x["outcome"], f"{len(x['per_height'])} x {x['period_seconds']} s",
                  f"{_n(min(measured, default=None))}-{_n(max(measured, default=None))}", _n(x["ms_after_gate_median"]),
                  _n(pk.get("validator", {}).get("max")), _n(pk.get("meter-point", {}).get("max")),
                  _n(pk.get("balancing-group", {}).get("max")))
    out = [t]
    if r["peak_mb_per_100k_by_role"]:
        s = _table("devnet: peak memory per node per 100k meter points (slope between the sizes)",
                   ["role", "MB (the largest node)", "MB (mean of the role)"])
        for role, v in r["peak_mb_per_100k_by_role"].items():
            s.add_row(role, _n(v["max"]), _n(v["mean"]))
        out.append(s)
    m = _table(f"devnet: a validator's settlement memory in-process, per 100k meter points (window "
               f"{r['window']} periods)", ["meter points", "registry MB", "per kept period MB", "peak MB",
                                           f"state at a {r['domain_window']}-period window MB (extrapolated)",
                                           "state.encode s (full window)", "snapshot MB"])
    for x in r["inprocess"]:
        p = x["per_100k"]
        m.add_row(_n(x["meters"]), _n(p["registry_mb"]), _n(p["per_kept_period_mb"], 1), _n(p["peak_mb"]),
                  _n(p["state_at_domain_window_mb"]), _n(x["state_encode_s"], 2), _n(x["state_bytes"] / 2**20))
    out.append(m)
    return out


def country_tables(r: dict) -> list:
    t = _table(f"country: K area checkpoints into a network committee of {r['network_validators']} (area "
               f"committees of {r['area_committee']}, {r['groups']} cells per area; consensus simulated)",
               ["areas", "cells", "checkpoint KB", "verify all s", "ms / checkpoint", "build s", "validate s",
                "seal KB", "consensus ms (median / max)", "deadline -> network seal ms"])
    for x in r["rows"]:
        t.add_row(_n(x["areas"]), _n(x["cells"]), _n(x["checkpoint_bytes_mean"] / 1024, 1), _n(x["verify_all_s"], 2),
                  _n(x["verify_per_checkpoint_ms"], 2), _n(x["build_s"], 3), _n(x["validate_s"], 3),
                  _n(x["network_seal_bytes"] / 1024), f"{_n(x['consensus_median_ms'])} / {_n(x['consensus_max_ms'])}",
                  _n(x["deadline_to_seal_ms"]))
    a = _table(f"country: one area validator, per 15-minute period (Ed25519 {r['ed25519_verify_us']:.0f} µs per "
               f"reading; AreaSeal rebuild {r['settle_us_per_meter']:.1f} µs per meter point, measured at "
               f"{r['area_meters_measured']:,})",
               ["meter points", "measured?", "readings / s", "cores: signatures", "cores: settlement",
                "settle s / period", "area seal after gate s (build + rebuild)"])
    for x in r["per_area"]:
        a.add_row(_n(x["meter_points"]), "yes" if x["measured"] else "extrapolated", _n(x["readings_per_s"]),
                  _n(x["verify_cores"], 2), _n(x["settle_cores"], 3), _n(x["settle_s_per_period"], 1),
                  _n(x["area_seal_after_gate_s"], 1))
    return [t, a]


def attack_tables(r: dict) -> list:
    f = r["fuzz"]
    t = _table(f"attack: {f['inputs']:,} mutated messages of {f['types']} types through codec.decode "
               f"({_n(f['per_s'])} per second)", ["decoded canonically", "refused (CodecError)", "crashes",
                                                  "non-canonical accepted", "unmutated that failed"])
    t.add_row(_n(f["ok"]), _n(f["refused"]), _n(f["crashes"]), _n(f["non_canonical_accepted"]),
              _n(f["generated_failed"]))
    b = _table("attack: header bombs, one decode each (peak: traced Python memory)",
               ["input", "bytes", "ms", "peak MiB", "verdict"])
    for x in r["bombs"] + [r["baseline"]]:
        b.add_row(x["bomb"], _n(x["bytes"]), _n(x["ms"], 1), _n(x["peak_mib"], 1), x["verdict"])
    d = r["duplicates"]
    u = _table(f"attack: one valid reading in {d['batches']} distinct batches",
               ["batches", "held", "listed in the seal", "µs per batch"])
    u.add_row(_n(d["batches"]), _n(d["held"]), _n(d["listed"]), _n(d["us_per_batch"]))
    return [t, b, u]


def history_tables(r: dict) -> list:
    rows = r["rows"]
    n, commits = (rows[0]["meters"], rows[0]["commits"]) if rows else (0, 0)
    t = _table(f"history: a validator at {n:,} meter points restarted on its store, then {commits} heights each "
               "correcting the oldest correctable period (fresh process per window)",
               ["window periods", "RSS after restart MB", "RSS after commits MB", "peak MB", "restart s", "build s",
                "apply s", "persist s", "snapshot bytes", "disk bytes / settled reading"])
    for x in rows:
        t.add_row(_n(x["window"]), _n(x["restart_rss_mb"], 1), _n(x["rss_mb"], 1), _n(x["peak_mb"], 1),
                  _n(x["restart_s"], 3), _n(x["build_s"], 2), _n(x["apply_s"], 3), _n(x["persist_s"], 2),
                  _n(x["series"][-1]["state_bytes"] if x["series"] else None), _n(x["bytes_per_settled_reading"], 1))
    return [t]


RENDER: dict[str, Callable[[dict], list]] = {
    "ingest": ingest_tables, "cascade": cascade_tables, "merkle": merkle_tables, "consensus": consensus_tables,
    "sim": sim_tables, "devnet": devnet_tables, "country": country_tables, "attack": attack_tables,
    "history": history_tables,
}


def targets_table(targets: list[dict]):
    t = _table("targets", ["target", "wanted", "measured", "met"])
    for x in targets:
        t.add_row(x["name"], x["target"], str(x["measured"]), "[green]yes[/]" if x["met"] else "[red]NO[/]")
    return t


def render(result: dict[str, Any], console) -> None:
    console.print(f"[bold]stromledger bench {result['bench']}[/] at {result['started_at']}, {result['wall_s']:.1f} s")
    console.print(f"machine: {machine_line(result['machine'])}; load after: {result['load_avg_after']}",
                  markup=False)
    for table in RENDER[result["bench"]](result["results"]):
        console.print(table)
    if result["targets"]:
        console.print(targets_table(result["targets"]))
