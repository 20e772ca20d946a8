#!/usr/bin/env python3
"""Where the remote hop's CPU goes: `bench cluster --perf DIR --json F` profiles, in buckets.

    python3 scripts/profile-buckets.py --json cluster.json --perf DIR [--duration 8]

For every `local owner` and `remote hop` run of the bench it reads DIR/<scenario>-<round>.data
(`perf record -F 999` of the 2-node cluster's two gateways over the run's measured seconds),
puts each sample in a bucket by its function and library, and prints each bucket's CPU per
request (microseconds, both gateways together), the remote hop's beside the local owner's, and
the difference: what the hop adds, part by part. The requests of a run are its throughput times
its measured seconds (`--duration`, the bench's own flag).
"""

import argparse
import collections
import json
import re
import subprocess
import sys

FREQUENCY = 999

# First match wins: a JSON (de)serializer monomorphised for one of our types is named after both.
BUCKETS = [
    ("kernel", lambda sym, dso: dso.startswith("[kernel")),
    ("malloc/free", lambda sym, dso: "libc" in dso and re.search(r"malloc|free|_int_|realloc|tcache", sym)),
    ("memcpy/memcmp", lambda sym, dso: "libc" in dso and sym.startswith(("__mem", "mem"))),
    ("libc, other", lambda sym, dso: "libc" in dso),
    ("JSON (serde)", lambda sym, dso: "serde" in sym),
    ("ractor_cluster", lambda sym, dso: "ractor_cluster" in sym),
    ("protobuf (prost)", lambda sym, dso: "prost" in sym),
    ("ractor", lambda sym, dso: "ractor" in sym),
    ("tokio", lambda sym, dso: "tokio" in sym),
    ("TLS (rustls)", lambda sym, dso: "rustls" in sym or "ring" in dso),
    ("HTTP (hyper, axum, tower)", lambda sym, dso: re.search(r"hyper|axum|tower|\bhttp::|httparse", sym)),
    ("store (redb, redis)", lambda sym, dso: re.search(r"redb|redis", sym)),
    ("tracing", lambda sym, dso: "tracing" in sym),
    ("gateway: cluster", lambda sym, dso: "connectors_cluster" in sym),
    ("gateway: actors", lambda sym, dso: "connectors_actors" in sym),
    ("gateway: edge", lambda sym, dso: "connectors" in sym),
]


def bucket(sym, dso):
    for name, matches in BUCKETS:
        if matches(sym, dso):
            return name
    return "other"


def samples(path):
    """Samples per bucket of one perf.data file."""
    out = subprocess.run(
        ["perf", "script", "-i", path, "-F", "ip,sym,dso"],
        capture_output=True, text=True, check=True,
    ).stdout
    counts = collections.Counter()
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        # "<address> <symbol>+0x.. (<dso>)" or "<address> [unknown] (<dso>)"
        match = re.match(r"[0-9a-f]+\s+(.*?)\s+\((.*)\)$", line)
        sym, dso = (match.group(1), match.group(2)) if match else (line, "")
        counts[bucket(sym, dso)] += 1
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", required=True, help="the bench's --json output")
    parser.add_argument("--perf", required=True, help="the bench's --perf directory")
    parser.add_argument("--duration", type=float, default=8.0, help="the bench's measured seconds per run")
    args = parser.parse_args()

    runs = json.load(open(args.json))["runs"]
    totals = {"localOwner": collections.Counter(), "remoteHop": collections.Counter()}
    requests = {"localOwner": 0.0, "remoteHop": 0.0}
    for run in runs:
        key = run["scenario"]
        if key not in totals:
            continue
        path = f"{args.perf}/{key}-{run['round']}.data"
        try:
            totals[key] += samples(path)
        except (OSError, subprocess.CalledProcessError) as error:
            sys.exit(f"cannot read {path}: {error}")
        requests[key] += run["requestsPerSecond"] * args.duration

    def per_request(key, name):
        return totals[key][name] / FREQUENCY / max(requests[key], 1.0) * 1e6

    names = sorted(set(totals["localOwner"]) | set(totals["remoteHop"]),
                   key=lambda n: per_request("localOwner", n) - per_request("remoteHop", n))
    print(f"{'bucket':<28} {'local owner':>12} {'remote hop':>12} {'hop adds':>10}   (us of CPU per request, both gateways)")
    for name in names + ["all"]:
        if name == "all":
            local = sum(per_request("localOwner", n) for n in names)
            remote = sum(per_request("remoteHop", n) for n in names)
        else:
            local, remote = per_request("localOwner", name), per_request("remoteHop", name)
        print(f"{name:<28} {local:>12.1f} {remote:>12.1f} {remote - local:>+10.1f}")


if __name__ == "__main__":
    main()
