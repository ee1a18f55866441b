"""CTGAN: a conditional Wasserstein GAN for tables (Xu et al., NeurIPS 2019), our own.

The model is the paper's: a generator of residual layers with batch normalization that takes
noise and a conditional vector; a PacGAN critic (``pac`` rows judged together, Lin et al.
2018) trained with the WGAN-GP loss (Gulrajani et al. 2017); Gumbel-softmax one-hots;
mode-specific normalization and training-by-sampling (``neural``). The work per step is
trimmed: one generator pass serves the critic's last step (detached) and the generator's
step, the critic scores real, fake and interpolated packs in one pass with one backward for
loss and penalty, the critic's weights are not differentiated during the generator's step,
and every per-span operation is one padded tensor operation (``neural_torch``).

PyTorch is imported in ``fit``/``sample`` only; without it choosing this method is a 400.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from inwire.services.synthex.generators.methods.neural import (
    ConditionSampler,
    DataTransformer,
    LayerWidths,
    NeuralParams,
    NeuralSynthesizer,
    Training,
    generate,
)
from inwire.services.synthex.schema import Schema

if TYPE_CHECKING:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import Optimizer, SpanLayout


class CTGANParams(NeuralParams):
    """CTGAN's parameters; the defaults are the paper's."""

    method: ClassVar[str] = "ctgan"

    generator_dims: LayerWidths = Field(default=[256, 256], description="Residual layer widths.")
    discriminator_dims: LayerWidths = Field(default=[256, 256], description="Critic layers.")
    generator_lr: float = Field(2e-4, gt=0, le=1)
    discriminator_lr: float = Field(2e-4, gt=0, le=1)
    generator_decay: float = Field(1e-6, ge=0, le=1, description="Adam weight decay.")
    discriminator_decay: float = Field(1e-6, ge=0, le=1, description="Adam weight decay.")
    pac: int = Field(10, ge=1, le=64, description="Rows the critic judges together.")
    discriminator_steps: int = Field(1, ge=1, le=20, description="Critic steps per generator step.")
    log_frequency: bool = Field(
        True, description="Draw training conditions by log-frequency (rare categories learnt)."
    )

    @model_validator(mode="after")
    def _batch_holds_whole_packs(self) -> CTGANParams:
        if self.batch_size % self.pac:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of pac ({self.pac})"
            )
        return self


class CTGAN(NeuralSynthesizer):
    """Conditional tabular GAN on PyTorch (CPU).

    ``sample``'s ``conditions`` steer the generator: the first one on a discrete column
    with a known category becomes every row's conditional vector (the constraints layer
    still checks every condition).
    """

    name: ClassVar[str] = "ctgan"
    Params: ClassVar[type[NeuralParams]] = CTGANParams
    params: CTGANParams

    def _train(
        self, data: pl.DataFrame, schema: Schema, rng: np.random.Generator, training: Training
    ) -> _Fitted:
        return _train(self.params, data, schema, rng, training)

    def _sample(self, n: int, rng: np.random.Generator, conditions: dict[str, Any]) -> pl.DataFrame:
        fitted: _Fitted = self._fitted
        return fitted.sample(n, rng, conditions)


class _Fitted:
    """A trained generator with what it needs to turn its output into rows."""

    def __init__(
        self,
        params: CTGANParams,
        transformer: DataTransformer,
        sampler: ConditionSampler,
        layout: SpanLayout,
        generator: torch.nn.Module,
    ) -> None:
        self.params = params
        self.transformer = transformer
        self.sampler = sampler
        self.layout = layout
        self.generator = generator

    def sample(self, n: int, rng: np.random.Generator, conditions: dict[str, Any]) -> pl.DataFrame:
        import torch

        fixed = None
        for column, value in conditions.items():
            fixed = self.sampler.condition_of(self.transformer, column, value)
            if fixed is not None:
                break

        def draw(batch: int) -> np.ndarray:
            # In eval mode batch norm uses its running statistics: the batch's size changes
            # nothing but the speed.
            noise = torch.randn(batch, self.params.embedding_dim)
            if self.sampler.dim:
                drawn = (
                    np.full(batch, fixed)
                    if fixed is not None
                    else self.sampler.generation_conditions(batch, rng)
                )
                noise = torch.cat([noise, _one_hot(drawn, self.sampler.dim)], dim=1)
            raw = self.generator(noise)
            return self.layout.from_network(self.layout.activate(raw, tau=_TAU).numpy())

        self.generator.eval()
        with torch.inference_mode():
            # Rows with a condition keep it: calibrating them to the data's shares would
            # undo it.
            calibrate = self.params.calibrate and fixed is None
            matrix = generate(n, draw, self.transformer, rng, calibrate=calibrate)
        return self.transformer.inverse(matrix, rng)


#: Gumbel-softmax temperature of the generator's one-hots (CTGAN's choice).
_TAU = 0.2
#: Weight of the gradient penalty (WGAN-GP's lambda).
_PENALTY = 10.0


def _one_hot(conditions: np.ndarray, dim: int) -> torch.Tensor:
    import torch

    out = torch.zeros(conditions.size, dim)
    out[torch.arange(conditions.size), torch.from_numpy(conditions)] = 1.0
    return out


def _networks(params: CTGANParams, data_dim: int, cond_dim: int) -> tuple[Any, Any]:
    import torch
    from torch import nn

    from inwire.services.synthex.generators.methods.neural_torch import HalfDropout

    class Residual(nn.Module):
        """A linear layer, batch norm and ReLU whose output is concatenated to its input."""

        def __init__(self, fan_in: int, fan_out: int) -> None:
            super().__init__()
            self.fc = nn.Linear(fan_in, fan_out)
            # Batch statistics in training and sampling alike: no running state, so
            # sampling twice with one seed gives the same rows.
            self.bn = nn.BatchNorm1d(fan_out, track_running_stats=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # ReLU in place: batch norm's backward keeps its input, not its output.
            return torch.cat([torch.relu_(self.bn(self.fc(x))), x], dim=1)

    layers: list[nn.Module] = []
    width = params.embedding_dim + cond_dim
    for hidden in params.generator_dims:
        layers.append(Residual(width, hidden))
        width += hidden
    layers.append(nn.Linear(width, data_dim))
    generator = nn.Sequential(*layers)

    class Critic(nn.Module):
        """Scores packs of ``pac`` rows: LeakyReLU and dropout layers (CTGAN's)."""

        def __init__(self) -> None:
            super().__init__()
            dims = [(data_dim + cond_dim) * params.pac, *params.discriminator_dims]
            body: list[nn.Module] = []
            for fan_in, fan_out in itertools.pairwise(dims):
                # In place: the product's output is not kept for its backward, and the
                # activation's backward reads its sign, which its result keeps.
                body += [
                    nn.Linear(fan_in, fan_out),
                    nn.LeakyReLU(0.2, inplace=True),
                    HalfDropout(),
                ]
            body.append(nn.Linear(dims[-1], 1))
            self.body = nn.Sequential(*body)
            self.pack = dims[0]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            score: torch.Tensor = self.body(x.reshape(-1, self.pack))
            return score

    return generator, Critic()


def _critic_step(
    critic: torch.nn.Module,
    weights: list[torch.Tensor],
    optimizer: Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    pac: int,
) -> torch.Tensor:
    """One WGAN-GP update of the critic; returns its Wasserstein loss."""
    import torch

    batch = real.shape[0]
    packs = batch // pac
    # Gradient penalty at points between real and fake packs (one mix per pack), scored in
    # the same pass as the real and fake packs, and one backward for loss and penalty.
    mix = torch.rand(packs, 1, 1).expand(-1, pac, 1).reshape(batch, 1)
    between = (mix * real + (1 - mix) * fake).requires_grad_(True)
    scores = critic(torch.cat([real, fake, between]))
    real_s, fake_s, between_s = scores[:packs], scores[packs : 2 * packs], scores[2 * packs :]
    (grad,) = torch.autograd.grad(between_s.sum(), between, create_graph=True)
    penalty = ((grad.reshape(packs, -1).norm(2, dim=1) - 1) ** 2).mean() * _PENALTY
    loss = fake_s.mean() - real_s.mean()
    optimizer.zero_grad()
    # Only the critic's weights get gradients: the input gradients of its first layer (the
    # widest product, pac rows wide) and ``between.grad`` are never used.
    torch.autograd.backward(loss + penalty, inputs=weights)
    optimizer.step()
    wasserstein: torch.Tensor = loss.detach()
    return wasserstein


def _train(
    params: CTGANParams,
    data: pl.DataFrame,
    schema: Schema,
    rng: np.random.Generator,
    training: Training,
) -> _Fitted:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import SpanLayout, adam

    transformer = DataTransformer.fit(data, schema, rng, mixture_rows=params.mixture_rows)
    layout = SpanLayout(transformer.spans)
    matrix = torch.from_numpy(layout.to_network(transformer.transform(data, rng)))
    sampler = ConditionSampler.build(transformer, data)
    if not params.log_frequency:
        sampler.train_cdf = sampler.data_cdf
    # For each condition number: its category's network column and its one-hot's number,
    # for the generator's cross-entropy on the conditioned column.
    cond_column = np.zeros(sampler.dim, dtype=np.int64)
    cond_onehot = np.zeros(sampler.dim, dtype=np.int64)
    for offset, col in zip(sampler.offsets, transformer.discrete, strict=True):
        width = col.span.width
        cond_column[offset : offset + width] = layout.network_start[col.span.start] + np.arange(
            width
        )
        cond_onehot[offset : offset + width] = layout.onehot_number[col.span.start]
    rows = torch.arange(params.batch_size)
    generator, critic = _networks(params, transformer.dim, sampler.dim)
    opt_g = adam(generator, lr=params.generator_lr, decay=params.generator_decay, betas=(0.5, 0.9))
    opt_d = adam(
        critic, lr=params.discriminator_lr, decay=params.discriminator_decay, betas=(0.5, 0.9)
    )
    batch, pac, emb = params.batch_size, params.pac, params.embedding_dim
    steps = max(data.height // batch, 1)
    critic_weights = list(critic.parameters())

    def conditions() -> tuple[torch.Tensor | None, np.ndarray | None]:
        if not sampler.dim:
            return None, None
        drawn = sampler.training_conditions(batch, rng)
        return _one_hot(drawn, sampler.dim), drawn

    def with_condition(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return x if cond is None else torch.cat([x, cond], dim=1)

    loss_g = loss_d = torch.zeros(())
    for epoch in training.run(steps):
        for _ in range(steps):
            for critic_step in range(params.discriminator_steps):
                cond, drawn = conditions()
                if cond is None or drawn is None:
                    real = matrix[torch.from_numpy(rng.integers(data.height, size=batch))]
                else:
                    # Real rows for the same conditions in another order: the penalty's
                    # points then lie between rows of different conditions too.
                    order = rng.permutation(batch)
                    picked = sampler.real_rows(drawn[order], rng)
                    real = with_condition(matrix[torch.from_numpy(picked)], cond[order])
                noise = with_condition(torch.randn(batch, emb), cond)
                if critic_step + 1 < params.discriminator_steps:
                    with torch.no_grad():
                        fake = with_condition(layout.activate(generator(noise), tau=_TAU), cond)
                else:
                    # The last critic step's fake batch also serves the generator's step
                    # (as in the DCGAN reference): one generator pass per step, not two.
                    raw = generator(noise)
                    fake_g = with_condition(layout.activate(raw, tau=_TAU), cond)
                    fake, drawn_g = fake_g.detach(), drawn
                loss_d = _critic_step(critic, critic_weights, opt_d, real, fake, pac)

            for w in critic_weights:
                w.requires_grad_(False)
            loss_g = -critic(fake_g).mean()
            for w in critic_weights:
                w.requires_grad_(True)
            if drawn_g is not None:
                # The generator must produce the category it was conditioned on: the
                # cross-entropy of the conditioned one-hot (log-normalizer minus logit).
                column = torch.from_numpy(cond_column[drawn_g])
                onehot = torch.from_numpy(cond_onehot[drawn_g])
                normalizers = layout.log_normalizers(raw)[rows, onehot]
                loss_g = loss_g + (normalizers - raw[rows, column]).sum() / batch
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
        training.done(epoch, f"generator loss {loss_g.item():.3f}, critic loss {loss_d.item():.3f}")
    return _Fitted(params, transformer, sampler, layout, generator)
