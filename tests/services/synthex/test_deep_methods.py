"""CTGAN and TVAE: the shared data transformer and sampler, and both methods end to end.

What is pinned: the mode-specific transform inverts to the data (categories exactly, numbers
closely, missing values where they were); training-by-sampling draws real rows that match
their condition and favours rare categories; both methods keep column types, make only
categories that exist in the data, stay within the observed range, keep missing values,
report progress per epoch, stop when cancelled, and give the same rows for the same seed;
TVAE draws its one-hots from the decoder's softmax (an argmax collapses a category the code
does not pin down to the majority one).
Without PyTorch, choosing them is a 400 that says how to install it; in CI PyTorch must be
there, so a broken install fails here instead of skipping every test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from inwire.kit.errors import Invalid
from inwire.services.synthex.generators import methods
from inwire.services.synthex.generators.base import FitCancelled
from inwire.services.synthex.generators.methods import neural
from inwire.services.synthex.generators.methods.ctgan import CTGAN, CTGANParams
from inwire.services.synthex.generators.methods.neural import (
    ConditionSampler,
    DataTransformer,
    torch_available,
)
from inwire.services.synthex.generators.methods.tvae import TVAE
from inwire.services.synthex.schema import ColumnSpec, ColumnType

IN_CI = os.environ.get("CI") == "true"

needs_torch = pytest.mark.skipif(
    not torch_available() and not IN_CI,
    reason="PyTorch is not installed (make torch); CI requires it",
)

METHODS = [CTGAN, TVAE]
#: Small networks and few epochs: these tests pin behaviour, not quality.
FAST: dict[str, dict[str, Any]] = {
    "ctgan": {
        "epochs": 2,
        "batch_size": 100,
        "embedding_dim": 16,
        "generator_dims": [32, 32],
        "discriminator_dims": [32, 32],
    },
    "tvae": {
        "epochs": 2,
        "batch_size": 100,
        "embedding_dim": 8,
        "compress_dims": [32],
        "decompress_dims": [32],
    },
}


def table(n: int = 400, seed: int = 0) -> tuple[pl.DataFrame, list[ColumnSpec]]:
    """Mixed columns: a bimodal float with nulls, ints, a rare category, bools, datetimes."""
    rng = np.random.default_rng(seed)
    income = np.where(
        rng.random(n) < 0.3, rng.normal(20_000, 2_000, n), rng.normal(60_000, 5_000, n)
    )
    frame = pl.DataFrame(
        {
            "age": pl.Series(rng.integers(18, 90, n), dtype=pl.Int32),
            "income": income,
            "city": rng.choice(["Oslo", "Bergen", "Tromsø"], n, p=[0.6, 0.38, 0.02]),
            "member": rng.random(n) < 0.3,
            "joined": [
                datetime(2021, 1, 1) + timedelta(minutes=int(m))
                for m in rng.integers(0, 500_000, n)
            ],
            "tier": pl.Series(rng.choice([1, 2, 3], n), dtype=pl.Int64),
        }
    ).with_columns(
        pl.when(pl.Series(rng.random(n) < 0.15))
        .then(None)
        .otherwise(pl.col("income"))
        .alias("income"),
        pl.when(pl.Series(rng.random(n) < 0.1)).then(None).otherwise(pl.col("city")).alias("city"),
    )
    schema = [
        ColumnSpec(name="age", type=ColumnType.integer, storage="Int32"),
        ColumnSpec(name="income", type=ColumnType.float, storage="Float64"),
        ColumnSpec(name="city", type=ColumnType.categorical, storage="String"),
        ColumnSpec(name="member", type=ColumnType.boolean, storage="Boolean"),
        ColumnSpec(name="joined", type=ColumnType.datetime, storage="Datetime(time_unit='us')"),
        ColumnSpec(name="tier", type=ColumnType.categorical, storage="Int64"),
    ]
    return frame, schema


# -- the data transformer and the condition sampler (numpy only) -----------------------------


def test_transform_inverts_to_the_data() -> None:
    frame, schema = table()
    rng = np.random.default_rng(1)
    transformer = DataTransformer.fit(frame, schema, rng)
    matrix = transformer.transform(frame, rng)

    assert matrix.shape == (frame.height, transformer.dim)
    assert matrix.dtype == np.float32
    back = transformer.inverse(matrix, rng)

    assert back.schema == frame.schema
    for name in ("city", "member", "tier", "age"):
        assert back[name].to_list() == frame[name].to_list(), name
    assert back["income"].is_null().to_list() == frame["income"].is_null().to_list()
    both = pl.DataFrame({"a": frame["income"], "b": back["income"]}).drop_nulls()
    assert np.allclose(both["a"], both["b"], rtol=1e-3)
    gap = (back["joined"] - frame["joined"]).abs().max()
    assert isinstance(gap, timedelta)
    assert gap < timedelta(minutes=1)


def test_every_row_of_the_matrix_has_one_hot_spans() -> None:
    frame, schema = table()
    rng = np.random.default_rng(1)
    transformer = DataTransformer.fit(frame, schema, rng)
    matrix = transformer.transform(frame, rng)
    for span in transformer.spans:
        block = matrix[:, span.start : span.start + span.width]
        if span.activation == "softmax":
            assert np.array_equal(block.sum(axis=1), np.ones(frame.height))
        else:
            assert np.all(np.abs(block) < 1)


def test_a_bimodal_column_gets_more_than_one_mode() -> None:
    frame, schema = table(2000)
    transformer = DataTransformer.fit(frame, schema, np.random.default_rng(0))
    income = next(c for c in transformer.continuous if c.name == "income")
    assert income.means.size >= 2
    assert income.means.min() < 30_000 < income.means.max()


@pytest.mark.parametrize(
    "values",
    [
        np.concatenate([np.random.default_rng(1).normal(0, 1, 3000), np.full(1000, 7.0)]),
        np.random.default_rng(2).lognormal(10, 1, 5000),  # large values, long tail
        np.random.default_rng(3).integers(0, 4, 2000).astype(float),  # fewer values than modes
        np.random.default_rng(4).normal(1e9, 5.0, 500),  # far from zero, narrow
    ],
    ids=["bimodal", "lognormal", "four-values", "offset"],
)
def test_dp_mixture_is_scikit_learns_bayesian_mixture(values: np.ndarray) -> None:
    import warnings

    from sklearn.mixture import BayesianGaussianMixture

    components = min(10, np.unique(values).size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = BayesianGaussianMixture(
            n_components=components,
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=0.001,
            n_init=1,
            random_state=5,
        ).fit(values.reshape(-1, 1))
    weights, means, variances = neural.dp_mixture(values, components, seed=5)
    # The same updates summed in another order: equal to rounding (values near 1e9 that
    # vary by a few units keep about seven digits, in both).
    scale = float(np.std(values))
    assert np.allclose(weights, reference.weights_, rtol=0, atol=1e-6)
    assert np.allclose(means, reference.means_.ravel(), rtol=1e-9, atol=1e-9 * scale)
    assert np.allclose(variances, reference.covariances_.ravel(), rtol=1e-5)


def test_training_by_sampling_draws_rows_of_the_condition() -> None:
    frame, schema = table(2000)
    rng = np.random.default_rng(2)
    transformer = DataTransformer.fit(frame, schema, rng)
    sampler = ConditionSampler.build(transformer, frame)
    matrix = transformer.transform(frame, rng)
    assert sampler.dim == sum(d.span.width for d in transformer.discrete)

    conditions = sampler.training_conditions(5000, rng)
    rows = sampler.real_rows(conditions, rng)
    # The condition's one-hot position is set in the real row drawn for it.
    starts = np.concatenate(
        [np.full(d.span.width, d.span.start) for d in transformer.discrete]
    ) + np.concatenate([np.arange(d.span.width) for d in transformer.discrete])
    assert np.all(matrix[rows, starts[conditions]] == 1.0)

    # Log-frequency: the 2 % category is drawn far more often than 2 % of city draws.
    city = next(d for d in transformer.discrete if d.name == "city")
    j = transformer.discrete.index(city)
    rare = int(sampler.offsets[j]) + city.categories.to_list().index("Tromsø")
    city_draws = (conditions >= sampler.offsets[j]) & (conditions < sampler.offsets[j] + 4)
    assert (conditions == rare).sum() / city_draws.sum() > 0.1


def test_generation_conditions_follow_the_data() -> None:
    frame, schema = table(4000)
    rng = np.random.default_rng(3)
    transformer = DataTransformer.fit(frame, schema, rng)
    sampler = ConditionSampler.build(transformer, frame)
    member = next(d for d in transformer.discrete if d.name == "member")
    j = transformer.discrete.index(member)
    drawn = sampler.generation_conditions(60_000, rng)
    in_column = drawn[(drawn >= sampler.offsets[j]) & (drawn < sampler.offsets[j] + 2)]
    true_share = float(frame["member"].mean() or 0)
    true_index = int(sampler.offsets[j]) + member.categories.to_list().index(True)
    assert abs(float(np.mean(in_column == true_index)) - true_share) < 0.03


def test_calibrated_rows_bring_the_shares_to_their_targets_and_keep_the_relations() -> None:
    rng = np.random.default_rng(0)
    size, n = 30_000, 10_000
    a = (rng.random(size) < 0.2).astype(np.int64)  # 20 % ones in the pool, 50 % wanted
    # b depends on a: P(b=1 | a=1) = 0.8, P(b=1 | a=0) = 0.3
    b = (rng.random(size) < np.where(a == 1, 0.8, 0.3)).astype(np.int64)
    c = rng.integers(0, 3, size)  # its third category never appears in the pool
    c[c == 2] = 1
    targets = [np.array([0.5, 0.5]), np.array([0.45, 0.55]), np.array([0.2, 0.3, 0.5])]
    rows = neural.calibrated_rows([a, b, c], targets, n, rng)
    assert rows.size == n
    assert np.unique(rows).size == n
    assert rows.max() < size
    assert abs(a[rows].mean() - 0.5) < 0.02
    assert abs(b[rows].mean() - 0.55) < 0.02
    assert abs((c[rows] == 0).mean() - 0.4) < 0.02  # 0.2 : 0.3 of what the pool can reach
    picked_a, picked_b = a[rows], b[rows]
    assert abs(picked_b[picked_a == 1].mean() - 0.8) < 0.05  # the relation is kept
    assert abs(picked_b[picked_a == 0].mean() - 0.3) < 0.05
    assert neural.calibrated_rows([], [], 5, rng).tolist() == [0, 1, 2, 3, 4]
    assert neural.calibrated_rows([a[:3]], [targets[0]], 5, rng).tolist() == [0, 1, 2]


def test_shares_read_modes_missing_values_and_categories_from_the_matrix() -> None:
    frame, schema = table(2_000)
    rng = np.random.default_rng(0)
    transformer = DataTransformer.fit(frame, schema, rng)
    codes, targets = transformer.shares(transformer.transform(frame, rng))
    assert len(codes) == len(targets)
    for code, target in zip(codes, targets, strict=True):
        assert code.size == frame.height
        assert code.max() < target.size
        assert abs(target.sum() - 1) < 1e-9
        # the data's own matrix has (close to) the data's shares
        seen = np.bincount(code, minlength=target.size) / code.size
        assert np.abs(seen - target).max() < 0.05


def test_ctgan_params_reject_a_batch_that_does_not_hold_whole_packs() -> None:
    with pytest.raises(ValueError, match="multiple of pac"):
        CTGANParams(batch_size=105, pac=10)


def test_mode_mixtures_are_fitted_on_at_most_mixture_rows_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from inwire.services.synthex.generators.methods.tvae import TVAEParams

    assert CTGANParams().mixture_rows == 50_000
    assert TVAEParams().mixture_rows == 5_000
    with pytest.raises(ValueError, match="greater than or equal to 100"):
        TVAEParams(mixture_rows=99)
    fitted_on: list[int] = []
    real_fit = neural.dp_mixture

    def recording(values: np.ndarray, components: int, *, seed: int) -> Any:
        fitted_on.append(values.size)
        return real_fit(values, components, seed=seed)

    monkeypatch.setattr(neural, "dp_mixture", recording)
    frame, schema = table(2000)
    DataTransformer.fit(frame, schema, np.random.default_rng(0), mixture_rows=300)
    assert fitted_on
    assert max(fitted_on) == 300
    fitted_on.clear()
    DataTransformer.fit(frame, schema, np.random.default_rng(0), mixture_rows=50_000)
    assert max(fitted_on) > 1_000  # every present value of the column


@pytest.mark.parametrize("name", ["ctgan", "tvae"])
def test_without_torch_choosing_the_method_is_a_400_saying_how_to_install_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(neural, "torch_available", lambda: False)
    for choose in (
        lambda: methods.params_model(name).model_validate({"epochs": 5}),
        lambda: methods.create(name, {"epochs": 5}),
    ):
        with pytest.raises(Invalid) as caught:
            choose()
        assert caught.value.status == 400
        assert f"The {name} method needs PyTorch" in caught.value.message
        assert "inwire[torch]" in caught.value.message
        assert caught.value.details[0]["reason"] == "torch_not_installed"


@needs_torch
def test_the_registry_finds_both_neural_methods_without_importing_torch() -> None:
    assert methods.method_class("ctgan") is CTGAN
    assert methods.method_class("tvae") is TVAE
    # In a fresh interpreter: looking the methods up and validating their parameters
    # must not load PyTorch (the service starts without it).
    probe = (
        "import sys\n"
        "from inwire.services.synthex.generators import methods\n"
        "for name in ('ctgan', 'tvae'):\n"
        "    methods.params_model(name).model_validate({'epochs': 3})\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# -- PyTorch --------------------------------------------------------------------------------


@pytest.mark.skipif(not IN_CI, reason="only CI insists on PyTorch")
def test_torch_is_installed_in_ci() -> None:
    import torch

    assert torch.tensor([1.0, 2.0]).sum().item() == 3.0


def fitted(
    method: type[CTGAN] | type[TVAE], frame: pl.DataFrame, schema: list[ColumnSpec], seed: int = 7
) -> CTGAN | TVAE:
    model = method(FAST[method.name])
    model.fit(frame, schema, seed=seed)
    return model


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_output_keeps_types_categories_range_and_missing_values(
    method: type[CTGAN] | type[TVAE],
) -> None:
    frame, schema = table()
    out = fitted(method, frame, schema).sample(600, seed=1)

    assert out.height == 600
    assert out.schema == frame.schema
    for name in ("city", "member", "tier"):
        assert set(out[name].drop_nulls().to_list()) <= set(frame[name].drop_nulls().to_list())
    for name in ("age", "income", "joined"):
        assert out[name].min() >= frame[name].min(), name
        assert out[name].max() <= frame[name].max(), name
    assert out["income"].null_count() > 0 or out["city"].null_count() > 0


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_rows_other_seed_other_rows(method: type[CTGAN] | type[TVAE]) -> None:
    frame, schema = table()
    first = fitted(method, frame, schema, seed=11)
    again = fitted(method, frame, schema, seed=11)

    a = first.sample(300, seed=5)
    assert a.equals(again.sample(300, seed=5))
    assert a.equals(first.sample(300, seed=5))
    assert not a.equals(first.sample(300, seed=6))
    assert not a.equals(fitted(method, frame, schema, seed=12).sample(300, seed=5))


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_fit_reports_progress_per_epoch_and_stops_when_cancelled(
    method: type[CTGAN] | type[TVAE],
) -> None:
    frame, schema = table(200)
    seen: list[tuple[float, str]] = []
    model = method({**FAST[method.name], "epochs": 3})
    model.fit(frame, schema, seed=0, progress=lambda f, m: seen.append((f, m)))
    assert [f for f, _ in seen] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert "epoch 3/3" in seen[-1][1]

    epochs: list[float] = []

    def cancel_after_first() -> bool:
        return len(epochs) >= 2

    with pytest.raises(FitCancelled):
        method({**FAST[method.name], "epochs": 50}).fit(
            frame,
            schema,
            seed=0,
            progress=lambda f, _: epochs.append(f),
            cancelled=cancel_after_first,
        )
    assert len(epochs) == 2


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_calibrated_samples_keep_the_data_s_category_shares(
    method: type[CTGAN] | type[TVAE],
) -> None:
    frame, schema = table(1_000)
    model = method({**FAST[method.name], "epochs": 30})
    model.fit(frame, schema, seed=7)
    calibrated = model.sample(2_000, seed=4)
    model.params.calibrate = False
    plain = model.sample(2_000, seed=4)

    def distance(rows: pl.DataFrame) -> float:
        """Total variation distance of the categories' shares, summed over the columns."""
        total = 0.0
        for column in ("city", "member", "tier"):
            real = frame[column].value_counts(normalize=True).rename({"proportion": "real"})
            made = rows[column].value_counts(normalize=True).rename({"proportion": "made"})
            both = real.join(made, on=column, how="full", coalesce=True).fill_null(0)
            total += 0.5 * float((both["real"] - both["made"]).abs().sum())
        return total

    # a small network after 30 epochs: its own shares are off (0.16 for TVAE, 0.38 for
    # CTGAN when written), the calibrated ones closer (0.12 and 0.17)
    assert distance(calibrated) < 0.85 * distance(plain)
    assert calibrated.height == plain.height == 2_000
    assert calibrated.schema == plain.schema


