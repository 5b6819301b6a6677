#!/usr/bin/env python3
# The producer --report and reader --summary-json files read here are documented in docs/reports.md.
"""Report of `chaos soak` (which scripts/soak.sh runs).

`chaos soak` (chaos/src/soak.rs) runs the pipeline, samples every process
into a CSV (elapsed_s, process, pid, rss_kib, fds, threads, progress: from
/proc/<pid>/status, /proc/<pid>/fd and each binary's Prometheus progress
counter), checks the delivery itself (exit statuses, every tick arrived
once) and then calls `report`, passing what it found as --problem.

`report` turns the samples into SOAK.md and SOAK.csv and applies the
flatness rule to each tickbridge binary:

  warm-up  = the first 20% of the binary's own sampled lifetime, and for
             the readers at least until they have handled --dedup-window
             messages (their duplicate-counting window is a cache that is
             meant to fill; a leak is growth after every cache is full);
  baseline = its RSS in the last warm-up sample;
  flat     = max RSS over the remaining 80% <= 1.2 x baseline + 8 MiB,
             and max fds / threads over the remaining 80% <= the warm-up
             maximum + 16 (a leak grows without bound, churn does not).

The brokers (the private RabbitMQ node and the private Kafka node) are
sampled too, for context only: a broker keeps the records it was sent (a
JVM's heap and page cache grow with them) by design.
"""

import argparse
import csv
import json
import os
import sys
import time

BINARIES = ["feed-sim", "producer", "worker", "consumer"]
BROKERS = ["rabbitmq", "kafka"]
WARMUP = 0.20
FACTOR = 1.2
SLACK_MIB = 8.0
COUNT_SLACK = 16

