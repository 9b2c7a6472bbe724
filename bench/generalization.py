"""Learned optimizers on held-out tasks against per-task-tuned Adam (``bench/heldout_tasks.py``).

Per task and seed (2 seeds): Adam over the log grid 1e-5, 3.2e-5, …, 1 (11 rates; Adam at 1e-3 is
the untuned default), and each learned optimizer (the shipped ``celo`` and ``nnadam-mnist``,
``general`` once shipped, and any saved one given with ``--learned=name=path``), all on the same
initialisations and minibatches, each run as one graph (the optimizer's step compiled with XLA).
Per task:

- final loss: the mean training loss of the last 5 % of the steps (at least 10), averaged over the
  seeds; the tuned Adam is the rate with the lowest final loss (chosen here, on training loss, as
  the per-task tuning the field compares against; the learned optimizers get no tuning at all);
- test loss after the last step, where the task has a test split;
- speedup: the steps the tuned Adam needs to reach the learned optimizer's final loss (its curve
  smoothed over the same window, averaged over the seeds) over the learned optimizer's steps. The
  tuned Adam is run on to 4× the horizon, so speedups up to 4 are measured; "> 4" beyond;
- diverged: the final loss is not below the loss at step 0 (or is not finite).

Overall, per learned optimizer: the fraction of tasks where it beats the tuned Adam and Adam 1e-3
(lower final loss), the median and the interquartile mean of the speedups (those past the cap
counted at the cap), the divergences. Loss curves of every task go to one figure.

Run: ``.venv/bin/python bench/generalization.py`` (writes bench/results/generalization.json and
generalization.png; about 40 minutes on the 2-core CPU machine). ``--tasks`` and ``--seeds``
select a part, ``--max_steps`` shortens the horizons (for a smoke run).
"""

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402
import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import l2l  # noqa: E402
from bench import heldout_tasks  # noqa: E402
from bench.common import RESULTS_DIR, print_table, write_results  # noqa: E402

ADAM_GRID = tuple(float(f"{r:.3g}") for r in 10.0 ** np.arange(-5.0, 0.01, 0.5))
UNTUNED_ADAM = 1e-3
SPEEDUP_CAP = 4
SHIPPED_LEARNED = ("general", "celo", "nnadam-mnist")  # Those shipped are run.

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", [t.name for t in heldout_tasks.TASKS], "Tasks to run.")
flags.DEFINE_integer("seeds", 2, "Seeds per optimizer and task.", lower_bound=1)
flags.DEFINE_list("learned", [], "Further learned optimizers as name=path (a directory "
                  "train.py wrote).")
flags.DEFINE_integer("max_steps", None, "Cap every task's horizon (a smoke run).", lower_bound=1)
flags.DEFINE_string("output", "generalization", "Name of the JSON and PNG under bench/results.")


