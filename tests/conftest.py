import os
import sys

from hypothesis import settings

# tests import their helpers (fake_provider, helpers, decoding, …) as top-level modules
sys.path.insert(0, os.path.dirname(__file__))

# CI runs the same Hypothesis examples every time (a rare example found on a developer's
# machine is a bug to fix there, not a coin flip that decides whether a submission lands);
# local runs keep exploring new examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


# A bare ``trio.Cancelled`` out of an async test body is reported as a pass by pytest-trio (its
# test nursery swallows it), so a defect that lets a stray Cancelled escape the library would
# pass every test that hits it. Nothing in a test body is cancelled from outside it: such an
# escape is always a failure.
def pytest_collection_modifyitems(items: list) -> None:
    import functools
    import inspect

    import pytest
    import trio

    def strict(fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        async def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            try:
                return await fn(*args, **kwargs)
            except trio.Cancelled as exc:
                pytest.fail(f"a bare trio.Cancelled escaped the test body: {exc!r}")

        return wrapper

    for item in items:
        fn = getattr(item, "obj", None)
        if inspect.iscoroutinefunction(fn) and not getattr(fn, "_alice_strict", False):
            wrapped = strict(fn)
            wrapped._alice_strict = True  # type: ignore[attr-defined]
            item.obj = wrapped


# A test that hangs must fail the run, not stall it until CI's own time limit with no word of
# where: each test (setup, call, teardown) gets ALICE_TRIO_TEST_TIMEOUT seconds (default 600,
# far above the slowest test's few tens of seconds on a loaded 2-core machine). Then its name
# and every thread's stack go to the real stderr and pytest ends with exit status 1 (SIGALRM;
# faulthandler's own watchdog thread a minute later, should the main thread never get back to
# Python). The run's CLI processes die with it: the engine's guardian kills them when their
# host is gone.
_TEST_TIMEOUT = float(os.environ.get("ALICE_TRIO_TEST_TIMEOUT", "600"))


def _real_stderr(config):  # type: ignore[no-untyped-def]
    """The fd of the real stderr (pytest's faulthandler plugin keeps a copy: fd 2 is captured)."""
    from _pytest.faulthandler import fault_handler_stderr_fd_key

    fd = config.stash.get(fault_handler_stderr_fd_key, None)
    return fd if fd is not None else sys.__stderr__.fileno()


def pytest_runtest_protocol(item, nextitem):  # type: ignore[no-untyped-def]
    import faulthandler
    import signal

    if _TEST_TIMEOUT <= 0:
        return None
    fd = _real_stderr(item.config)

    def hung(signum, frame):  # type: ignore[no-untyped-def]
        os.write(fd, f"\n\n{item.nodeid} still runs after {_TEST_TIMEOUT:g} s (hung?); "
                     "every thread's stack:\n".encode())  # fmt: skip
        faulthandler.dump_traceback(file=fd, all_threads=True)
        os._exit(1)

    signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, _TEST_TIMEOUT)
    faulthandler.dump_traceback_later(_TEST_TIMEOUT + 60, exit=True, file=fd)
    return None


def pytest_runtest_logfinish(nodeid, location):  # type: ignore[no-untyped-def]
    import faulthandler
    import signal

    signal.setitimer(signal.ITIMER_REAL, 0)
    faulthandler.cancel_dump_traceback_later()
