"""Speed of a learned optimizer's step on a ~100k-parameter model, against Adam's.

Two Sonnet models on the embedded MNIST subset, batch 128: an MLP 784-128-10 (101 770 parameters)
and a small convnet (conv 32-64-128 3×3 with 2×2 pooling, linear 10; 113 162 parameters). Each is
trained by ``l2l.LearnedOptimizer`` with the "original" preset (coordinatewise LSTM 20-20 over every
coordinate, LogAndSign k = 5), with the "nnadam" preset (Adam whose step size and momentum one LSTM
sets, ``l2l.networks.NNAdam``), with the shipped Celo (``l2l.nets.celo``), with the shipped
``general`` (Celo's architecture, meta-trained here) and by
``snt.optimizers.Adam``, each inside one ``tf.function`` with ``jit_compile=True``. Timed: the whole
training step (forward, backward, optimizer) and the optimizer's ``apply`` alone on fixed gradients.
Targets: learned training step ≤ 2× Adam's (Celo: ≤ 3×; ``general``: ≤ 2×).

Run: ``.venv/bin/python bench/learned_optimizer.py`` (writes bench/results/learned_optimizer.json).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()  # Before TensorFlow is imported.

import sonnet as snt  # noqa: E402
import tensorflow as tf  # noqa: E402

import l2l  # noqa: E402
from bench.common import print_table, time_interleaved, write_results  # noqa: E402
from problems import datasets  # noqa: E402

BATCH = 128
# The paper's LSTM over every coordinate; Adam + one LSTM; Celo's per-parameter MLP.
LEARNED = {
    "original": lambda: l2l.LearnedOptimizer(l2l.MetaOptimizer.from_preset("original").nets),
    "nnadam": lambda: l2l.LearnedOptimizer(l2l.MetaOptimizer.from_preset("nnadam").nets),
    "celo": lambda: l2l.LearnedOptimizer.load("celo", num_steps=1000),
    "general": lambda: l2l.LearnedOptimizer.load("general", num_steps=1000),
}


def _models() -> dict[str, snt.Module]:
  conv = lambda c: snt.Conv2D(c, 3, padding="SAME")
  pool = lambda x: tf.nn.max_pool2d(x, 2, 2, "SAME")
  return {
      "MLP 784-128-10": snt.Sequential([snt.Flatten(), snt.nets.MLP([128, 10])]),
      "convnet 32-64-128": snt.Sequential([
          conv(32), tf.nn.relu, pool, conv(64), tf.nn.relu, pool, conv(128), tf.nn.relu, pool,
          snt.Flatten(), snt.Linear(10)]),
  }


def main() -> None:
  images, labels = datasets.load_embedded_mnist("train")
  x = tf.constant(images[:BATCH], tf.float32) / 255.0
  y = tf.constant(labels[:BATCH], tf.int32)
  rows = []
  for name, model in _models().items():
    model(x)
    params = model.trainable_variables
    size = sum(int(tf.size(p)) for p in params)
    optimizers = {"Adam": snt.optimizers.Adam(1e-3)}
    optimizers.update({key: make() for key, make in LEARNED.items()})
    fixed = [tf.random.normal(p.shape, stddev=1e-3) for p in params]

    def apply(optimizer, grads, loss):
      if isinstance(optimizer, l2l.LearnedOptimizer):
        return optimizer.apply(grads, params, loss=loss)
      return optimizer.apply(grads, params)

    def train_step(optimizer):
      @tf.function(jit_compile=True)
      def step():
        with tf.GradientTape() as tape:
          loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x)))
        apply(optimizer, tape.gradient(loss, params), loss)
        return loss
      return step

    def apply_only(optimizer):
      return tf.function(lambda: apply(optimizer, fixed, tf.constant(1.0)), jit_compile=True)

    for preset in LEARNED:  # Each against Adam on its own: the LSTM's long steps slow what follows.
      fns = {}
      for key in ("Adam", preset):
        fns[f"{key} training step"] = train_step(optimizers[key])
        fns[f"{key} apply"] = apply_only(optimizers[key])
      timing = time_interleaved(fns, repeats=15, number=10)
      for what in ("training step", "apply"):
        adam, learned = timing[f"Adam {what}"], timing[f"{preset} {what}"]
        rows.append({"model": name, "parameters": size, "preset": preset, "timed": what,
                     "adam_ms": adam["median_s"] * 1e3, "l2l_ms": learned["median_s"] * 1e3,
                     "ratio": learned["median_s"] / adam["median_s"]})
  print_table(rows, ["model", "parameters", "preset", "timed", "adam_ms", "l2l_ms", "ratio"])
  print("wrote", write_results("learned_optimizer", rows,
                               target="learned training step <= 2x Adam's (celo: 3x)",
                               batch_size=BATCH))


if __name__ == "__main__":
  main()
