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
