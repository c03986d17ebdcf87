"""fastconv as a threadpoolctl library: `threadpool_info()` lists it and
`threadpool_limits(n)` caps its thread count in the calling thread (as it
does OpenMP's).

threadpoolctl finds libraries among the loaded shared objects, so the
controller matches the C core (`_native*.so`, told apart from other
`_native` modules by one of its symbols), which registering loads; without
the C core fastconv is not listed.  `import fastconv` does not import threadpoolctl: the controller is
registered when threadpoolctl is imported, or at once if it already was.
"""
import importlib.machinery
import sys


def _register() -> None:
    import threadpoolctl

    from . import __version__
    from .config import _limit, get_num_threads

    class FastconvController(threadpoolctl.LibController):
        user_api = "fastconv"
        internal_api = "fastconv"
        filename_prefixes = ("_native",)
        check_symbols = ("fc_set_local_num_threads",)

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            _limit(num_threads)

        def get_version(self):
            return __version__

    try:  # load the C core, which fastconv otherwise loads at its first C call
        from .backends import c  # noqa: F401
    except ImportError:
        return
    threadpoolctl.register(FastconvController)


class _RegisterOnImport:
    """A meta-path finder that runs _register right after threadpoolctl's
    module has executed, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "threadpoolctl":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    if "threadpoolctl" in sys.modules:
        _register()
    else:
        sys.meta_path.insert(0, _RegisterOnImport())
