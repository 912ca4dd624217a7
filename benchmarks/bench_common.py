"""What the benchmark scripts share: a description of the machine, label noise, writing their results."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import torch


def machine_info() -> Dict[str, Any]:
    """Platform, CPU count, library versions, torch threads and the 1-minute load average now."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads(),
            "loadavg_at_start": list(os.getloadavg())}


def write_results(out: Path, name: str, report: Dict[str, Any], plot: Callable[[Path], None]) -> None:
    """``<out>/<name>.json`` from ``report`` and ``<out>/<name>.png`` from ``plot(path)``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    plot(out / f"{name}.png")
    print(f"wrote {out / (name + '.json')} and {out / (name + '.png')}")


def inject_noise(labels: torch.Tensor, num_classes: int, rate: float, seed: int) -> "tuple[torch.Tensor, np.ndarray]":
    """Symmetric noise: ``round(rate * n)`` samples (chosen by ``seed``) get a label drawn
    uniformly from the *other* classes. Returns (noisy labels, bool [n] flipped)."""
    rng = np.random.default_rng([seed, 7919])
    n = len(labels)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, int(round(rate * n)), replace=False)] = True
    noisy = labels.clone()
    shift = torch.from_numpy(rng.integers(1, num_classes, size=int(flipped.sum())))
    noisy[torch.from_numpy(flipped)] = (labels[torch.from_numpy(flipped)] + shift) % num_classes
    return noisy, flipped


def update_readme(name: str, text: str, readme: Path = Path(__file__).resolve().parents[1] / "README.md") -> bool:
    """Replace the README block between ``<!-- bench:name -->`` and ``<!-- /bench:name -->``;
    False (README untouched) if the markers are missing."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    content = readme.read_text()
    if start not in content or end not in content:
        return False
    head, rest = content.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{text}{end}{tail}")
    return True
