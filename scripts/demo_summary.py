#!/usr/bin/env python3
# The --report and --summary-json files read here are documented in docs/reports.md.
"""Summary of one demo run: every number comes from what the processes of
this run reported (their --report / --summary-json files and JSON Lines
outputs). Exits non-zero if a claim does not hold."""
import glob
import json
import os
import sys
from datetime import datetime

out, prefix, topic = sys.argv[1], sys.argv[2], sys.argv[3]


def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def jsonl(pattern):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, pattern))):
        with open(path) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def pct(values, q):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100.0 * len(values)))]


ok = True


def check(cond, text):
    global ok
    mark = "\033[32m✔\033[0m" if cond else "\033[31m✘\033[0m"
    ok = ok and cond
    print(f"  {mark} {text}")


ws = load("producer-ws.json") or {}
poll = load("producer-poll.json") or {}
sinks = {s["sink"]: s for s in ws.get("sinks", [])}
produced = ws.get("ticks", 0)
gaps_ws = ws.get("gaps", 0)
messages = produced + gaps_ws  # ticks and gap notices travel together
sim_report = None
try:
    with open(os.path.join(out, "feed-sim.out")) as f:
        lines = [l for l in f.read().splitlines() if l.startswith("{")]
        sim_report = json.loads(lines[-1]) if lines else None
except OSError:
    pass

print("\n\033[1m================ tickbridge demo summary ================\033[0m")
print(f"run: {os.path.basename(out)}   RabbitMQ prefix: {prefix}   Kafka topic: {topic}\n")

print("\033[1mProduced (WebSocket producer)\033[0m")
print(f"  ticks {produced}, gap notices {gaps_ws}, confirmed by RabbitMQ {sinks.get('rabbitmq', {}).get('confirmed', 0)},"
      f" by Kafka {sinks.get('kafka', {}).get('confirmed', 0)}, unconfirmed {ws.get('unconfirmed', '?')}")
check(ws.get("unconfirmed") == 0, "every message published was confirmed by its broker")

print("\n\033[1mOne-to-one: RabbitMQ work queue, 2 competing workers\033[0m")
w = [load("worker-1.json") or {}, load("worker-2.json") or {}]
ids = [set(r["message"]["id"] for r in jsonl(f"worker-{i}.jsonl")) for i in (1, 2)]
overlap = len(ids[0] & ids[1])
dlq = sum(sum((x.get("dead_lettered") or {}).values()) for x in w)
retries = sum(x.get("retries", 0) for x in w)
handled = [len(s) for s in ids]
print(f"  worker-1 handled {handled[0]} (fails 5% on purpose), worker-2 handled {handled[1]};"
      f" retries {retries}, dead-lettered {dlq}")
print(f"  {handled[0]} + {handled[1]} + {dlq} (DLQ) = {handled[0] + handled[1] + dlq}   vs {messages} messages published")
check(handled[0] + handled[1] + dlq == messages, "the split adds up to the total")
check(overlap == 0, f"no message handled by both workers (overlap {overlap})")

print("\n\033[1mBroadcast: Kafka consumer groups (and the RabbitMQ stream)\033[0m")
for name in ("group-analytics", "group-archive", "stream-reader"):
    s = load(f"{name}.json") or {}
    n = s.get("received", 0) - s.get("duplicates", 0)
    print(f"  {name:<16} received {s.get('received', 0)} (unique {n}), duplicates {s.get('duplicates', 0)},"
          f" seq gaps {s.get('seq_gaps', 0)}, gap notices {s.get('gap_notices', 0)}")
    check(n == messages, f"{name} got every message ({n} = {messages})")

print("\n\033[1mReplay: consumer --replay-from 0 after the run\033[0m")
rp = load("replay.json") or {}
rn = rp.get("received", 0) - rp.get("duplicates", 0)
print(f"  replay read {rp.get('received', 0)} messages from offset 0")
check(rn == messages, f"the replay equals the total ({rn} = {messages})")

print("\n\033[1mBridge: RabbitMQ → Kafka, at least once\033[0m")
br = load("bridged.json") or {}
bn = br.get("received", 0) - br.get("duplicates", 0)
print(f"  topic {topic}-bridged holds {br.get('received', 0)} messages ({bn} unique ids, {br.get('duplicates', 0)} duplicates)")
check(bn == messages, f"every message crossed the bridge ({bn} = {messages})")

print("\n\033[1mGaps and duplicates (faults injected by feed-sim)\033[0m")
if sim_report:
    skipped = sum(len(s.get("skipped", [])) for s in sim_report.get("symbols", []))
    sdup = sum(s.get("duplicates", 0) for s in sim_report.get("symbols", []))
    smal = sum(s.get("malformed", 0) for s in sim_report.get("symbols", []))
    closes = sum(s.get("closes", 0) for s in sim_report.get("symbols", []))
    print(f"  injected: {skipped} trade-id gaps, {sdup} duplicate frames, {smal} malformed frames, {closes} disconnects")
