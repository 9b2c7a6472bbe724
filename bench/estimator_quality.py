"""PES against TBPTT as meta-training estimators, and both against per-task-tuned Adam.

For each problem (the 10-d quadratics, the paper's MNIST MLP), the "original" LSTM preset is
meta-trained over the task family (``l2l.family_training``: 8 tasks per estimate, truncation 20,
horizon 100, Adam 3e-3 on the nets) once with truncated BPTT and once with PES (one antithetic
pair per task, σ = 0.01), for the same number of outer steps; the weights kept are those of the
best validation (8 fixed training-split tasks, 100 steps). Then every optimizer trains the same 16
held-out tasks (test split, other seeds) for 100 and 200 steps, and Adam does too at each
learning rate of a log grid (1e-4 … 1, 9 values), keeping the best per horizon. Reported: log10 of
the mean final loss. Seeds fixed; one run per configuration.

Run: ``.venv/bin/python bench/estimator_quality.py [--outer_steps=N]`` (writes
bench/results/estimator_quality.json).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

import problems  # noqa: E402
from bench.common import print_table, write_results  # noqa: E402
from l2l import estimators  # noqa: E402
from l2l import family_training  # noqa: E402
from l2l import meta  # noqa: E402
from l2l import tasks  # noqa: E402

flags.DEFINE_integer("outer_steps", 400, "Outer steps per meta-training run.")
flags.DEFINE_list("problems", ["quadratic", "mnist"], "Registry names to run.")
FLAGS = flags.FLAGS

ADAM_RATES = np.logspace(-4, 0, 9)
HORIZONS = (100, 200)
NUM_TEST_TASKS = 16


def final_log10(family, nets_optimizer, num_steps: int) -> float:
  """log10 mean final loss of the held-out tasks trained ``num_steps`` steps."""
  run = family_training.validation_runner(family, nets_optimizer, None, NUM_TEST_TASKS,
                                          num_steps, tasks.as_seed(12345), True)
  loss = float(np.mean(run().numpy()))
  return float(np.log10(loss)) if np.isfinite(loss) and loss > 0 else float("nan")


def tuned_adam(family, num_steps: int) -> tuple[float, float]:
  """(best log10 mean final loss over the rate grid, its rate)."""
  results = []
  for rate in ADAM_RATES:
    adam = meta.MetaOptimizer(adam={"net": "Adam", "net_options": {"learning_rate": float(rate)}})
    results.append((final_log10(family, adam, num_steps), float(rate)))
  finite = [r for r in results if np.isfinite(r[0])]
  return min(finite)


def main(argv):
  del argv
  rows = []
  for name in FLAGS.problems:
    train_family, _ = problems.get_family(name, "train")
    test_family, _ = problems.get_family(name, "test")
    row = {"problem": name, "outer_steps": FLAGS.outer_steps}
    for estimator in ("tbptt", "pes"):
      optimizer = meta.MetaOptimizer.from_preset("original")
      config = estimators.EstimatorConfig(estimator, num_tasks=8, num_particles=1, sigma=0.01,
                                          truncation=20, horizon=tasks.ConstantHorizon(100))
      result = family_training.meta_train_families(
          optimizer, [train_family], train_family, config, FLAGS.outer_steps,
          learning_rate=3e-3, evaluation_period=max(FLAGS.outer_steps // 8, 1),
          evaluation_tasks=8, evaluation_steps=100, seed=0, progress_seconds=60,
          save_path=os.path.join("/tmp", f"estimator_quality_{name}_{estimator}"))
      best = meta.MetaOptimizer.load(os.path.join("/tmp", f"estimator_quality_{name}_{estimator}"))
      for horizon in HORIZONS:
        row[f"{estimator}_{horizon}"] = final_log10(test_family, best, horizon)
      row[f"{estimator}_steps_per_s"] = result.steps_per_second
      row[f"{estimator}_best_step"] = result.best_step
    for horizon in HORIZONS:
      row[f"adam_{horizon}"], row[f"adam_{horizon}_rate"] = tuned_adam(test_family, horizon)
    rows.append(row)
    print_table([row], list(row))
  print()
  columns = ["problem", "outer_steps"] + [f"{m}_{h}" for h in HORIZONS
                                          for m in ("tbptt", "pes", "adam")]
  print_table(rows, columns)
  path = write_results("estimator_quality", rows, adam_rates=ADAM_RATES.tolist(),
                       setting="original LSTM preset; 8 tasks x truncation 20, horizon 100, "
                               "Adam 3e-3 on the nets; 16 held-out tasks; log10 mean final loss")
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
