"""Fixtures of the mobile API tests: the control app on both stores (tests/control's
fixtures), an organization with an administrator and a member of the group ``mobile``."""

from __future__ import annotations

import pytest

from tests.control.conftest import (  # noqa: F401 - fixtures
    auth,
    client,
    clock,
    from_address,
    make_client,
    org,
    settings,
    settings_overrides,
)
from tests.web.conftest import browser, playwright_driver, screenshots  # noqa: F401 - fixtures

from .helpers import Clinic


@pytest.fixture
async def clinic(client, store, org, clock) -> Clinic:  # noqa: F811
    """Kallio Vet: a department in Helsinki, an administrator and a vet with the mobile right,
    the app still off."""
    c = Clinic(client, store, org, clock)
    await c.setup()
    return c
