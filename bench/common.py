"""Helpers shared by the benchmarks: timing and writing the result table as JSON."""

import json
import os
import platform
import time
from typing import Callable

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 15, number: int = 20,
                     baseline: str | None = None) -> dict[str, dict[str, float]]:
  """Times several functions in interleaved blocks, so that machine noise hits all alike.

  Returns ``{name: {"median_s", "min_s", "ratio", "block_s"}}``: seconds per call (median and
  minimum over the blocks), the median over the blocks of the time relative to ``baseline`` (1
  without one), and the seconds per call of every block.
  """
  for fn in fns.values():
    fn()
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      for _ in range(number):
        fn()
      times[name].append((time.perf_counter() - start) / number)
  reference = times[baseline] if baseline else None
  return {name: {"median_s": _median(ts), "min_s": min(ts),
                 "ratio": median_ratio(ts, reference) if reference else 1.0, "block_s": ts}
          for name, ts in times.items()}


def median_ratio(times: list[float], reference: list[float]) -> float:
  """The median over interleaved blocks of ``times[i] / reference[i]``."""
  return _median([t / r for t, r in zip(times, reference)])


def _median(xs: list[float]) -> float:
  return sorted(xs)[len(xs) // 2]


def time_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], repeats: int = 15,
              number: int = 20) -> tuple[float, float, float]:
  """(seconds per call of a, of b, ratio a / b), each the median over interleaved blocks."""
  result = time_interleaved({"a": fn_a, "b": fn_b}, repeats, number, baseline="b")
  return result["a"]["median_s"], result["b"]["median_s"], result["a"]["ratio"]


def write_results(name: str, rows: list[dict], **extra) -> str:
  """Writes ``{machine, rows, ...}`` to ``bench/results/<name>.json`` and returns the path."""
  os.makedirs(RESULTS_DIR, exist_ok=True)
  path = os.path.join(RESULTS_DIR, f"{name}.json")
  payload = {"machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
             "cpu": cpu_model(), "rows": rows, **extra}
  with open(path, "w") as f:
    json.dump(payload, f, indent=2)
  return path


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (ratios between implementations depend on it)."""
  try:
    with open("/proc/cpuinfo") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor() or "unknown"


def print_table(rows: list[dict], columns: list[str]) -> None:
  widths = [max(len(c), *(len(_fmt(r.get(c, "-"))) for r in rows)) for c in columns]
  print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
  for r in rows:
    print("  ".join(_fmt(r.get(c, "-")).ljust(w) for c, w in zip(columns, widths)))


def _fmt(x) -> str:
  if isinstance(x, list):
    return " / ".join(_fmt(v) for v in x)
  return f"{x:.4g}" if isinstance(x, float) else str(x)
