"""The C accelerator (``ftfixture_forced._accel``) is left out on free-threaded CPython unless
``FTFIXTURE_FORCED_REQUIRE_EXTENSION=yes`` asks for it, the way packages hold back a C part
they have not ported yet; ``FTFIXTURE_FORCED_DISABLE_EXTENSION`` turns it off everywhere."""

import os
import sysconfig

from setuptools import Extension, setup


def c_extension_wanted():
    if os.environ.get("FTFIXTURE_FORCED_DISABLE_EXTENSION"):
        return False
    if os.getenv("FTFIXTURE_FORCED_REQUIRE_EXTENSION", "no") == "yes":
        return True
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        print("skipping the C accelerator on free-threaded CPython; the pure-Python version is used")
        return False
    return True


ext_modules = [Extension("ftfixture_forced._accel", ["src/accel.c"])]
setup(
    packages=["ftfixture_forced"],
    ext_modules=ext_modules if c_extension_wanted() else [],
)
