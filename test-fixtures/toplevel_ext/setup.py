from setuptools import Extension, setup

setup(
    packages=["ftfixture_toplevel"],
    ext_modules=[Extension("ftfixture_toplevel._ext", ["src/ext.c"])],
)