@needs_torch
def test_ctgan_condition_on_a_category_steers_the_generator() -> None:
    frame, schema = table(600)
    model = CTGAN({**FAST["ctgan"], "epochs": 30})
    model.fit(frame, schema, seed=3)
    steered = model.sample(500, seed=1, conditions={"city": "Bergen"})
    model.params.calibrate = False  # the generator's own shares, not the data's
    free = model.sample(500, seed=1)
    share = float((steered["city"] == "Bergen").mean() or 0)
    assert share > float((free["city"] == "Bergen").mean() or 0)


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_a_table_without_discrete_or_continuous_columns_still_fits(
    method: type[CTGAN] | type[TVAE],
) -> None:
    frame, schema = table(200)
    numbers = frame.select("age", "income")
    only_numbers = [c for c in schema if c.name in ("age", "income")]
    assert fitted(method, numbers, only_numbers).sample(50, seed=0).schema == numbers.schema
    cats = frame.select("city", "member")
    only_cats = [c for c in schema if c.name in ("city", "member")]
    assert fitted(method, cats, only_cats).sample(50, seed=0).schema == cats.schema


@needs_torch
def test_span_layout_matches_per_span_softmax_and_cross_entropy() -> None:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import SpanLayout

    frame, schema = table()
    transformer = DataTransformer.fit(frame, schema, np.random.default_rng(0))
    layout = SpanLayout(transformer.spans)
    raw = torch.randn(5, transformer.dim) * 3
    active = layout.from_network(layout.activate(raw).numpy())
    original = torch.from_numpy(layout.from_network(raw.numpy()))
    normalizers = layout.log_normalizers(raw)
    for span in transformer.spans:
        block = original[:, span.start : span.start + span.width]
        got = torch.from_numpy(active[:, span.start : span.start + span.width])
        if span.activation == "alpha":
            assert torch.allclose(got, torch.tanh(block))
        else:
            assert torch.allclose(got, torch.softmax(block, dim=1), atol=1e-6)
            number = layout.onehot_number[span.start]
            assert torch.allclose(normalizers[:, number], torch.logsumexp(block, dim=1))
            start = layout.network_start[span.start]
            assert torch.equal(raw[:, start : start + span.width], block)
    # Their gradients are those of PyTorch's own softmax and log-sum-exp.
    weights = torch.randn(5, transformer.dim)
    ours = raw.clone().requires_grad_(True)
    ((layout.activate(ours) * weights).sum() + layout.log_normalizers(ours).sum()).backward()
    theirs = raw.clone().requires_grad_(True)
    reference = [torch.tanh(theirs[:, : layout.alphas])]
    total = theirs.new_zeros(())
    for start, count, width in layout.groups:
        logits = theirs[:, start : start + count * width].reshape(-1, count, width)
        reference.append(torch.softmax(logits, dim=-1).flatten(1))
        total = total + torch.logsumexp(logits, dim=-1).sum()
    ((torch.cat(reference, dim=1) * weights).sum() + total).backward()
    assert ours.grad is not None
    assert theirs.grad is not None
    assert torch.allclose(ours.grad, theirs.grad, atol=1e-5)


