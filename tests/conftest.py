import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def one_torch_thread():
    """PyTorch on one thread for a test: on a shared 2-core machine, tiny models run far slower on two."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
