"""Helpers and torchrun / subprocess targets of the tests (not collected: no test_*.py here)."""