else:
    skipped = sdup = smal = None
print(f"  detected: {gaps_ws} gap notices ({ws.get('gap_trades', 0)} trades reported missing, disconnect gaps included),"
      f" {ws.get('duplicates', 0)} duplicates dropped, {ws.get('malformed', 0)} malformed frames counted, {ws.get('reconnects', 0)} reconnects")
if sim_report:
    check(gaps_ws >= skipped, "every injected gap was reported by a gap notice")
    check(ws.get("malformed", 0) == smal, "every malformed frame was counted")
    check(ws.get("duplicates", 0) > 0 or sdup == 0, "duplicates were dropped before publishing")

print("\n\033[1mEnd-to-end latency (tick received by producer → handled by reader)\033[0m")
for label, name in (("RabbitMQ (worker-2)", "worker-2.json"), ("Kafka (group-analytics)", "group-analytics.json"),
                    ("Kafka (group-archive)", "group-archive.json"), ("RabbitMQ stream", "stream-reader.json")):
    s = load(name) or {}
    lat = s.get("latency_from_received") or {}
    print(f"  {label:<24} p50 {lat.get('p50_ms', 0):7.2f} ms   p99 {lat.get('p99_ms', 0):7.2f} ms"
          f"   max {lat.get('max_ms', 0):8.2f} ms   (n={lat.get('count', 0)})")

print("\n\033[1mKafka consumer-group lag (from the broker: high watermark − committed offset)\033[0m")
ended_at_zero = []
for name in ("group-analytics", "group-archive"):
    gl = (load(f"{name}.json") or {}).get("group_lag") or {}
    end = gl.get("lag_at_end")
    parts = " ".join(f"p{p}={l}" for p, l in sorted((gl.get("partitions_at_end") or {}).items(), key=lambda x: int(x[0])))
    print(f"  {name:<16} max {gl.get('max_lag', '?'):>6} during the run, {end if end is not None else '?':>4} at the end [{parts}]"
          f"   {gl.get('samples', 0)} samples ({gl.get('failed_samples', 0)} failed), members {gl.get('members', '?')},"
          f" state {gl.get('state', '?')}")
    ended_at_zero.append(gl.get("samples", 0) > 0 and end == 0)
print("  (sampled every stats interval and once more after each group's final commit; between commits a group"
      " that keeps up still shows the last second's messages)")
check(all(ended_at_zero), "every group finished with lag 0")

print("\n\033[1mStreaming vs polling (same simulated market, same 3 symbols)\033[0m")
for label, pattern, rep in (("WebSocket", "stream_ws_*.jsonl", ws), ("REST poll 1s", "poll_*.jsonl", poll)):
    rows = [r for r in jsonl(pattern) if r.get("schema") == "tick.v1"]
    lat = [(ts(r["received_ts"]) - ts(r["exchange_ts"])).total_seconds() * 1000 for r in rows]
    print(f"  {label:<13} ticks {len(rows):6}  exchange→received p50 {pct(lat, 50):8.1f} ms  p99 {pct(lat, 99):8.1f} ms"
          f"  gap notices {rep.get('gaps', 0):3}  dups dropped {rep.get('duplicates', 0) + rep.get('poll_overlap', 0)}")

dash = load("dashboard.json")
if dash is not None:
    print("\n\033[1mDashboard: its own Kafka group, pushed to the page over SSE\033[0m")
    print(f"  read {dash.get('messages', 0)} messages ({dash.get('ticks', 0)} ticks, {dash.get('gap_notices', 0)} gap notices),"
          f" Kafka → dashboard p50 {dash.get('latency_p50_ms', 0):.2f} ms p99 {dash.get('latency_p99_ms', 0):.2f} ms,"
          f" clients cut off {dash.get('cut_off', 0)}")
    check(dash.get("messages") == messages, f"the dashboard's count equals the total ({dash.get('messages')} = {messages})")
    check(dash.get("ticks") == produced, f"the dashboard's ticks equal the ticks produced ({dash.get('ticks')} = {produced})")

print("\n\033[1mLook around\033[0m")
print("  Management UI: http://127.0.0.1:15672/  (login guest / guest)")
print(f"  Queues: {prefix}.work (work queue), {prefix}.dlq (dead letters with tb-error), {prefix}.stream (stream)")
print(f"  Everything this run wrote: {out}/")
print("  Try next:")
print(f"    target/release/consumer --kafka-topic {topic} --replay-from 5m --no-commit --exit-when-idle 5s")
print(f"    target/release/consumer --from rabbitmq-stream --amqp-prefix {prefix} --replay-from first --exit-when-idle 5s")
print(f"    target/release/worker --amqp-prefix {prefix} --fail-rate 1 --max-retries 2   # then watch {prefix}.dlq")
print()
if not ok:
    print("\033[31mSome claims did not hold in this run; see the logs in the run directory.\033[0m")
    sys.exit(1)
print("\033[32mAll claims hold for this run.\033[0m")
