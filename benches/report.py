#!/usr/bin/env python3
"""Turns criterion's results for `cargo bench --bench core` into the README table.

Reads target/criterion/core_<k>+<m>/<stage>/<block>/new/estimates.json (criterion's own files)
and prints a markdown table of GiB/s per stage, with the pipeline-to-memcpy ratios.
"""
import json
import os
import sys

ROOT = os.environ.get("CARGO_TARGET_DIR", "target") + "/criterion"
PROFILES = ["3+2", "4+2", "10+4"]
BLOCKS = ["64KiB", "256KiB", "1024KiB"]
STAGES = ["memcpy", "memcpy-dram", "aes-256-gcm-seal", "rs-encode", "crc32-all-blocks",
          "blake3-all-blocks", "md5-etag", "sha256-payload", "encode-pipeline", "decode-0-missing",
          "decode-m-missing"]
# The gateway's CPU work per byte of a PUT, stage by stage (the second table).
PUT_STAGES = ["sha256-payload", "md5-etag", "encode-pipeline"]
NEEDED = ["memcpy", "memcpy-dram", "encode-pipeline", "decode-m-missing"]


def gib_per_s(profile, stage, block):
    k, m = (int(x) for x in profile.split("+"))
    b = int(block.removesuffix("KiB")) * 1024
    path = f"{ROOT}/core_{profile}/{stage}/{block}/new/estimates.json"
    if not os.path.exists(path):
        return None
    with open(path) as f:
        ns = json.load(f)["median"]["point_estimate"]
    return (k * b - 16) / ns * 1e9 / 2**30


def main():
    rows = []
    head = "| profile | block | " + " | ".join(STAGES) + " | encode/memcpy | encode/memcpy-dram | decode-m/memcpy-dram |"
    rows.append(head)
    rows.append("|" + "---|" * (len(STAGES) + 5))
    cpu = ["| profile | block | " + " | ".join(PUT_STAGES) + " | sum |",
           "|" + "---|" * (len(PUT_STAGES) + 3)]
    for p in PROFILES:
        for b in BLOCKS:
            v = {s: gib_per_s(p, s, b) for s in STAGES}
            # The PUT stages alone (a run filtered to them) still give the second table.
            if all(v[s] is not None for s in PUT_STAGES):
                # CPU-seconds per GB (10^9 bytes) of plaintext: the unit of the load bench.
                secs = [1e9 / (v[s] * 2**30) for s in PUT_STAGES]
                cpu.append(f"| {p} | {b} | " + " | ".join(f"{x:.2f}" for x in secs)
                           + f" | {sum(secs):.2f} |")
            if any(v[s] is None for s in NEEDED):
                continue
            cells = " | ".join("-" if v[s] is None else f"{v[s]:.2f}" for s in STAGES)
            rows.append(f"| {p} | {b} | {cells} | {v['encode-pipeline'] / v['memcpy']:.3f} | "
                        f"{v['encode-pipeline'] / v['memcpy-dram']:.3f} | "
                        f"{v['decode-m-missing'] / v['memcpy-dram']:.3f} |")
    if len(rows) == 2 and len(cpu) == 2:
        sys.exit("no results: run `cargo bench --bench core` first")
    if len(rows) > 2:
        print("GiB/s of plaintext, one core (criterion median)\n")
        print("\n".join(rows))
    if len(cpu) > 2:
        print(("\n" if len(rows) > 2 else "")
              + "The gateway's CPU-seconds per GB of a PUT's plaintext, by stage\n")
        print("\n".join(cpu))


if __name__ == "__main__":
    main()
