"""The scripted session driver of the project's tests is the public one (alice_trio.testing)."""

from alice_trio.testing import ScriptedDriver

__all__ = ["ScriptedDriver"]
