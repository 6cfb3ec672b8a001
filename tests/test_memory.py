"""instrec.memory: glibc's malloc settings take, in a process of their own (they are process-wide)."""

import subprocess
import sys

import pytest

from instrec import memory


@pytest.mark.skipif(not memory._glibc(), reason="the C library is not glibc: the settings do nothing")
def test_settings_take_in_a_fresh_process():
    code = ("from instrec import memory; import numpy as np\n"
            "assert memory.limit_arenas(1) is True\n"
            "memory.keep_heap(); memory.keep_heap()\n"
            "a = np.ones(1 << 20); del a\n"
            "memory.give_back(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_limit_arenas_refuses_nothing_silently_where_not_glibc(monkeypatch):
    monkeypatch.setattr(memory, "_libc", False)
    assert memory.limit_arenas() is False
    memory.give_back()  # no error where glibc is absent
