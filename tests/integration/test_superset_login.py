"""The browser's login to Superset: a refused password ends it at once, with what the login page said.

Its own module: Playwright's sync API runs one instance per thread, and test_superset_browser keeps one open for the
whole of its module.
"""

from __future__ import annotations

import pytest

from lakehouse.scripts.errors import StackError
from lakehouse.scripts.superset_browser import DashboardBrowser
from lakehouse.scripts.superset_server import SupersetServer


def test_a_wrong_password_is_refused_at_once_with_what_the_login_page_said(superset_server: SupersetServer) -> None:
    """Superset's answer to the form (back to the login page) ends the login, with the page's own message."""
    wrong = DashboardBrowser(superset_server.url, "admin", "not-" + superset_server.credentials().admin_password)
    refused = r"refused the login of 'admin' \(the page said: .*Invalid username or password"
    with pytest.raises(StackError, match=refused), wrong:
        pass
