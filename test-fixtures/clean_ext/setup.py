from setuptools import Extension, setup

setup(ext_modules=[Extension("ftfixture_clean", ["src/ftfixture_clean.c"])])