@needs_torch
def test_span_layout_draws_one_hots_in_the_softmax_proportions() -> None:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import SpanLayout

    frame, schema = table()
    transformer = DataTransformer.fit(frame, schema, np.random.default_rng(0))
    layout = SpanLayout(transformer.spans)
    # Every row the same logits: the drawn one-hots' shares must be their softmax.
    torch.manual_seed(0)
    raw = (torch.randn(1, transformer.dim) * 2).expand(20_000, -1).contiguous()
    drawn = torch.from_numpy(layout.from_network(layout.draw(raw).numpy()))
    original = torch.from_numpy(layout.from_network(raw.numpy()))
    for span in transformer.spans:
        block = drawn[:, span.start : span.start + span.width]
        if span.activation == "alpha":
            assert torch.allclose(block, torch.tanh(original[:, span.start : span.start + 1]))
            continue
        assert torch.equal(block.sum(dim=1), torch.ones(raw.shape[0]))
        assert bool(((block == 0) | (block == 1)).all())
        expected = torch.softmax(original[0, span.start : span.start + span.width], dim=0)
        assert torch.allclose(block.mean(dim=0), expected, atol=0.015)


@needs_torch
def test_fused_adam_updates_exactly_as_torch_optim_adam() -> None:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import FusedAdam

    def network() -> torch.nn.Module:
        torch.manual_seed(3)
        return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))

    ours, theirs = network(), network()
    mine = FusedAdam(list(ours.parameters()), lr=1e-2, decay=1e-3, betas=(0.5, 0.9))
    reference = torch.optim.Adam(
        theirs.parameters(), lr=1e-2, betas=(0.5, 0.9), weight_decay=1e-3, fused=True
    )
    for step in range(25):
        x = torch.randn(16, 7, generator=torch.Generator().manual_seed(step))
        for model, optimizer in ((ours, mine), (theirs, reference)):
            optimizer.zero_grad()
            (model(x) ** 2).mean().backward()
            if step == 10:  # a parameter without a gradient this step is left as it is
                model[2].bias.grad = None
            optimizer.step()
    for mine_p, their_p in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine_p, their_p)
    first_weight = next(ours.parameters())
    assert not torch.equal(first_weight, network()[0].weight)  # it did train


