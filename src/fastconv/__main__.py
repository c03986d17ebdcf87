"""python -m fastconv info | bench | demo | detect  (see --help of each)."""
import importlib
import sys

USAGE = """usage: python -m fastconv {info,bench,demo,detect} [options]

  info    CPU, kernels, threads, measured FMA peak and memory bandwidth
  bench   time fastconv next to NumPy, PyTorch and ONNX Runtime (bench --help)
  demo    FC = conv = GEMM, shown and timed on VGG-16 and LeNet
  detect  find faces in a photo with MTCNN (detect PHOTO [--out a.png] [--json f.json])"""


def demo(argv) -> int:
    try:
        demo_module = importlib.import_module("fastconv.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "fastconv.demo":
            raise
        print("python -m fastconv demo: this fastconv has no demo module (fastconv.demo)",
              file=sys.stderr)
        return 1
    return demo_module.main(argv) or 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "info":
        from fastconv.bench.cli import info
        return info(rest)
    if command == "bench":
        from fastconv.bench.cli import bench
        return bench(rest)
    if command == "demo":
        return demo(rest)
    if command == "detect":
        from fastconv.faces import main as detect
        return detect(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:   # output piped into `head` and the like
        sys.stdout = None
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
