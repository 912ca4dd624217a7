"""Compute gating inside a batch: which tokens (:mod:`.tokens`, CGGR's idea with honest savings)
and which rows (:mod:`.selective`) get a backward pass. Public paths: :mod:`gekodata.tokens` and
:mod:`gekodata.selective`."""
