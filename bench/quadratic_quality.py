"""Does the learned optimizer beat tuned Adam on held-out quadratics? Three meta-training seeds.

Each seed meta-trains the "original" preset as ``make train`` does (300 epochs of 100 steps in
unrolls of 20, Adam 0.01 on the net, the best of three validations kept), then optimizes the same
100 held-out problems (seed 1, as ``evaluate.py``) for 100 steps. Adam runs on those problems at
every learning rate of the grid; the best is the baseline. Target: the learned optimizer's log10
mean final loss is at least 0.2 below the best Adam's, with at most 5 minutes of meta-training.

Run: ``.venv/bin/python bench/quadratic_quality.py`` (writes bench/results/quadratic_quality.json
and quadratic_quality.png).
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.


import problems  # noqa: E402
from bench.common import RESULTS_DIR, print_table, write_results  # noqa: E402
from l2l import evaluation, meta, training  # noqa: E402

SEEDS = (0, 1, 2)
ADAM_GRID = (0.3, 0.1, 0.03, 0.01, 0.003)
EVAL_SEED, EVAL_EPOCHS, NUM_STEPS, UNROLL = 1, 100, 100, 20
TRAIN = {"num_epochs": 300, "learning_rate": 0.01, "evaluation_period": 100,
         "evaluation_epochs": 20, "logging_period": 100}
TARGET_MARGIN = 0.2


def main():
  make_loss = problems.get_config("quadratic", "test").make_loss
  adam = {lr: evaluation.run_epochs(
              evaluation.baseline_epoch_runner("Adam", lr, make_loss, NUM_STEPS), EVAL_EPOCHS,
              seed=EVAL_SEED) for lr in ADAM_GRID}
  best_lr = min(adam, key=lambda lr: adam[lr]["mean_final_loss"])
  best_adam = adam[best_lr]["log10_mean_final_loss"]
  rows, curves = [], {}
  for seed in SEEDS:
    with tempfile.TemporaryDirectory() as path:
      start = time.perf_counter()
      training.meta_train(problems.get_config("quadratic"), num_steps=NUM_STEPS,
                          unroll_length=UNROLL, save_path=path, seed=seed, **TRAIN)
      seconds = time.perf_counter() - start
      run = evaluation.learned_epoch_runner(meta.MetaOptimizer.load(path), make_loss, NUM_STEPS,
                                            UNROLL)
      result = evaluation.run_epochs(run, EVAL_EPOCHS, seed=EVAL_SEED)
    curves[f"L2L, seed {seed}"] = result["mean_loss_curve"]
    rows.append({"seed": seed, "meta_train_s": seconds,
                 "l2l_log10": result["log10_mean_final_loss"], "best_adam_lr": best_lr,
                 "best_adam_log10": best_adam,
                 "margin": best_adam - result["log10_mean_final_loss"]})
  print_table(rows, list(rows[0]))
  print("Adam grid: " + ", ".join(f"lr {lr}: {adam[lr]['log10_mean_final_loss']:.3f}"
                                  for lr in ADAM_GRID))
  for lr in ADAM_GRID:
    curves[f"Adam, lr {lr}"] = adam[lr]["mean_loss_curve"]
  plot_path = os.path.join(RESULTS_DIR, "quadratic_quality.png")
  evaluation.plot_curves(curves, plot_path, f"Quadratic 128 x 10: learned optimizer vs Adam, "
                         f"{EVAL_EPOCHS} held-out problems")
  path = write_results(
      "quadratic_quality", rows, target_margin=TARGET_MARGIN, plot=os.path.basename(plot_path),
      adam_grid={str(lr): adam[lr]["log10_mean_final_loss"] for lr in ADAM_GRID},
      setting=f"train: {TRAIN}; evaluation: {EVAL_EPOCHS} problems of seed {EVAL_SEED}, "
              f"{NUM_STEPS} steps")
  print(f"wrote {path} and {plot_path}")


if __name__ == "__main__":
  main()
