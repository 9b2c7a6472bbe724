"""The fast learned optimizer (preset "nnadam", ``l2l.networks.NNAdam``) on the paper's MNIST settings.

NN-Adam is Adam whose step size and momentum one LSTM sets at every step from statistics of all
coordinates, so a step costs about Adam's (``bench/learned_optimizer.py``), where the paper's
LSTM runs over every coordinate. It starts as Adam with the learning rate tuned for this problem
(0.03) and is meta-trained on "mnist" with ``TRAIN``: second derivatives and whole 100-step
unrolls (with the paper's 20-step truncation and first-order gradients its validation loss got
worse as it trained). Three seeds, evaluated on the same 100 test problems as
``bench/paper_results.py``, next to the tuned baselines and the paper's LSTM recorded there
(bench/results/paper_results.json: run that first).

Run: ``.venv/bin/python bench/fast_optimizer.py`` (writes bench/results/fast_optimizer.json; about
8 minutes on the 2-core CPU). Meta-trained optimizers are kept under ``--run_dir``/mnist-nnadam.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

from absl import app  # noqa: E402
import numpy as np  # noqa: E402

import problems  # noqa: E402
from bench import paper_results  # noqa: E402
from bench.common import RESULTS_DIR, print_table, write_results  # noqa: E402
from l2l import evaluation, meta  # noqa: E402

FLAGS = paper_results.FLAGS
TRAIN = {"num_epochs": 300, "learning_rate": 0.001, "preset": "nnadam", "unroll_length": 100,
         "second_derivatives": True, "clip_norm": 10.0}


def main(argv):
  del argv
  with open(os.path.join(RESULTS_DIR, "paper_results.json")) as f:
    recorded = {row["setting"]: row for row in json.load(f)["rows"]}
  seeds = [int(s) for s in FLAGS.seeds]
  trained = [paper_results.meta_train("mnist", seed, None, TRAIN, "mnist-nnadam")
             for seed in seeds]
  rows = []
  for row_name, problem, steps, trained_on in paper_results.SETTINGS:
    if trained_on != "mnist":
      continue
    config = problems.get_config(problem, "test")
    results = []
    for path, _ in trained:
      run = evaluation.learned_epoch_runner(meta.MetaOptimizer.load(path), config.make_loss,
                                            steps, paper_results.UNROLL)
      results.append(paper_results.evaluate(run, config.make_loss, paper_results.TEST_EPOCHS,
                                             paper_results.TEST_SEED))
    scores = [r["log10_mean_final_loss"] for r in results]
    baseline = recorded[row_name]
    best = min(paper_results.BASELINES, key=lambda name: baseline[name])
    rows.append({"setting": row_name, "steps": steps, "nnadam_seeds": scores,
                 "nnadam_mean": float(np.mean(scores)), "lstm_mean": baseline["l2l_mean"],
                 "adam": baseline["Adam"], "best_baseline": f"{best} {baseline[best]:.3f}",
                 "beats_tuned_adam_all_seeds": max(scores) < baseline["Adam"],
                 "beats_every_baseline_all_seeds": max(scores) < baseline[best],
                 "eval_s_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in results]))})
  print_table(rows, ["setting", "nnadam_mean", "nnadam_seeds", "lstm_mean", "adam",
                     "best_baseline", "beats_tuned_adam_all_seeds",
                     "beats_every_baseline_all_seeds"])
  print("wrote", write_results(
      "fast_optimizer", rows, train=TRAIN, meta_train_s=[s for _, s in trained],
      protocol="as bench/paper_results.py; baselines and LSTM from paper_results.json"))


if __name__ == "__main__":
  app.run(main)
