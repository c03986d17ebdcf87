import os
from concurrent.futures import ThreadPoolExecutor

from setuptools import setup
from setuptools.command.build_ext import build_ext


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class ParallelBuildExt(build_ext):
    """Compile an extension's C files concurrently, one compiler job per usable
    CPU (or -j N): setuptools compiles them one after another."""

    def build_extension(self, ext):
        compile_serial = self.compiler.compile
        jobs = self.parallel if isinstance(self.parallel, int) and self.parallel > 1 else _cpus()

        def compile_parallel(sources, *args, **kwargs):
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                parts = pool.map(lambda src: compile_serial([src], *args, **kwargs), sources)
                return [obj for part in parts for obj in part]

        self.compiler.compile = compile_parallel
        try:
            super().build_extension(ext)
        finally:
            del self.compiler.compile


# Metadata lives in pyproject.toml; setup.py only hooks in the cffi build.
setup(cmdclass={"build_ext": ParallelBuildExt},
      cffi_modules=["src/fastconv/_build_native.py:ffibuilder"])
