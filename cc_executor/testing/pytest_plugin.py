"""The pytest plugin of cc_executor (registered through the ``pytest11`` entry point,
so installing cc_executor is enough): fixtures for testing code that runs Claude Code.

- ``scripted_model``: a started `ScriptedModel` on 127.0.0.1 with no turns yet
  (`add` them), closed after the test. ``scripted_model.config(cwd=tmp_path)`` is a
  config whose CLI talks to it.
- ``no_retry_waits``: `set_testing(True)` for the test, the previous mode after.

Nothing is imported from cc_executor until a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import ScriptedModel

__all__ = ["no_retry_waits", "scripted_model"]


@pytest.fixture
def scripted_model() -> Iterator[ScriptedModel]:
    """A started `ScriptedModel` (scripted Messages API on loopback), stopped after the test."""
    from ._server import ScriptedModel

    with ScriptedModel() as model:
        yield model


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    """Retries start at once during the test (`cc_executor.testing.set_testing`)."""
    from ._mode import set_testing

    with set_testing(True):
        yield
