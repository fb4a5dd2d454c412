"""``python -m benchmarks.peak OUT MODULE ARGS…``: run ``python -m MODULE ARGS…`` in this process
and write its peak resident size (``VmHWM``, bytes) to OUT at exit.

``ru_maxrss`` from ``wait4`` cannot be used for a child of a big harness: it counts the parent's
pages the child shared before ``exec``. ``VmHWM`` read by the process itself is its own peak.
"""

from __future__ import annotations

import atexit
import runpy
import sys
from pathlib import Path


def _write_peak(out: str) -> None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            Path(out).write_text(str(int(line.split()[1]) * 1024))
            return


if __name__ == "__main__":
    out, module, *rest = sys.argv[1:]
    atexit.register(_write_peak, out)
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
