"""Helpers shared by the benchmarks: timing and writing the result table as JSON."""

import json
import os
import platform
import time
from typing import Callable

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_call(fn: Callable[[], object], repeats: int = 7, number: int = 20) -> float:
  """Median over ``repeats`` of the mean seconds per call over ``number`` calls (after a warm-up)."""
  fn()
  samples = []
  for _ in range(repeats):
    start = time.perf_counter()
    for _ in range(number):
      fn()
    samples.append((time.perf_counter() - start) / number)
  samples.sort()
  return samples[len(samples) // 2]


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int = 15,
              number: int = 20) -> tuple[float, float, float]:
  """Times two functions in interleaved blocks, so that machine noise hits both alike.

  Returns (seconds per call of a, of b, ratio a / b), each the median over the blocks.
  """
  fn_a(), fn_b()
  times_a, times_b, ratios = [], [], []
  for _ in range(repeats):
    for fn, times in ((fn_a, times_a), (fn_b, times_b)):
      start = time.perf_counter()
      for _ in range(number):
        fn()
      times.append((time.perf_counter() - start) / number)
    ratios.append(times_a[-1] / times_b[-1])
  median = lambda xs: sorted(xs)[len(xs) // 2]
  return median(times_a), median(times_b), median(ratios)


def write_results(name: str, rows: list[dict], **extra) -> str:
  """Writes ``{machine, rows, ...}`` to ``bench/results/<name>.json`` and returns the path."""
  os.makedirs(RESULTS_DIR, exist_ok=True)
  path = os.path.join(RESULTS_DIR, f"{name}.json")
  payload = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
             "rows": rows, **extra}
  with open(path, "w") as f:
    json.dump(payload, f, indent=2)
  return path


def print_table(rows: list[dict], columns: list[str]) -> None:
  widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns]
  print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
  for r in rows:
    print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(columns, widths)))


def _fmt(x) -> str:
  return f"{x:.4g}" if isinstance(x, float) else str(x)
