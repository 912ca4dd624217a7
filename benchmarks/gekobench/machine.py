"""A description of the machine a benchmark ran on."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch


def machine_info() -> dict[str, Any]:
    """Platform, CPU count, library versions, torch threads and the 1-minute load average now."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_at_start": list(os.getloadavg()),
    }


def machine() -> str:
    """One line: system, processor, cores, torch version and threads, python."""
    info = machine_info()
    return (
        f"{platform.system()} {info['processor']}, {info['cpu_count']} CPU cores, torch {info['torch']} "
        f"({info['torch_threads']} threads), python {info['python']}"
    )
