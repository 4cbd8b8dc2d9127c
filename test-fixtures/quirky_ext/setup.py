from setuptools import Extension, setup

# src layout: tests run from this directory must import the installed package, not its source.
setup(
    package_dir={"": "src"},
    packages=["ftfixture_quirky"],
    ext_modules=[Extension("ftfixture_quirky._q", ["src/quirky.c"])],
)
