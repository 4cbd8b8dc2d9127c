from setuptools import Extension, setup

setup(ext_modules=[Extension("ftfixture_gil", ["src/ftfixture_gil.c"])])