def load(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            rows.append({
                "t": float(r["elapsed_s"]), "process": r["process"], "pid": int(r["pid"]),
                "rss": int(r["rss_kib"]) / 1024.0, "fds": int(r["fds"]),
                "threads": int(r["threads"]), "progress": int(r["progress"]),
            })
    return rows


def producer_ticks_at(rows, t):
    best = 0
    for r in rows:
        if r["process"] == "producer" and r["t"] <= t + 0.05:
            best = max(best, r["progress"])
    return best


def verdict(samples, fill=None):
    """Applies the flatness rule to one binary's samples (time-ordered).
    `fill`: progress at which the binary's caches are full (readers)."""
    t_first, t_last = samples[0]["t"], samples[-1]["t"]
    cut = t_first + WARMUP * (t_last - t_first)
    if fill:
        full = [s["t"] for s in samples if s["progress"] >= fill]
        cut = max(cut, full[0] if full else t_last)
    warm = [s for s in samples if s["t"] <= cut]
    rest = [s for s in samples if s["t"] > cut]
    base = warm[-1]["rss"]
    bound = FACTOR * base + SLACK_MIB
    v = {
        "samples": len(samples), "warmup_end_t": warm[-1]["t"], "baseline": base, "bound": bound,
        "peak": max(s["rss"] for s in samples), "rest_max": max((s["rss"] for s in rest), default=base),
        "end": samples[-1]["rss"], "fds_warm": max(s["fds"] for s in warm),
        "fds_rest": max((s["fds"] for s in rest), default=0),
        "thr_warm": max(s["threads"] for s in warm),
        "thr_rest": max((s["threads"] for s in rest), default=0),
    }
    v["rss_ok"] = v["rest_max"] <= bound
    v["fds_ok"] = v["fds_rest"] <= v["fds_warm"] + COUNT_SLACK
    v["thr_ok"] = v["thr_rest"] <= v["thr_warm"] + COUNT_SLACK
    v["enough"] = len(rest) >= 2
    v["ok"] = v["rss_ok"] and v["fds_ok"] and v["thr_ok"] and v["enough"]
    return v


def table_rows(samples, n=16):
    """About n rows spread over the run, always with the first and last."""
    if len(samples) <= n:
        return samples
    step = (len(samples) - 1) / (n - 1)
    idx = sorted({round(i * step) for i in range(n)})
    return [samples[i] for i in idx]


def fmt_int(n):
    return f"{n:,}"


def cmd_report(a):
    rows = load(a.samples)

    def jload(p):
        try:
            with open(p) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    prod, work, cons = jload(a.producer_report), jload(a.worker), jload(a.consumer)
    by = {}
    for r in rows:
        by.setdefault(r["process"], []).append(r)
    # Exit statuses and completeness are checked by `chaos soak` itself.
    problems = list(a.problem)

    verdicts = {}
    for name in BINARIES:
        if name not in by:
            problems.append(f"no samples of {name}")
            continue
        v = verdict(by[name], a.dedup_window if name in ("worker", "consumer") else None)
        verdicts[name] = v
        if not v["enough"]:
            problems.append(f"{name}: too few samples after warm-up to judge")
        elif not v["ok"]:
            problems.append(
                f"{name}: RSS {v['rest_max']:.1f} MiB after warm-up vs bound {v['bound']:.1f} MiB, "
                f"fds {v['fds_rest']} vs {v['fds_warm']}, threads {v['thr_rest']} vs {v['thr_warm']}")

    sinks = {s["sink"]: s for s in (prod or {}).get("sinks", [])}
    p_ticks = (prod or {}).get("ticks", 0)
    w_ticks = (work or {}).get("ticks", 0)
    c_ticks = (cons or {}).get("ticks", 0)

    duration = max(r["t"] for r in rows) if rows else 0.0
    p_active = (prod or {}).get("active_seconds", 0.0) or 0.0
    rate = p_ticks / p_active if p_active else 0.0
    ok = not problems
    summary = (
        f"{'PASS' if ok else 'FAIL'}: {fmt_int(p_ticks)} ticks in {p_active:.0f} s "
        f"({rate:,.0f} ticks/s) through RabbitMQ and Kafka; "
        + "; ".join(
            f"{n} RSS {v['baseline']:.1f} MiB after warm-up, max {v['rest_max']:.1f} MiB after (bound {v['bound']:.1f})"
            for n, v in verdicts.items())
    )

    md = []
    md.append("# Soak\n")
    md.append(
        "Generated by `chaos soak` "
        f"(run by `scripts/soak.sh`; `SOAK_TICKS={a.ticks}`, feed rate {'full speed' if a.rate in ('0', '0.0') else a.rate + ' trades/s per symbol'}) "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, on the project's 2-core machine. "
        "`feed-sim` → `producer --sink rabbitmq,kafka` (persistent messages with publisher confirms; idempotent "
        "Kafka producer, `acks=all`) → one `worker` on the work queue and one `consumer` in a Kafka group, all "
        f"{a.build} builds, against a private RabbitMQ node and a private Apache Kafka node (KRaft, one JVM) on spare ports. "
        f"Every {a.interval:g} s the soak reads `VmRSS` and `Threads` from "
        "`/proc/<pid>/status` and counts `/proc/<pid>/fd` for each process; every sample is in "
        f"[{os.path.basename(a.csv)}]({os.path.basename(a.csv)}).\n")
    md.append(
        "**Rule.** For each binary, warm-up is the first 20% of its sampled lifetime and the baseline is its RSS "
        "at the end of warm-up. RSS is flat when the maximum over the rest of the run is at most "
        f"{FACTOR} × baseline + {SLACK_MIB:.0f} MiB; open fds and threads must stay within the warm-up maximum + "
        f"{COUNT_SLACK}. The readers remember the last {a.dedup_window:,} ids to count duplicates "
        "(`--dedup-window`), a cache that is meant to fill, so their warm-up lasts at least until they have "
        "handled that many messages; what grows after every bounded cache is full is a leak.\n")
    if a.stopped_early and p_ticks < a.ticks:
        md.append(
            f"**Stopped early:** the run was asked for {fmt_int(a.ticks)} ticks and the producer was stopped "
            f"(`SOAK_MAX_SECONDS`, Ctrl-C or SIGTERM) after {fmt_int(p_ticks)} and drained; the problems below, "
            "if any, say whether the readers handled everything it had published.\n")
    md.append(f"**Result: {summary}.**\n")
    if problems:
        md.append("Problems:\n")
        for p in problems:
            md.append(f"* {p}")
        md.append("")
    md.append("| binary | samples | RSS at end of warm-up | max RSS after warm-up | bound | peak RSS | RSS at end | fds (warm-up max → after) | threads (warm-up max → after) | flat |")
    md.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for n, v in verdicts.items():
        md.append(
            f"| `{n}` | {v['samples']} | {v['baseline']:.1f} MiB | {v['rest_max']:.1f} MiB | {v['bound']:.1f} MiB | "
            f"{v['peak']:.1f} MiB | {v['end']:.1f} MiB | {v['fds_warm']} → {v['fds_rest']} | "
            f"{v['thr_warm']} → {v['thr_rest']} | {'✔' if v['ok'] else '✘'} |")
    md.append("")
    if prod:
        rs, ks = sinks.get("rabbitmq", {}), sinks.get("kafka", {})
        md.append(
            f"Delivery: the producer published {fmt_int(p_ticks)} ticks, RabbitMQ confirmed "
            f"{fmt_int(rs.get('confirmed', 0))} and Kafka {fmt_int(ks.get('confirmed', 0))} messages, "
            f"{prod.get('unconfirmed')} unconfirmed; the worker handled {fmt_int(w_ticks)} ticks "
            f"({(work or {}).get('duplicates', '?')} duplicates), the Kafka consumer {fmt_int(c_ticks)} "
            f"({(cons or {}).get('duplicates', '?')} duplicates). The run took {duration:.0f} s of samples, "
            f"{p_active:.0f} s of publishing.\n")
    for name in BINARIES + BROKERS:
        if name not in by:
            continue
        s = by[name]
        extra = " (context only, not judged)" if name in BROKERS else ""
        md.append(f"## `{name}`{extra}\n")
        own = {"producer": "ticks published", "worker": "messages handled", "consumer": "messages handled"}.get(name)
        head = "| time | ticks so far (producer) |" + (f" {own} |" if own and name != "producer" else "") + " RSS MiB | fds | threads |"
        md.append(head)
        md.append("| ---: " * (head.count("|") - 1) + "|")
        for r in table_rows(s):
            cells = [f"{r['t']:.0f} s", fmt_int(producer_ticks_at(rows, r["t"]))]
            if own and name != "producer":
                cells.append(fmt_int(r["progress"]))
            cells += [f"{r['rss']:.1f}", str(r["fds"]), str(r["threads"])]
            md.append("| " + " | ".join(cells) + " |")
        md.append("")
    with open(a.md, "w") as f:
        f.write("\n".join(md))
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["elapsed_s", "process", "producer_ticks", "progress", "rss_mib", "fds", "threads"])
        for r in rows:
            w.writerow([f"{r['t']:.1f}", r["process"], producer_ticks_at(rows, r["t"]), r["progress"],
                        f"{r['rss']:.2f}", r["fds"], r["threads"]])
    print(summary)
    for p in problems:
        print(f"  problem: {p}")
    print(f"written {a.md} and {a.csv}")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report", help="write SOAK.md and SOAK.csv from the samples")
    r.add_argument("--samples", required=True)
    r.add_argument("--ticks", type=int, required=True)
    r.add_argument("--rate", default="0")
    r.add_argument("--interval", type=float, default=5.0)
    r.add_argument("--producer-report", required=True)
    r.add_argument("--worker", required=True)
    r.add_argument("--consumer", required=True)
    r.add_argument("--problem", action="append", default=[],
                   help="a problem `chaos soak` found (exit status, missing ticks); repeatable")
    r.add_argument("--build", default="release", help="release or debug: which binaries ran")
    r.add_argument("--dedup-window", type=int, default=1_000_000,
                   help="the readers' --dedup-window: their warm-up lasts until it is full")
    r.add_argument("--stopped-early", action="store_true",
                   help="the producer was stopped before --ticks (time cap); judge what it published")
    r.add_argument("--md", required=True)
    r.add_argument("--csv", required=True)
    a = ap.parse_args()
    return cmd_report(a)


if __name__ == "__main__":
    sys.exit(main())