@needs_torch
def test_adam_falls_back_to_torch_optim_without_the_fused_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from inwire.services.synthex.generators.methods import neural_torch

    def missing(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("_fused_adam_ has no CPU kernel in this build")

    network = torch.nn.Linear(3, 1)
    neural_torch._has_fused_adam.cache_clear()
    try:
        assert isinstance(
            neural_torch.adam(network, lr=0.1, decay=0, betas=(0.5, 0.9)), neural_torch.FusedAdam
        )
        monkeypatch.setattr(torch, "_fused_adam_", missing)
        neural_torch._has_fused_adam.cache_clear()
        fallback = neural_torch.adam(network, lr=0.1, decay=0, betas=(0.5, 0.9))
        assert isinstance(fallback, torch.optim.Adam)
    finally:
        monkeypatch.undo()
        neural_torch._has_fused_adam.cache_clear()


@needs_torch
def test_gumbel_noise_is_standard_gumbel_and_finite() -> None:
    import math

    import torch

    from inwire.services.synthex.generators.methods.neural_torch import _gumbel

    torch.manual_seed(0)
    noise = _gumbel(torch.Size([2**12, 2**12 + 1]))  # 2**24 values: the extreme bits occur
    assert noise.shape == (2**12, 2**12 + 1)
    assert bool(torch.isfinite(noise).all())
    assert noise.min().item() > -2.82
    assert noise.max().item() < 16.7
    assert abs(noise.double().mean().item() - 0.5772156649) < 0.002  # Euler-Mascheroni
    assert abs(noise.double().var().item() - math.pi**2 / 6) < 0.005
    # Its distribution function is exp(-exp(-x)) across the range.
    for x in (-1.0, 0.0, 1.0, 3.0):
        share = (noise < x).double().mean().item()
        assert abs(share - math.exp(-math.exp(-x))) < 0.001


@needs_torch
def test_half_dropout_zeroes_or_doubles_each_value_by_a_fair_coin() -> None:
    import torch

    from inwire.services.synthex.generators.methods.neural_torch import HalfDropout

    torch.manual_seed(0)
    dropout = HalfDropout()
    x = torch.rand(300, 101) + 0.5  # odd width: the bytes do not fill whole words
    out = dropout(x)
    kept = out != 0
    assert torch.equal(out[kept], 2 * x[kept])
    assert abs(kept.float().mean().item() - 0.5) < 0.01
    # Coins are independent across values: neighbours agree half of the time.
    assert abs((kept[:, 1:] == kept[:, :-1]).float().mean().item() - 0.5) < 0.01
    assert not torch.equal(dropout(x) != 0, kept)  # a fresh draw per call
    # Gradients pass where the value was kept, doubled, in a graph a penalty can differentiate.
    leaf = x.clone().requires_grad_(True)
    y = dropout(leaf)
    (grad,) = torch.autograd.grad(y.sum(), leaf, create_graph=True)
    assert set(grad.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(grad != 0, y != 0)
    dropout.eval()
    assert dropout(x) is x


@needs_torch
def test_tvae_draws_a_category_the_code_does_not_pin_down_in_its_shares() -> None:
    # A category independent of everything else: the decoder's softmax for it is about its
    # shares for every code, so its argmax is the majority category in (nearly) every row
    # (measured: red in 99-100 % of them); drawn from the softmax, each keeps its share.
    rng = np.random.default_rng(0)
    n = 1_000
    frame = pl.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    schema = [
        ColumnSpec(name="x", type=ColumnType.float),
        ColumnSpec(name="colour", type=ColumnType.categorical),
    ]
    model = TVAE({**FAST["tvae"], "epochs": 10})
    model.fit(frame, schema, seed=7)
    out = model.sample(3_000, seed=1)
    shares = out["colour"].value_counts(normalize=True)
    got = dict(zip(shares["colour"].to_list(), shares["proportion"].to_list(), strict=True))
    assert got.keys() == {"red", "green", "blue"}
    assert got["red"] == pytest.approx(0.5, abs=0.08)
    assert got["green"] == pytest.approx(0.3, abs=0.08)
    assert got["blue"] == pytest.approx(0.2, abs=0.08)


def test_a_column_with_too_many_categories_is_refused_by_name() -> None:
    frame = pl.DataFrame({"comment": [f"text {i}" for i in range(neural.MAX_CATEGORIES + 1)]})
    schema = [ColumnSpec(name="comment", type=ColumnType.text)]
    with pytest.raises(Invalid, match="'comment' has 1001 distinct values"):
        DataTransformer.fit(frame, schema, np.random.default_rng(0))


@needs_torch
@pytest.mark.parametrize("method", METHODS)
def test_constraints_hold_around_the_neural_methods(method: type[CTGAN] | type[TVAE]) -> None:
    from inwire.services.synthex.generators.constraints import Bounds, ConstrainedSynthesizer

    frame, schema = table()
    frame = frame.with_columns(pl.Series("id", [f"C-{i:05d}" for i in range(frame.height)]))
    schema = [*schema, ColumnSpec(name="id", type=ColumnType.identifier)]
    bounds = Bounds(type="bounds", column="income", min=25_000, max=55_000)
    model = ConstrainedSynthesizer(method(FAST[method.name]), [bounds])
    model.fit(frame, schema, seed=3)
    out = model.sample(200, seed=4, conditions={"city": "Bergen"})

    assert out.schema == frame.schema
    assert out["city"].to_list() == ["Bergen"] * 200
    income = out["income"].drop_nulls()
    assert income.min() >= 25_000
    assert income.max() <= 55_000
    assert out["id"].n_unique() == 200
    assert not set(out["id"].to_list()) & set(frame["id"].to_list())
    assert out.equals(model.sample(200, seed=4, conditions={"city": "Bergen"}))
