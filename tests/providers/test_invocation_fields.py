"""``Invocation`` refuses fields of the wrong type at construction (a builder of another
package): a lone argv string is not split into characters, stdin is bytes, cwd a string, the
timeouts numbers >= 0, limits a ``RunLimits``, env_remove names. Each a ``ConfigError``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from alice_trio.errors import ConfigError
from alice_trio.providers.base import Invocation, RunLimits


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("argv", "/bin/echo", "argv is a str"),
        ("argv", b"/bin/echo", "argv is a bytes"),
        ("stdin", "text", "stdin is str"),
        ("cwd", 5, "cwd is int"),
        ("cwd", b"/tmp", "cwd is bytes"),
        ("timeout", math.nan, "timeout is nan"),
        ("timeout", -1.0, "timeout is -1.0"),
        ("idle_timeout", "10", "idle_timeout is '10'"),
        ("timeout", True, "timeout is True"),
        ("limits", None, "limits is NoneType"),
        ("env_remove", "HOME", "env_remove is not a sequence"),
        ("env_remove", (1,), "env_remove is not a sequence"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_config_error(field: str, value: Any, says: str) -> None:
    kw: dict[str, Any] = {"argv": ("/bin/echo",), field: value}
    with pytest.raises(ConfigError, match=says):
        Invocation(**kw)


def test_well_typed_fields_pass() -> None:
    inv = Invocation(
        argv=["/bin/echo", "hi"], stdin=b"x", cwd="/tmp", timeout=0, idle_timeout=1.5,
        limits=RunLimits(), env_remove=("HOME",),
    )  # fmt: skip
    assert inv.argv == ("/bin/echo", "hi") and inv.timeout == 0
