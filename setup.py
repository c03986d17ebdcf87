from setuptools import setup

# Metadata lives in pyproject.toml; setup.py only hooks in the cffi build.
setup(cffi_modules=["src/fastconv/_build_native.py:ffibuilder"])
