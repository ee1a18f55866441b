"""The PyTorch half of CTGAN and TVAE: span activations, losses and the training session.

Imported only inside ``fit``/``sample`` of the neural methods, after ``require_torch``: the
service starts, and its other methods run, without PyTorch.

A transformed row is a sequence of spans (``neural.Span``): single alphas squashed by tanh,
and one-hots produced by a softmax. The reference implementation loops over the spans in
Python for every batch (activation, conditional loss, TVAE's loss). Here spans of similar
width are gathered into one padded ``(batch, spans, width)`` tensor each, so a whole row
is activated, or scored, with a handful of kernels whatever the number of columns.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from inwire.services.synthex.generators.methods.neural import Span

#: Threads for the small matrix products of these networks. Past two they mostly wait on
#: each other; the service's machine may also run other jobs.
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


class _SoftmaxGroup:
    """Softmax spans of similar width, gathered into one padded tensor."""

    def __init__(self, spans: Sequence[Span]) -> None:
        width = max(s.width for s in spans)
        index = torch.zeros(len(spans), width, dtype=torch.long)
        valid = torch.zeros(len(spans), width, dtype=torch.bool)
        for row, span in enumerate(spans):
            index[row, : span.width] = torch.arange(span.start, span.start + span.width)
            valid[row, : span.width] = True
        self.index = index
        self.padding = ~valid
        self.valid = valid
        #: The matrix columns this group's valid cells stand for, in row-major order.
        self.columns = index[valid]

    def logits(self, raw: Tensor) -> Tensor:
        """``(batch, spans, width)`` logits, padding at -inf."""
        return raw[:, self.index].masked_fill(self.padding, float("-inf"))


class SpanLayout:
    """Vectorised operations over every span of a transformed row."""

    def __init__(self, spans: Sequence[Span], dim: int) -> None:
        alphas = [s.start for s in spans if s.activation == "alpha"]
        softmaxes = [s for s in spans if s.activation == "softmax"]
        self.dim = dim
        self.alpha = torch.tensor(alphas, dtype=torch.long)
        buckets: dict[int, list[Span]] = {}
        for span in softmaxes:
            # Widths 1-2, 3-4, 5-8, …: padding wastes at most half of a group.
            buckets.setdefault(max(span.width - 1, 1).bit_length(), []).append(span)
        self.groups = [_SoftmaxGroup(group) for _, group in sorted(buckets.items())]
        order = torch.cat([self.alpha, *(g.columns for g in self.groups)])
        #: Puts [alphas, group 1, group 2, …] back in matrix order.
        self.restore = torch.argsort(order)
        self.identity = bool(torch.equal(order, torch.arange(dim)))

    def _assemble(self, parts: list[Tensor]) -> Tensor:
        out = torch.cat(parts, dim=1)
        return out if self.identity else out[:, self.restore]

    def activate(self, raw: Tensor, *, tau: float | None = None) -> Tensor:
        """tanh on alphas, softmax on one-hots (Gumbel-softmax at ``tau`` if given)."""
        parts = [torch.tanh(raw[:, self.alpha])]
        for group in self.groups:
            logits = group.logits(raw)
            if tau is not None:
                gumbel = -torch.empty_like(logits).exponential_().log()
                logits = (logits + gumbel) / tau
            parts.append(torch.softmax(logits, dim=-1)[:, group.valid])
        return self._assemble(parts)

    def log_softmax(self, raw: Tensor) -> Tensor:
        """Per-span log-softmax at every one-hot column (alpha columns hold raw values)."""
        parts = [raw[:, self.alpha]]
        parts.extend(torch.log_softmax(g.logits(raw), dim=-1)[:, g.valid] for g in self.groups)
        return self._assemble(parts)


def mlp(dims: Sequence[int], *, final: int, hidden: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers with an activation between them, then a linear map to ``final``."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(dims):
        layers += [nn.Linear(fan_in, fan_out), hidden()]
    layers.append(nn.Linear(dims[-1], final))
    return nn.Sequential(*layers)


def adam(
    module: nn.Module, *, lr: float, decay: float, betas: tuple[float, float]
) -> torch.optim.Adam:
    """Adam with PyTorch's fused CPU kernel when it has one (one kernel for all parameters)."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=decay, foreach=True)
