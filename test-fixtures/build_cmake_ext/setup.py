"""The C part (``ftfixture_cmake._tally``) links a static library that CMake builds from
``lib/``. It is optional: without CMake the package installs its pure-Python fallback, the way
real packages degrade when a build tool is missing."""

import os
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class build_ext_with_cmake_library(build_ext):
    def run(self):
        try:
            library_dir = self.build_tally_library()
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}")
            print("warning: skipping optional C-extension, tally library build failed")
            return
        for ext in self.extensions:
            ext.library_dirs.append(library_dir)
        super().run()

    def build_tally_library(self):
        build_dir = os.path.abspath(os.path.join(self.build_temp, "tally"))
        os.makedirs(build_dir, exist_ok=True)
        subprocess.check_call(
            ["cmake", "-S", "lib", "-B", build_dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
        )
        subprocess.check_call(["cmake", "--build", build_dir])
        return build_dir


setup(
    packages=["ftfixture_cmake"],
    ext_modules=[
        Extension(
            "ftfixture_cmake._tally",
            ["src/tally_module.c"],
            include_dirs=["lib"],
            libraries=["tally"],
        )
    ],
    cmdclass={"build_ext": build_ext_with_cmake_library},
)
