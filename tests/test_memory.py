"""Peak memory per stage (pipeline.memory): the kernel's high-water mark, reset per stage."""

import sys

import numpy as np
import pytest

from pipeline.memory import peak_gb, reset_peak


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resettable peak (VmHWM, clear_refs) is Linux's")
def test_peak_follows_an_allocation_and_resets():
    assert reset_peak()
    before = peak_gb()
    block = np.ones(300_000_000 // 8)       # 300 MB, touched
    during = peak_gb()
    del block
    assert during - before >= 0.29
    assert reset_peak()
    after = peak_gb()
    assert after < during - 0.25             # the freed block no longer counts
