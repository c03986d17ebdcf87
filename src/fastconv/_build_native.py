"""cffi build script: compiles every C file under csrc/ into fastconv._native.

setup.py names this file in ``cffi_modules``.  The cdef is the block of
csrc/fastconv.h between the CDEF markers, so the header is the single source
of truth for the ABI.

Environment switches (all opt-in; the default build is portable):
  FASTCONV_DEBUG=1     -O1 -g with assert() enabled
  FASTCONV_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer, -O0, asserts on,
                       signed overflow undefined (-fno-wrapv) so UBSan reports it
  FASTCONV_NATIVE=1    -march=native: tune for the build host only
"""
import os
import re
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parents[2] / "csrc"


def _cdef(header: Path) -> str:
    text = header.read_text()
    m = re.search(r"/\* CDEF BEGIN \*/(.*)/\* CDEF END \*/", text, re.S)
    if not m:
        raise RuntimeError(f"{header}: CDEF markers not found")
    return m.group(1)


def _flags():
    on = lambda name: os.environ.get(name, "") not in ("", "0")
    sanitize, debug = on("FASTCONV_SANITIZE"), on("FASTCONV_DEBUG")
    cflags = ["-std=gnu11", "-fopenmp", "-fno-math-errno", "-Wall", "-Wno-unused-function"]
    ldflags = ["-fopenmp"]
    if sanitize:
        # -O0: at -O1 the instrumented conv tile templates take minutes each to compile.
        # These flags come after Python's own CFLAGS: -fno-wrapv undoes its -fwrapv
        # (which hides signed overflow from UBSan), -UNDEBUG its -DNDEBUG (asserts on).
        cflags += ["-O0", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=undefined", "-fno-wrapv", "-UNDEBUG"]
        ldflags += ["-fsanitize=address,undefined"]
    elif debug:
        cflags += ["-O1", "-g", "-UNDEBUG"]
    else:
        cflags += ["-O3", "-DNDEBUG", "-g0"]  # -g0: Python's own CFLAGS ask for -g
    if on("FASTCONV_NATIVE"):
        cflags.append("-march=native")
    return cflags, ldflags


ffibuilder = FFI()
ffibuilder.cdef(_cdef(CSRC / "fastconv.h"))
_cflags, _ldflags = _flags()
ffibuilder.set_source(
    "fastconv._native",
    '#include "fastconv.h"',
    sources=sorted(str(p.relative_to(CSRC.parent)) for p in CSRC.rglob("*.c")),
    include_dirs=[str(CSRC)],
    # Headers and template includes: editing one must trigger a rebuild.
    depends=sorted(str(p.relative_to(CSRC.parent)) for p in CSRC.rglob("*")
                   if p.suffix in (".h", ".inc")),
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