def window(num_steps: int) -> int:
  """The number of last steps whose mean training loss is a run's final loss."""
  return max(10, num_steps // 20)


def smooth(curve: np.ndarray, size: int) -> np.ndarray:
  """Trailing mean over ``size`` steps (fewer at the start)."""
  sums = np.cumsum(np.insert(curve, 0, 0.0))
  ends = np.arange(1, len(curve) + 1)
  starts = np.maximum(0, ends - size)
  return (sums[ends] - sums[starts]) / (ends - starts)


def speedup(target: float, reference_curve: np.ndarray, num_steps: int, size: int) -> float:
  """Steps the reference (smoothed) needs to reach ``target``, over ``num_steps``; inf if never."""
  reached = np.nonzero(smooth(reference_curve, size) <= target)[0]
  return (reached[0] + 1) / num_steps if len(reached) else math.inf


def interquartile_mean(values: list[float]) -> float:
  """The mean of the middle half (the 25 %–75 % quantiles, fractional ends weighted)."""
  values = np.sort(np.asarray(values, float))
  n = len(values)
  weights = np.clip(np.minimum(np.arange(1, n + 1), n - np.arange(n)) - n / 4, 0, 1)
  return float(np.sum(weights * values) / np.sum(weights))


def _compiled_loop(variables, train_loss, apply_step, num_steps: int):
  """``run(offset) -> losses [num_steps]``: num_steps steps from step index ``offset``.

  The loop is one graph; the optimizer's step in it is compiled with XLA. (The whole loop under
  XLA runs the models' steps up to 20× slower here: the minibatch gathers and the convolution
  gradients.)
  """
  apply_compiled = tf.function(apply_step, jit_compile=True)

  @tf.function
  def run(offset):
    losses = tf.TensorArray(tf.float32, size=num_steps)
    for t in tf.range(num_steps):
      with tf.GradientTape() as tape:
        loss = tf.cast(train_loss(offset + t), tf.float32)
      apply_compiled(tape.gradient(loss, variables), variables, loss)
      losses = losses.write(t, loss)
    return losses.stack()
  return run


def run_task(task: heldout_tasks.Task, seed: int, learned: dict[str, str],
             num_steps: int) -> dict:
  """Every optimizer on one task and seed for ``num_steps``: loss curves, test losses, seconds;
  ``run_on(lr)`` continues an Adam run to the speedup cap."""
  variables, train_loss, test_loss = task.make(seed)
  start_values = [v.numpy() for v in variables]
  out = {"adam": {}, "learned": {}}

  def restart():
    for v, value in zip(variables, start_values):
      v.assign(value)

  rate = tf.Variable(0.0)
  adam = snt.optimizers.Adam(rate)
  run = _compiled_loop(variables, train_loss, lambda g, v, _: adam.apply(g, v), num_steps)
  for lr in ADAM_GRID:
    restart()
    for slot in _slots(adam):
      slot.assign(tf.zeros_like(slot))
    rate.assign(lr)
    started = time.perf_counter()
    curve = run(tf.constant(0)).numpy()
    out["adam"][lr] = {"curve": curve, "seconds": time.perf_counter() - started,
                       "test": float(test_loss()) if test_loss else None,
                       "variables": [v.numpy() for v in variables],
                       "slots": [s.numpy() for s in _slots(adam)]}
  for name, path in learned.items():
    restart()
    optimizer = l2l.LearnedOptimizer.load(path, num_steps=num_steps)
    run_learned = _compiled_loop(
        variables, train_loss, lambda g, v, loss: optimizer.apply(g, v, loss=loss), num_steps)
    started = time.perf_counter()
    curve = run_learned(tf.constant(0)).numpy()
    out["learned"][name] = {"curve": curve, "seconds": time.perf_counter() - started,
                            "test": float(test_loss()) if test_loss else None}
  out["run_on"] = lambda lr: _run_on(run, adam, rate, variables, out["adam"][lr], lr, num_steps)
  return out


def _slots(adam: snt.optimizers.Adam) -> list[tf.Variable]:
  """Adam's state (its step counter and moments), not its learning-rate variable."""
  return [adam.step] + list(adam.m) + list(adam.v)


def _run_on(run, adam, rate, variables, result: dict, lr: float, num_steps: int) -> np.ndarray:
  """Continues the Adam run of rate ``lr`` from where it ended to SPEEDUP_CAP × num_steps."""
  for v, value in zip(variables, result["variables"]):
    v.assign(value)
  for s, value in zip(_slots(adam), result["slots"]):
    s.assign(value)
  rate.assign(lr)
  curves = [result["curve"]]
  for k in range(1, SPEEDUP_CAP):
    curves.append(run(tf.constant(k * num_steps)).numpy())
  return np.concatenate(curves)


def summarise_task(task: heldout_tasks.Task, runs: list[dict]) -> dict:
  """The table row of one task from its runs over the seeds (see the module docstring)."""
  num_steps = len(runs[0]["adam"][ADAM_GRID[0]]["curve"])
  size = window(num_steps)

  def final(curve):
    value = float(np.mean(curve[-size:]))
    return value if math.isfinite(value) else math.inf

  adam_final = {lr: float(np.mean([final(r["adam"][lr]["curve"]) for r in runs]))
                for lr in ADAM_GRID}
  best = min(ADAM_GRID, key=lambda lr: adam_final[lr])
  long_curve = np.mean([r["run_on"](best) for r in runs], axis=0)
  initial = float(np.mean([r["adam"][best]["curve"][0] for r in runs]))
  row = {"task": task.name, "steps": num_steps, "initial_loss": initial, "adam_lr": best,
         "adam_tuned": adam_final[best], "adam_1e-3": adam_final[UNTUNED_ADAM],
         "adam_tuned_test": _mean_test(r["adam"][best] for r in runs),
         "curves": {"Adam tuned": long_curve[:num_steps].tolist(),
                    "Adam 1e-3": np.mean([r["adam"][UNTUNED_ADAM]["curve"] for r in runs],
                                         0).tolist()},
         "learned": {}}
  for name in runs[0]["learned"]:
    finals = [final(r["learned"][name]["curve"]) for r in runs]
    value = float(np.mean(finals))
    ratio = speedup(value, long_curve, num_steps, size)
    row["learned"][name] = {
        "final": value, "test": _mean_test(r["learned"][name] for r in runs),
        "speedup": min(ratio, SPEEDUP_CAP), "past_cap": bool(ratio > SPEEDUP_CAP),
        "beats_tuned": bool(value < adam_final[best]),
        "beats_1e-3": bool(value < adam_final[UNTUNED_ADAM]),
        "diverged": bool(any(not f < r["learned"][name]["curve"][0]
                             for f, r in zip(finals, runs))),
        "seconds": float(np.mean([r["learned"][name]["seconds"] for r in runs]))}
    row["curves"][name] = np.mean([r["learned"][name]["curve"] for r in runs], 0).tolist()
  return row


def _mean_test(results) -> float | None:
  tests = [r["test"] for r in results]
  return None if tests[0] is None else float(np.mean(tests))


def summarise(rows: list[dict]) -> dict:
  """Per learned optimizer: wins, median and IQM speedup (capped), divergences."""
  summary = {}
  for name in rows[0]["learned"]:
    entries = [row["learned"][name] for row in rows]
    speedups = [e["speedup"] for e in entries]  # Those past the cap at the cap.
    summary[name] = {
        "tasks": len(entries),
        "wins_vs_tuned_adam": sum(e["beats_tuned"] for e in entries) / len(entries),
        "wins_vs_adam_1e-3": sum(e["beats_1e-3"] for e in entries) / len(entries),
        "median_speedup": float(np.median(speedups)),
        "iqm_speedup": interquartile_mean(speedups),
        "diverged": [row["task"] for row, e in zip(rows, entries) if e["diverged"]]}
  return summary


def plot(rows: list[dict], path: str) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  columns = 4
  fig, axes = plt.subplots(math.ceil(len(rows) / columns), columns,
                           figsize=(4 * columns, 3 * math.ceil(len(rows) / columns)), squeeze=False)
  for ax, row in zip(axes.flat, rows):
    size = window(row["steps"])
    for name, curve in row["curves"].items():
      style = "--" if name.startswith("Adam") else "-"
      label = f"Adam {row['adam_lr']:g}" if name == "Adam tuned" else name
      ax.semilogy(smooth(np.asarray(curve), size), style, label=label)
    ax.set_title(row["task"], fontsize=9)
    ax.legend(fontsize=6)
  for ax in list(axes.flat)[len(rows):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def _fmt_speedup(entry: dict) -> str:
  return f"> {SPEEDUP_CAP}" if entry["past_cap"] else f"{entry['speedup']:.2f}"


def main(argv):
  del argv
  unknown = sorted(set(FLAGS.tasks) - {t.name for t in heldout_tasks.TASKS})
  if unknown:
    raise app.UsageError(f"unknown tasks {unknown}; the suite has "
                         f"{[t.name for t in heldout_tasks.TASKS]}")
  learned = {name: name for name in SHIPPED_LEARNED if name in l2l.pretrained.SHIPPED}
  learned.update(item.split("=", 1) for item in FLAGS.learned)
  rows, table = [], []
  for task in heldout_tasks.TASKS:
    if task.name not in FLAGS.tasks:
      continue
    started = time.perf_counter()
    num_steps = min(task.num_steps, FLAGS.max_steps or task.num_steps)
    row = summarise_task(task, [run_task(task, seed, learned, num_steps)
                                for seed in range(FLAGS.seeds)])
    rows.append(row)
    for name, entry in row["learned"].items():
      table.append({"task": task.name, "optimizer": name, "final": entry["final"],
                    "adam_tuned": row["adam_tuned"], "adam_lr": row["adam_lr"],
                    "adam_1e-3": row["adam_1e-3"], "test": entry["test"] or "-",
                    "adam_test": row["adam_tuned_test"] or "-",
                    "speedup": _fmt_speedup(entry),
                    "diverged": "yes" if entry["diverged"] else "no"})
    print(f"{task.name}: {time.perf_counter() - started:.0f} s", flush=True)
  print_table(table, ["task", "optimizer", "final", "adam_tuned", "adam_lr", "adam_1e-3", "test",
                      "adam_test", "speedup", "diverged"])
  summary = summarise(rows)
  for name, s in summary.items():
    print(f"{name}: beats tuned Adam on {s['wins_vs_tuned_adam']:.0%} of {s['tasks']} tasks, "
          f"Adam 1e-3 on {s['wins_vs_adam_1e-3']:.0%}; speedup median "
          f"{s['median_speedup']:.2f}, IQM {s['iqm_speedup']:.2f} (capped at {SPEEDUP_CAP}); "
          f"diverged on {s['diverged'] or 'none'}")
  os.makedirs(RESULTS_DIR, exist_ok=True)
  plot(rows, os.path.join(RESULTS_DIR, f"{FLAGS.output}.png"))
  print("wrote", write_results(FLAGS.output, table, summary=summary, tasks=[
      {k: v for k, v in row.items() if k != "curves"} for row in rows],
      curves={row["task"]: row["curves"] for row in rows}, adam_grid=list(ADAM_GRID),
      seeds=FLAGS.seeds))


if __name__ == "__main__":
  cli.run(main)
