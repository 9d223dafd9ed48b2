"""Model tests train small torch models: one torch thread each.

On a loaded 2-core machine (pytest-xdist runs two workers) two threads per process made
small fits tens of times slower than one.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
