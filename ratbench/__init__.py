"""ratbench: a benchmark harness for selective rationalization (RNP, VER and baselines).

Nothing heavy is imported here: ``ratbench --help`` and ``ratbench ls`` stay torch-free.
"""

from __future__ import annotations

__version__ = "0.1.0"

from ratbench.errors import RatbenchError
from ratbench.registry import DATASETS, METHODS, register_dataset, register_method

__all__ = ["DATASETS", "METHODS", "RatbenchError", "__version__", "register_dataset", "register_method"]
