"""The PyTorch half of CTGAN and TVAE: span activations, losses and the training session.

Imported only inside ``fit``/``sample`` of the neural methods, after ``require_torch``: the
service starts, and its other methods run, without PyTorch.

A transformed row is a sequence of spans (``neural.Span``): single alphas squashed by tanh,
and one-hots produced by a softmax. The reference implementation loops over the spans in
Python for every batch (activation, conditional loss, TVAE's loss). Here the networks work
in their own column order, where spans of one width sit side by side (``SpanLayout``), so a
whole row is activated, or scored, with a few kernels per distinct span width.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from inwire.services.synthex.generators.methods.neural import Span

#: Threads for the matrix products of these networks. They are small (a few hundred wide):
#: measured on a 2-core machine, a second thread saved under 10 % when the machine was idle
#: and cost 3-6x when another process wanted the other core (the threads wait on each other).
MAX_THREADS = 1


@contextlib.contextmanager
def torch_session(seed: int) -> Iterator[None]:
    """Seeded, single-process PyTorch work that leaves the global RNG and threads as it was."""
    threads = torch.get_num_threads()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(max(1, min(MAX_THREADS, usable or 1)))
        try:
            yield
        finally:
            torch.set_num_threads(threads)


class SpanLayout:
    """The networks' own column order, in which every span operation is a reshape.

    The networks read and write the transformed matrix with its columns permuted to
    ``[all alphas | all one-hots of width w1 | all of width w2 | …]``. Spans of one width
    then sit side by side, so a group's softmax is one ``view(batch, spans, width)``:
    no gather, no padding, a handful of kernels per distinct width instead of a few per
    column. ``to_network``/``from_network`` move matrices between the two orders.
    """

    def __init__(self, spans: Sequence[Span]) -> None:
        alphas = [s for s in spans if s.activation == "alpha"]
        widths = sorted({s.width for s in spans if s.activation == "softmax"})
        grouped = [[s for s in spans if s.activation == "softmax" and s.width == w] for w in widths]
        network_spans = alphas + [s for group in grouped for s in group]
        order = [c for s in network_spans for c in range(s.start, s.start + s.width)]
        #: ``matrix[:, order]`` is the matrix in network order; ``restore`` undoes it.
        self.order = np.asarray(order, dtype=np.int64)
        self.restore = np.argsort(self.order)
        self.alphas = len(alphas)
        #: (first network column, spans, width) of each group of one-hots.
        self.groups: list[tuple[int, int, int]] = []
        column = self.alphas
        for width, group in zip(widths, grouped, strict=True):
            self.groups.append((column, len(group), width))
            column += len(group) * width
        #: Where each span of the matrix lands: its network column and one-hot number.
        starts = np.cumsum([0] + [s.width for s in network_spans])[:-1]
        self.network_start = {s.start: int(c) for s, c in zip(network_spans, starts, strict=True)}
        onehots = network_spans[len(alphas) :]
        self.onehot_number = {s.start: i for i, s in enumerate(onehots)}

    def to_network(self, matrix: np.ndarray) -> np.ndarray:
        """A matrix in the transformer's order, permuted to the networks' order."""
        return np.ascontiguousarray(matrix[:, self.order])

    def from_network(self, matrix: np.ndarray) -> np.ndarray:
        """A network output back in the transformer's order."""
        return matrix[:, self.restore]

    def _views(self, raw: Tensor, *, onehots_only: bool = False) -> Iterator[Tensor]:
        """Each group of one-hots of ``raw`` as ``(batch, spans, width)``; ``onehots_only``
        when ``raw`` holds the one-hot columns only (no alphas before them)."""
        shift = self.alphas if onehots_only else 0
        for start, count, width in self.groups:
            yield raw[:, start - shift : start - shift + count * width].reshape(-1, count, width)

    def _with_gumbel(self, raw: Tensor) -> Tensor:
        """The one-hot logits of ``raw`` plus standard Gumbel noise, one tensor for all."""
        logits = raw[:, self.alphas :]
        return _gumbel(logits.shape).add_(logits)

    def activate(self, raw: Tensor, *, tau: float | None = None) -> Tensor:
        """tanh on alphas, softmax on one-hots (Gumbel-softmax at ``tau`` if given)."""
        parts = [torch.tanh(raw[:, : self.alphas])]
        if tau is None:
            views = self._views(raw)
        else:
            views = self._views(self._with_gumbel(raw).div_(tau), onehots_only=True)
        parts += [_softmax(logits).flatten(1) for logits in views]
        return torch.cat(parts, dim=1)

    def draw(self, raw: Tensor) -> Tensor:
        """tanh on alphas; each one-hot span a one-hot *drawn* from its softmax.

        A decoder that models a one-hot as a categorical distribution (TVAE's) generates
        by sampling it, as it samples alphas around their means. Taking the argmax instead
        gives every code its most likely category: a category the codes do not pin down
        (one independent of the other columns, or a network early in training) collapses
        to the majority one. Gumbel-max: the argmax of the logits plus standard Gumbel
        noise is a draw from their softmax, one kernel per group.
        """
        parts = [torch.tanh(raw[:, : self.alphas])]
        for noisy in self._views(self._with_gumbel(raw), onehots_only=True):
            chosen = noisy.argmax(dim=-1, keepdim=True)
            parts.append(torch.zeros_like(noisy).scatter_(-1, chosen, 1.0).flatten(1))
        return torch.cat(parts, dim=1)

    def log_normalizers(self, raw: Tensor) -> Tensor:
        """``(batch, one-hots)``: each one-hot span's log-sum-exp of its logits.

        Cross-entropy of a one-hot target ``t`` is ``logsumexp(logits) - t . logits``, so
        the losses need these and a product, never a full log-softmax.
        """
        parts = [_logsumexp(v) for v in self._views(raw)]
        return torch.cat(parts, dim=1) if parts else raw.new_zeros(raw.shape[0], 0)


