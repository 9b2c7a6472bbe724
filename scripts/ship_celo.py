"""Writes the shipped Celo optimizer, l2l/pretrained/celo, from its published weights.

    .venv/bin/python scripts/ship_celo.py tests/fixtures/celo/celo_theta.npz

``celo_theta.npz`` is the published parameter file of Celo (github.com/amoudgl/celo, MIT licence),
one array per '/'-joined parameter path; ``l2l.nets.celo.published_weights`` maps it onto ``Celo``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cli  # noqa: E402

cli.quiet_tensorflow()

import numpy as np  # noqa: E402

import l2l  # noqa: E402
from l2l.nets import celo  # noqa: E402

DEFAULT_NUM_STEPS = 1000  # Replaced by the user's horizon at load time (num_steps=...).


def main(theta_path: str) -> None:
  optimizer = l2l.MetaOptimizer(
      celo={"net": "Celo", "net_options": {"num_steps": DEFAULT_NUM_STEPS}})
  with np.load(theta_path) as arrays:
    for name, value in celo.published_weights(dict(arrays)).items():
      getattr(optimizer.nets["celo"], name).assign(value)
  directory = os.path.join(l2l.pretrained.DIRECTORY, "celo")
  optimizer.save(directory)
  print(f"wrote {directory}")


if __name__ == "__main__":
  main(sys.argv[1])
