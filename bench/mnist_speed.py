"""Seconds per MNIST epoch (100 steps): meta-training, and evaluation of L2L against Adam.

Setting: the "mnist" problem (MLP 784-20-10, sigmoid, batch 128, embedded data), the paper preset
(coordinatewise LSTM 20-20 over the 15 910 coordinates), unrolls of 20, XLA. For reference, the
original code on a GPU: 0.76 s per meta-training epoch, 0.60 s per evaluation epoch.

Run: ``.venv/bin/python bench/mnist_speed.py`` (writes bench/results/mnist_speed.json).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

import numpy as np  # noqa: E402

import problems  # noqa: E402
from bench.common import print_table, write_results  # noqa: E402
from l2l import evaluation, meta, training  # noqa: E402

EPOCHS, STEPS, UNROLL = 10, 100, 20


def main() -> None:
  start = time.perf_counter()
  result = training.meta_train(problems.get_config("mnist"), EPOCHS + 1, STEPS, UNROLL,
                               learning_rate=0.01, preset="paper", evaluation_period=10**6, logging_period=10**6)
  first = time.perf_counter() - start - EPOCHS * result.seconds_per_epoch
  make_loss = problems.get_config("mnist", "test").make_loss
  runs = {"L2L": evaluation.learned_epoch_runner(meta.MetaOptimizer.from_preset("paper"),
                                                 make_loss, STEPS, UNROLL),
          "Adam": evaluation.baseline_epoch_runner("Adam", 0.03, make_loss, STEPS)}
  evaluation_s = {}
  for name, run in runs.items():
    run()  # Compile.
    times = []
    for _ in range(EPOCHS):
      tick = time.perf_counter()
      run()
      times.append(time.perf_counter() - tick)
    evaluation_s[name] = float(np.median(times))
  ratio = evaluation_s["L2L"] / evaluation_s["Adam"]
  rows = [{"what": "meta-training epoch (L2L)", "seconds": result.seconds_per_epoch,
           "vs_adam_evaluation": None, "original_gpu_s": 0.76},
          {"what": "evaluation epoch, L2L", "seconds": evaluation_s["L2L"],
           "vs_adam_evaluation": ratio, "original_gpu_s": 0.60},
          {"what": "evaluation epoch, Adam", "seconds": evaluation_s["Adam"],
           "vs_adam_evaluation": 1.0, "original_gpu_s": None}]
  print_table(rows, ["what", "seconds", "vs_adam_evaluation", "original_gpu_s"])
  print("wrote", write_results("mnist_speed", rows, first_epoch_with_compile_s=first,
                               setting=f"{EPOCHS} epochs of {STEPS} steps, unroll {UNROLL}"))


if __name__ == "__main__":
  main()
