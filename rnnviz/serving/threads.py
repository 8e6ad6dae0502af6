"""One helper for torch's intra-op thread count."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def one_thread():
    """Run a block on one intra-op thread, restoring the previous setting afterwards.

    Work made of many tiny sequential ops (per-step loops, small autograd graphs) gains nothing
    from a second thread and, on a busy small machine, loses an order of magnitude or more to
    thread hand-offs. Note the setting is process-wide while the block runs.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
