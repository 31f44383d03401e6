"""lamina.allocator: freed array memory is reused without page faults, and can be handed
back to glibc's defaults."""
import resource
import sys

import numpy as np
import pytest

from lamina import allocator

pytestmark = pytest.mark.skipif(allocator._libc is None, reason="needs glibc's mallopt")


def _faults_of_reuse(nbytes, rounds=5):
    """Minor page faults of allocating, filling and freeing an array ``rounds`` times."""
    n = nbytes // 8
    np.ones(n).sum()  # warm up: the first allocation may fault everywhere
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        a = np.empty(n)
        a.fill(1.0)
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_kept_memory_is_reused_without_faults():
    was = allocator.keeping_freed_memory()
    try:
        assert allocator.keep_freed_memory(False)
        assert not allocator.keeping_freed_memory()
        fresh = _faults_of_reuse(8 << 20)
        assert allocator.keep_freed_memory(True)
        assert allocator.keeping_freed_memory()
        kept = _faults_of_reuse(8 << 20)
    finally:
        allocator.keep_freed_memory(was)
    # 5 x 8 MiB of 4 KiB pages is 10,240 faults when each round gets fresh pages
    # (fewer with transparent huge pages); reused memory faults hardly at all
    assert kept < 50, kept
    assert fresh > 4 * kept + 8, (fresh, kept)


def test_on_by_default_unless_the_environment_says_no():
    import subprocess
    code = "import lamina.allocator as a; print(a.keeping_freed_memory())"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        check=True).stdout.strip()
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ,
                                          "LAMINA_KEEP_FREED_MEMORY": "0"}).stdout.strip()
    assert (on, off) == ("True", "False")
