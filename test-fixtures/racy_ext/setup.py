from setuptools import Extension, setup

setup(ext_modules=[Extension("ftfixture_racy", ["src/ftfixture_racy.c"])])
