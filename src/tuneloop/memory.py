"""Keep freed memory from piling up in the process: glibc's malloc and PyTorch's CPU tensors.

glibc serves a large allocation from ``mmap`` (returned to the system when freed) only above a
threshold that it raises, by default, each time such a block is freed, up to 32 MB. A training
step frees and allocates thousands of tensors of a few to a few hundred MB; once the threshold
has grown, they come from the heap instead, whose freed space fragments and stays in the
process. Measured on one training step of the default model (4 x 512 tokens, two micro-batches):
8.2 GiB peak RSS with the moving threshold, 5.2 GiB with a fixed 128 KiB one (docs/training.md,
"Memory").
Fixing it (``mallopt(M_MMAP_THRESHOLD)``, what ``MALLOC_MMAP_THRESHOLD_`` does at start-up) is
the usual remedy; elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed


def steady_allocator() -> bool:
    """Fix glibc's mmap threshold for this process; whether it was done."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
