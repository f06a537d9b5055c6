"""vaxrecon: reconcile vaccination exports against the national population registry."""

from __future__ import annotations

__version__ = "0.1.0"
