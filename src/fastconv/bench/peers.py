"""Peers: what a user would otherwise run, set to the same thread count.

conv: torch.nn.functional.conv2d (oneDNN) and ONNX Runtime (MLAS) on a
one-node Conv model.  gemm: NumPy (its BLAS, OpenBLAS in the wheels) and
torch.mm.  A peer that is not installed raises PeerUnavailable with a
one-line reason, and the run goes on without it.
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np

PEERS = ("numpy", "torch", "onnxruntime")
KINDS = {"numpy": ("gemm",), "torch": ("conv", "gemm"), "onnxruntime": ("conv",)}

#: The IR version and opset of the Conv model: old enough for any recent
#: ONNX Runtime, new enough for every Conv attribute used here.
_ONNX_IR, _ONNX_OPSET = 8, 13


class PeerUnavailable(Exception):
    """A peer cannot run here; the message is one line saying why."""


def _import(module: str, peer: str):
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install
        raise PeerUnavailable(f"{peer} is not installed ({type(exc).__name__}: {exc})") from None


def supports(peer: str, kind: str) -> bool:
    return kind in KINDS[peer]


def check_available(peer: str) -> None:
    """Raise PeerUnavailable unless everything `peer` needs imports."""
    if peer not in PEERS:
        raise ValueError(f"unknown peer {peer!r}; choose from {', '.join(PEERS)}")
    if peer == "torch":
        _import("torch", peer)
    elif peer == "onnxruntime":
        _import("onnxruntime", peer)
        _import("onnx", "onnxruntime (its model builder, the onnx package,)")


@contextlib.contextmanager
def thread_limits(threads: int, peers):
    """Give every peer's thread pool `threads` threads for the duration.
    ONNX Runtime takes its count per session (see conv)."""
    with contextlib.ExitStack() as stack:
        if "numpy" in peers:
            try:
                from threadpoolctl import threadpool_limits
            except ImportError:
                pass  # BLAS then uses its own default; the report says so
            else:
                stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
        if "torch" in peers:
            torch = _import("torch", "torch")
            old = torch.get_num_threads()
            torch.set_num_threads(threads)
            stack.callback(torch.set_num_threads, old)
        yield


def blas_threads_controlled() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


#: OpenBLAS core names by the widest x86 vector ISA their kernels use
#: (threadpoolctl reports the one in use as "architecture").
_OPENBLAS_ISA = {"skylakex": "avx512", "cooperlake": "avx512", "sapphirerapids": "avx512",
                 "haswell": "avx2", "zen": "avx2", "excavator": "avx2",
                 **dict.fromkeys(("prescott", "core2", "penryn", "nehalem", "sandybridge",
                                  "barcelona", "bulldozer", "piledriver", "steamroller",
                                  "atom"), "sse/avx")}
_ISA_RANK = {"generic": 0, "sse/avx": 0, "avx2": 1, "avx512": 2}


def blas_core_warning(env, isa: str, architecture: str | None = None) -> str | None:
    """A warning when OPENBLAS_CORETYPE (in `env`) pins NumPy's OpenBLAS to a
    core whose kernels use a narrower vector ISA than `isa`, the one this CPU
    runs fastconv on: NumPy's rows would then understate what it can do.
    `architecture` is the core OpenBLAS reports (threadpoolctl); without it
    the variable's value is taken.  Cores not in the table are not judged."""
    forced = env.get("OPENBLAS_CORETYPE")
    if not forced:
        return None
    core = architecture or forced
    theirs = _OPENBLAS_ISA.get(core.lower())
    if theirs is None or _ISA_RANK[theirs] >= _ISA_RANK.get(isa, 0):
        return None
    return (f"warning: OPENBLAS_CORETYPE={forced} makes NumPy's OpenBLAS run {core} "
            f"kernels ({theirs}) on this {isa} CPU, so its rows are slower than NumPy "
            f"can be; unset OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) for a fair comparison")


def openblas_architecture() -> str | None:
    """The core OpenBLAS runs (threadpoolctl), or None if unknown."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    for pool in threadpoolctl.threadpool_info():
        if pool.get("internal_api") == "openblas" and pool.get("architecture"):
            return pool["architecture"]
    return None


def conv(peer: str, layer, x, weight, bias, threads: int):
    """A callable running `layer` on (x, weight, bias) with `peer`, returning an ndarray."""
    if peer == "torch":
        torch = _import("torch", peer)
        xt, wt, bt = (torch.from_numpy(a) for a in (x, weight, bias))
        f = torch.nn.functional.conv2d

        def run():
            with torch.inference_mode():
                return f(xt, wt, bt, layer.stride, layer.pad, 1, layer.groups).numpy()
        return run
    if peer == "onnxruntime":
        session = _onnx_conv_session(layer, x, weight, bias, threads)
        return lambda: session.run(None, {"x": x})[0]
    raise PeerUnavailable(f"{peer} has no conv here")


def _onnx_conv_session(layer, x, weight, bias, threads):
    ort = _import("onnxruntime", "onnxruntime")
    onnx = _import("onnx", "onnxruntime (its model builder, the onnx package,)")
    helper, TP = onnx.helper, onnx.TensorProto
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[layer.kh, layer.kw],
                            strides=[layer.stride] * 2, pads=[layer.pad] * 4,
                            group=layer.groups, dilations=[1, 1])
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TP.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(weight, "w"),
                     onnx.numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _ONNX_OPSET)])
    model.ir_version = _ONNX_IR
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def linear(peer: str, x, weight, bias, threads: int):
    """A callable computing the FC layer x @ weight.T + bias with `peer` (torch only)."""
    if peer != "torch":
        raise PeerUnavailable(f"{peer} has no linear here")
    torch = _import("torch", peer)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, weight, bias))

    def run():
        with torch.inference_mode():
            return torch.nn.functional.linear(xt, wt, bt).numpy()
    return run


def gemm(peer: str, a, b, threads: int):
    """A callable computing a @ b with `peer`, returning an ndarray."""
    if peer == "numpy":
        return lambda: np.matmul(a, b)
    if peer == "torch":
        torch = _import("torch", peer)
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.mm(at, bt).numpy()
    raise PeerUnavailable(f"{peer} has no gemm here")
