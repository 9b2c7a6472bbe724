"""Optimizer nets that are more than a row-wise map; the registry of every net is
``l2l.networks.NETS``."""
