"""The C speedups (``ftfixture_broken._speedups``) are optional: when they fail to compile the
package installs its pure-Python implementation instead (the common optional-extension
pattern, which hides the compiler error in the build log)."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class optional_build_ext(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:
            print(f"warning: could not compile the C extension ({exc}); falling back to pure Python")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"warning: could not compile the C extension {ext.name} ({exc}); falling back to pure Python")


setup(
    packages=["ftfixture_broken"],
    ext_modules=[Extension("ftfixture_broken._speedups", ["src/speedups.c"])],
    cmdclass={"build_ext": optional_build_ext},
)
