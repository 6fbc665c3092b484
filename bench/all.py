"""`make bench`: every benchmark in turn, then each one's verdict line together.

A benchmark that misses a target still lets the others run; the exit status is 1
when any missed or crashed. BENCH_ONLY=dispatch,console runs a subset.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("dispatch", "throughput", "api", "artifacts", "console", "scaleout")


def main() -> int:
    chosen = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    verdicts = []
    started = time.monotonic()
    for name in chosen or BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, HERE / f"{name}.py"], cwd=HERE, stdout=subprocess.PIPE, text=True
        )
        print(result.stdout, end="", flush=True)
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
        verdict = lines[-1] if lines else f"RESULT {name}: crashed (exit {result.returncode})"
        verdicts.append((verdict, time.monotonic() - began, result.returncode))
    print(f"\n=== summary ({platform.node()}, {os.cpu_count()} CPUs) ===")
    for verdict, seconds, _ in verdicts:
        print(f"{verdict}  [{seconds:.0f} s]")
    print(f"total {time.monotonic() - started:.0f} s")
    return 1 if any(code for _, _, code in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
