"""Evaluation CLI on held-out problems.

``--problem=sinusoid``: loads an initialisation saved by ``train.py`` (or the untrained one with no
``--path``), draws ``--num_tasks`` held-out tasks from ``--seed``, adapts with k SGD steps (step 0.02,
as the Reptile demo) on 10 points of each task, and reports the mean and median MSE over the 50
points for every k in ``--adapt_steps``. Prints a table and writes
``{"mse": {"k": {"mean": …, "median": …}}, …}`` to ``--output_json``.
"""

import json
import os

from absl import app, flags

from l2l import initialisation

FLAGS = flags.FLAGS
flags.DEFINE_enum("problem", "sinusoid", ["sinusoid"], "Problem to evaluate on.")
flags.DEFINE_string("path", None, "Directory written by train.py; none: the untrained model.")
flags.DEFINE_integer("num_tasks", 200, "Held-out tasks.", lower_bound=1)
flags.DEFINE_list("adapt_steps", ["0", "1", "8", "32"], "Adaptation step counts to report.")
flags.DEFINE_float("adapt_learning_rate", 0.02, "SGD step size for adaptation.", lower_bound=0.0)
flags.DEFINE_integer("seed", 1, "Seed of the held-out tasks (training uses its own stream).")
flags.DEFINE_string("output_json", None, "Where to write the results as JSON.")


def main(argv):
  del argv
  try:
    adapt_steps = sorted({int(k) for k in FLAGS.adapt_steps})
  except ValueError:
    raise app.UsageError(f"--adapt_steps must be non-negative integers, got {FLAGS.adapt_steps}")
  if adapt_steps[0] < 0:
    raise app.UsageError(f"--adapt_steps must be non-negative integers, got {FLAGS.adapt_steps}")
  results = initialisation.evaluate_sinusoid(initialisation.load_params(FLAGS.path), FLAGS.num_tasks, adapt_steps,
                              FLAGS.adapt_learning_rate, FLAGS.seed)
  results["path"] = FLAGS.path
  print(f"{'steps':>6} {'mean MSE':>10} {'median MSE':>11}")
  for k, row in results["mse"].items():
    print(f"{k:>6} {row['mean']:>10.4f} {row['median']:>11.4f}")
  if FLAGS.output_json:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output_json)), exist_ok=True)
    with open(FLAGS.output_json, "w") as f:
      json.dump(results, f, indent=2)
    print(f"wrote {FLAGS.output_json}")


if __name__ == "__main__":
  app.run(main)
