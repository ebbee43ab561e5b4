"""The charts of docs/benchmarks.md, drawn from saved results (`stromledger bench <name> --save FILE`)."""

from __future__ import annotations

from pathlib import Path

from .plot import COLORS, Bars, Chart, Series, write


def cascade_charts(r: dict) -> dict[str, Chart | Bars]:
    runs = r["results"]["runs"]
    per = Chart("cascade: cost per meter point (flat = linear)", "meter points (log scale)", "µs per meter point",
                [Series("build (proposer)", [(x["meter_points"], x["steady"]["build_us_per_mp"]) for x in runs]),
                 Series("validate (every other validator)",
                        [(x["meter_points"], x["steady"]["validate_us_per_mp"]) for x in runs]),
                 Series("persist after commit",
                        [(x["meter_points"], x["steady"]["persist_s"] * 1e6 / x["meter_points"]) for x in runs])]
                + ([Series("billing export after commit",
                           [(x["meter_points"], x["steady"]["export_s"] * 1e6 / x["meter_points"]) for x in runs])]
                   if all(x["steady"].get("export_s") for x in runs) else []),
                x_log=True)
    total = Chart("cascade: seconds per seal", "meter points (log scale)", "seconds (log scale)",
                  [Series("build", [(x["meter_points"], x["steady"]["build_s"]) for x in runs]),
                   Series("validate", [(x["meter_points"], x["steady"]["validate_s"]) for x in runs]),
                   Series("persist", [(x["meter_points"], x["steady"]["persist_s"]) for x in runs])]
                  + ([Series("export", [(x["meter_points"], x["steady"]["export_s"]) for x in runs])]
                     if all(x["steady"].get("export_s") for x in runs) else []),
                  x_log=True, y_log=True, refs=[(10.0, "target: 1M in 10 s")])
    return {"cascade_us_per_meter_point.png": per, "cascade_seconds.png": total}


def ingest_charts(r: dict) -> dict[str, Chart | Bars]:
    rows = r["results"]["rows"]
    flight = r["results"].get("in_flight", 1) if all("in_flight_per_s" in x for x in rows) else 1
    labels = [f"{x['workers']} worker{'s' if x['workers'] > 1 else ''}: ratio {x['ratio']:.2f}"
              + (f" / {x['in_flight_ratio']:.2f}" if flight > 1 else "") for x in rows]
    series = [("raw Ed25519 verify", [x["raw_verify_per_s"] for x in rows]),
              ("ingestion path, one batch at a time", [x["ingest_per_s"] for x in rows])]
    if flight > 1:
        series.append((f"ingestion path, {flight} batches in flight", [x["in_flight_per_s"] for x in rows]))
    series.append(("0.85 x raw (target)", [0.85 * x["raw_verify_per_s"] for x in rows]))
    bars = Bars("ingest: readings per second, same run", "readings / s", labels, series)
    return {"ingest.png": bars}


def consensus_charts(r: dict) -> dict[str, Chart | Bars]:
    runs = r["results"]["runs"]
    series = []
    for color, transport in zip(COLORS, ("memory", "p2p")):
        rs = [x for x in runs if x["transport"] == transport]
        for stat, dashed in (("median", False), ("p95", True)):
            if rs:
                series.append(Series(f"{transport}: {stat}", [(x["validators"],
                                                               x["proposal_to_all_committed_s"][stat] * 1000)
                                                              for x in rs], color, dashed))
    chart = Chart("consensus: proposal to commit on every validator", "validators", "milliseconds", series,
                  refs=[(500.0, "target 4: 500 ms"), (1000.0, "target 16: 1000 ms")])
    return {"consensus_latency.png": chart}


def devnet_charts(r: dict) -> dict[str, Chart | Bars]:
    res = r["results"]
    out: dict[str, Chart | Bars] = {}
    procs = res["processes"]
    if procs:
        roles = sorted({role for x in procs for role in x["peak_rss_mb"]})
        out["devnet_peak_rss.png"] = Chart(
            "devnet: peak resident memory per node process", "meter points", "MB (VmHWM, the largest node)",
            [Series(role, [(x["meters"], x["peak_rss_mb"][role]["max"]) for x in procs if role in x["peak_rss_mb"]])
             for role in roles])
    if res["inprocess"]:
        out["devnet_state_memory.png"] = Chart(
            f"validator settlement memory per 100k meter points (window {res['window']})", "commits",
            "MB per 100k meter points (RSS above the empty interpreter)",
            [Series(f"{x['meters']:,} meter points",
                    [(s["commit"], (s["rss_mb"] - x["start_rss_mb"]) * 100_000 / x["meters"]) for s in x["series"]])
             for x in res["inprocess"]])
    return out


CHARTS = {"cascade": cascade_charts, "ingest": ingest_charts, "consensus": consensus_charts,
          "devnet": devnet_charts}


def draw(result: dict, out_dir: str | Path) -> list[Path]:
    make = CHARTS.get(result["bench"])
    if make is None:
        return []
    return [write(Path(out_dir) / name, chart) for name, chart in make(result).items()]