# Softmax and log-sum-exp over the last dimension, written out. PyTorch's CPU kernels
# vectorise along that dimension, which is a span's width here (2 to a few dozen): on
# (500, 3, 10) its softmax took 270 µs, these 50 µs (forward and backward: 420 against
# 170). The maximum is taken out of the graph: the results do not depend on the shift, so
# the gradients are the same, without a backward through the maximum.


def _softmax(x: Tensor) -> Tensor:
    e = (x - x.detach().amax(dim=-1, keepdim=True)).exp_()
    return e / e.sum(dim=-1, keepdim=True)


def _logsumexp(x: Tensor) -> Tensor:
    top = x.detach().amax(dim=-1, keepdim=True)
    return (x - top).exp_().sum(dim=-1).log() + top.squeeze(-1)


def _random_bytes(count: int) -> Tensor:
    """``count`` uniform random bytes, eight per call of the generator (64-bit words)."""
    words = torch.empty((count + 7) // 8, dtype=torch.int64).random_(-(2**63), None)
    return words.view(torch.uint8)[:count]


def _gumbel(shape: torch.Size) -> Tensor:
    """Standard Gumbel noise, ``-log(-log(u))`` of uniforms ``u`` made of 23 random bits.

    ``exponential_`` draws each value with a call into the generator, about 20 ns per
    value on CPU; the generator's 64-bit words give two uniforms each, several times
    faster with the noise's few extra kernels. ``u = (bits + 0.5) / 2**23`` lies in
    ``[2**-24, 1 - 2**-24]``, both exact in float32 (24 bits would round the top one to
    1, and the noise to infinity): the noise stays within about (-2.81, 16.6), cut off
    where its probability is below 1e-7.
    """
    count = math.prod(shape)
    bits = _random_bytes(4 * count).view(torch.int32).bitwise_and_(0x7FFFFF)
    uniform = bits.to(torch.float32).add_(0.5).mul_(2.0**-23)
    return uniform.log_().neg_().log_().neg_().view(shape)


class HalfDropout(nn.Module):
    """Dropout at p = 0.5 (each value zeroed or doubled, by a fair coin), in training only.

    ``nn.Dropout`` draws one Bernoulli variable per value with a call into the generator
    each, about 12 ns per value on CPU: for CTGAN's critic that was about 6 % of its
    training time. A fair coin needs one random bit, so this draws a random byte per value
    from 64-bit words, eight values per call of the generator, and keeps a value when its
    byte's top bit is set: seven times faster, the same distribution.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        coins = _random_bytes(x.numel()).view(x.shape) >> 7
        return x * coins.to(x.dtype).mul_(2.0)


def mlp(dims: Sequence[int], *, final: int, hidden: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers with an activation between them, then a linear map to ``final``."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(dims):
        layers += [nn.Linear(fan_in, fan_out), hidden()]
    layers.append(nn.Linear(dims[-1], final))
    return nn.Sequential(*layers)


class FusedAdam:
    """Adam (Kingma & Ba) on PyTorch's fused CPU kernel, without ``torch.optim``'s frame.

    The update is ``torch.optim.Adam(fused=True)``'s, value for value: the same kernel with
    the same state (moments, a float32 step count per parameter). What is left out is the
    frame around it. Building the first ``torch.optim`` optimizer of a process imports
    ``torch._dynamo`` (its methods are wrapped to keep the compiler out), which took
    2.6 s here, longer than some whole fits. Its step and zero_grad wrappers cost another
    0.1 ms per step. Neither is needed by a fixed list of parameters trained in a loop.
    """

    def __init__(
        self, params: Sequence[Tensor], *, lr: float, decay: float, betas: tuple[float, float]
    ) -> None:
        self.params = list(params)
        self.lr, self.decay, self.betas = lr, decay, betas
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        """Forget the gradients (the next backward makes new ones)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        have = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not have:
            return
        steps = [self.steps[i] for i in have]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in have],
            [self.params[i].grad for i in have],  # type: ignore[misc]
            [self.exp_avgs[i] for i in have],
            [self.exp_avg_sqs[i] for i in have],
            [],
            steps,
            amsgrad=False,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=self.decay,
            eps=1e-8,
            maximize=False,
        )


#: What ``adam`` returns: both have ``zero_grad()`` and ``step()``.
Optimizer = FusedAdam | torch.optim.Adam


@functools.cache
def _has_fused_adam() -> bool:
    """Whether this PyTorch build has the fused Adam kernel for CPU tensors (one probe)."""
    probe = FusedAdam([torch.zeros(1, requires_grad=True)], lr=0.1, decay=0.0, betas=(0.9, 0.9))
    probe.params[0].grad = torch.ones(1)
    try:
        probe.step()
    except (AttributeError, RuntimeError, NotImplementedError):
        return False
    return True


def adam(module: nn.Module, *, lr: float, decay: float, betas: tuple[float, float]) -> Optimizer:
    """Adam on the fused CPU kernel; ``torch.optim``'s where this build lacks that kernel."""
    params = list(module.parameters())
    if _has_fused_adam():
        return FusedAdam(params, lr=lr, decay=decay, betas=betas)
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=decay, foreach=True)
