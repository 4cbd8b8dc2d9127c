"""Imports a test-only dependency nothing installs: collection fails, and ftreview must name
it as a missing test dependency."""

import ftfixture_not_installed_anywhere  # noqa: F401


def test_never_collected():
    pass
