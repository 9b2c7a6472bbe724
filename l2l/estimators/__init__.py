"""Gradient estimators for meta-training that need only forward unrolls: antithetic ES over a
truncation or a whole unroll (``es``) and persistent ES (``pes``)."""

from l2l.estimators.es import EstimatorState, Unroll, antithetic_noise, es_gradient, perturb
from l2l.estimators.es import TruncatedES
from l2l.estimators.pes import PES

__all__ = ["EstimatorState", "PES", "TruncatedES", "Unroll", "antithetic_noise", "es_gradient",
           "perturb"]
