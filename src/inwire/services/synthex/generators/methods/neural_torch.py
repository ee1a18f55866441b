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
import itertools
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

    def _views(self, raw: Tensor) -> Iterator[Tensor]:
        for start, count, width in self.groups:
            yield raw[:, start : start + count * width].reshape(-1, count, width)

    def activate(self, raw: Tensor, *, tau: float | None = None) -> Tensor:
        """tanh on alphas, softmax on one-hots (Gumbel-softmax at ``tau`` if given)."""
        parts = [torch.tanh(raw[:, : self.alphas])]
        for logits in self._views(raw):
            if tau is not None:
                # In place on the fresh noise (same sums and quotients, two fewer tensors).
                logits = _gumbel(logits).add_(logits).div_(tau)
            parts.append(torch.softmax(logits, dim=-1).flatten(1))
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
        for logits in self._views(raw):
            chosen = _gumbel(logits).add_(logits).argmax(dim=-1, keepdim=True)
            parts.append(torch.zeros_like(logits).scatter_(-1, chosen, 1.0).flatten(1))
        return torch.cat(parts, dim=1)

    def log_normalizers(self, raw: Tensor) -> Tensor:
        """``(batch, one-hots)``: each one-hot span's log-sum-exp of its logits.

        Cross-entropy of a one-hot target ``t`` is ``logsumexp(logits) - t . logits``, so
        the losses need these and a product, never a full log-softmax.
        """
        parts = [torch.logsumexp(v, dim=-1) for v in self._views(raw)]
        return torch.cat(parts, dim=1) if parts else raw.new_zeros(raw.shape[0], 0)


def _gumbel(logits: Tensor) -> Tensor:
    """Standard Gumbel noise shaped like ``logits``."""
    return torch.empty_like(logits).exponential_().log_().neg_()


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
