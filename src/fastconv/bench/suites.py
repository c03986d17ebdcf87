"""Benchmark suites as data: the conv layers of published networks and the
GEMM shapes those layers lower to.

Every entry is a fact of the network it names (channels, image size, kernel,
stride, padding, groups at batch 1); the batch is chosen at run time.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from .. import _args, lower
from .networks import SlidingWindow


@dataclass(frozen=True)
class ConvLayer:
    """One conv2d problem, NCHW, float32: x (batch, c, h, w), weight (k, c/groups, kh, kw)."""
    suite: str
    name: str
    c: int
    h: int
    w: int
    k: int
    kh: int
    kw: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    kind = "conv"

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    def params(self, batch: int = 1) -> _args.ConvParams:
        """The layer's geometry as fastconv's lowering resolves it."""
        x = lower.shaped_like("x_shape", (batch, self.c, self.h, self.w))
        w = lower.shaped_like("w_shape", (self.k, self.c // self.groups, self.kh, self.kw))
        return _args.conv2d_args(x, w, None, self.stride, self.pad, 1, self.groups, "NCHW")[3]

    @property
    def out_hw(self) -> tuple[int, int]:
        p = self.params()
        return p.oh, p.ow

    @property
    def is_full_size(self) -> bool:
        """The kernel covers the whole input: the conv is an FC layer."""
        return self.params().is_full_size

    def flops(self, batch: int = 1) -> int:
        return self.params(batch).flops

    def min_bytes(self, batch: int = 1, itemsize: int = 4) -> int:
        """Bytes any implementation must move at least once: input, weights, output."""
        oh, ow = self.out_hw
        return itemsize * (batch * self.c * self.h * self.w + batch * self.k * oh * ow
                           + self.k * (self.c // self.groups) * self.kh * self.kw)

    def describe(self) -> str:
        g = f" g{self.groups}" if self.groups > 1 else ""
        return (f"{self.c}x{self.h}x{self.w} -> {self.k}, {self.kh}x{self.kw} "
                f"s{self.stride} p{self.pad}{g}")

    def reduced(self) -> "ConvLayer":
        """A small layer with the same structure (kernel, stride, padding, depthwise
        or not, full-size or not), for a fast correctness pass."""
        p = self.params()
        full, depthwise = p.is_full_size, p.is_depthwise
        c = min(self.c, 16 if depthwise else 8)
        k = c if depthwise else min(self.k, 12)
        side = lambda n, kn: n if full else min(n, max(2 * kn, 13))
        return replace(self, c=c, k=k, groups=c if depthwise else 1,
                       h=side(self.h, self.kh), w=side(self.w, self.kw))


@dataclass(frozen=True)
class GemmShape:
    """C (m, n) = A (m, k) @ B (k, n), float32, all C-contiguous."""
    suite: str
    name: str
    m: int
    n: int
    k: int
    kind = "gemm"

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    @property
    def memory_bound(self) -> bool:
        """A GEMV (m = 1) streams the weights once: its limit is bandwidth, not FMAs."""
        return self.m == 1

    def flops(self, batch: int = 1) -> int:
        return 2 * self.m * self.n * self.k

    def min_bytes(self, batch: int = 1, itemsize: int = 4) -> int:
        return itemsize * (self.m * self.k + self.k * self.n + self.m * self.n)

    def describe(self) -> str:
        return f"M={self.m} N={self.n} K={self.k}"

    def reduced(self) -> "GemmShape":
        return replace(self, m=min(self.m, 67), n=min(self.n, 45), k=min(self.k, 131))


def _conv(suite, rows):
    return tuple(ConvLayer(suite, *row) for row in rows)


# (name, C, H, W, K, kh, kw, stride, pad, groups)
RESNET50 = _conv("resnet50", [
    ("conv1", 3, 224, 224, 64, 7, 7, 2, 3, 1),
    ("l1.1x1a", 64, 56, 56, 64, 1, 1, 1, 0, 1),
    ("l1.3x3", 64, 56, 56, 64, 3, 3, 1, 1, 1),
    ("l1.1x1b", 64, 56, 56, 256, 1, 1, 1, 0, 1),
    ("l1.1x1c", 256, 56, 56, 64, 1, 1, 1, 0, 1),
    ("l2.1x1a", 256, 56, 56, 128, 1, 1, 1, 0, 1),
    ("l2.3x3s2", 128, 56, 56, 128, 3, 3, 2, 1, 1),
    ("l2.3x3", 128, 28, 28, 128, 3, 3, 1, 1, 1),
    ("l2.1x1b", 128, 28, 28, 512, 1, 1, 1, 0, 1),
    ("l2.ds", 256, 56, 56, 512, 1, 1, 2, 0, 1),
    ("l3.3x3", 256, 14, 14, 256, 3, 3, 1, 1, 1),
    ("l3.1x1b", 256, 14, 14, 1024, 1, 1, 1, 0, 1),
    ("l3.1x1c", 1024, 14, 14, 256, 1, 1, 1, 0, 1),
    ("l4.3x3", 512, 7, 7, 512, 3, 3, 1, 1, 1),
    ("l4.1x1b", 512, 7, 7, 2048, 1, 1, 1, 0, 1),
])
VGG16 = _conv("vgg16", [
    ("conv1_2", 64, 224, 224, 64, 3, 3, 1, 1, 1),
    ("conv2_2", 128, 112, 112, 128, 3, 3, 1, 1, 1),
    ("conv3_2", 256, 56, 56, 256, 3, 3, 1, 1, 1),
    ("conv4_2", 512, 28, 28, 512, 3, 3, 1, 1, 1),
    ("conv5_2", 512, 14, 14, 512, 3, 3, 1, 1, 1),
    ("fc6", 512, 7, 7, 4096, 7, 7, 1, 0, 1),   # the FC layer written as a conv
])
ALEXNET = _conv("alexnet", [("conv1", 3, 224, 224, 64, 11, 11, 4, 2, 1)])
LENET = _conv("lenet", [
    ("conv1", 1, 28, 28, 6, 5, 5, 1, 2, 1),
    ("conv2", 6, 14, 14, 16, 5, 5, 1, 0, 1),
])
MOBILENET = _conv("mobilenet", [("dw3x3", 144, 56, 56, 144, 3, 3, 1, 1, 144)])
PNET = _conv("pnet", [("conv1", 3, 480, 640, 10, 3, 3, 1, 0, 1)])   # a 640x480 image

GEMM = tuple(GemmShape("gemm", f"{m}x{n}x{k}", m, n, k) for m, n, k in [
    (1000, 1000, 1000), (1024, 1024, 1024), (2048, 2048, 2048),
    # what CNN layers lower to: ResNet-50 3x3 convs per stage, conv1, a 1x1 conv
    (3136, 64, 576), (784, 128, 1152), (196, 256, 2304), (49, 512, 4608),
    (12544, 64, 147), (3136, 256, 64),
    (64, 4096, 4096),      # VGG fc7 at batch 64
    (1, 4096, 25088),      # VGG fc6 at batch 1: a GEMV, memory-bound
])

# LeNet-5 over a 280x280 image: fully convolutional vs sliding window (needs fastconv.models)
SLIDING = (SlidingWindow("lenet5", "280x280", 280),)

SUITES = {
    "lenet": LENET, "resnet50": RESNET50, "vgg16": VGG16, "alexnet": ALEXNET,
    "mobilenet": MOBILENET, "pnet": PNET, "gemm": GEMM,
    "sliding": SLIDING,
}
SUITES["conv"] = RESNET50 + VGG16 + ALEXNET + LENET + MOBILENET + PNET
SUITES["all"] = SUITES["conv"] + GEMM + SLIDING
# Whole torchvision networks from ONNX, each implementation in a process of its
# own: run by bench/netbench.py, not by the layer runner (so not part of "all").
SUITES["networks"] = ()


def _pick(entries, *names):
    by_id = {e.id: e for e in entries}
    return tuple(by_id[n] for n in names)


# The default: one of each kind of layer and GEMM, about a minute on 2 cores.
SUITES["quick"] = _pick(SUITES["all"],
                        "resnet50/l1.3x3",      # a 3x3 conv, direct or im2col
                        "resnet50/l3.1x1b",     # a 1x1 conv: a GEMM on the input as it lies
                        "alexnet/conv1",        # a large kernel with stride 4
                        "mobilenet/dw3x3",      # depthwise
                        "vgg16/fc6",            # an FC layer written as a conv: a GEMV
                        "gemm/1024x1024x1024",
                        "gemm/3136x64x576",
                        "gemm/1x4096x25088")
DEFAULT_SUITE = "quick"


def suite(names: str) -> tuple:
    """The entries of comma-separated suite names, each once, in order."""
    out, seen = [], set()
    for name in names.split(","):
        name = name.strip()
        if name not in SUITES:
            raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        for e in SUITES[name]:
            if e.id not in seen:
                seen.add(e.id)
                out.append(e)
    return tuple(out)
