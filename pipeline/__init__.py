"""vaxrecon: reconcile vaccination exports against the national population registry."""

from __future__ import annotations

__version__ = "0.1.0"

# Every process that runs vaxrecon's work (the command, the scheduler's flow, a Dask worker given
# its tasks) imports this package first: the memory pool is chosen here, before any work.
from pipeline.memory import use_returning_memory_pool

use_returning_memory_pool()
