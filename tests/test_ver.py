"""VER (METHODS.md 5): the vicinal mask perturbation, its gradients, and that it is train-only."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from parity_tape import DrawTape

from ratbench._plugins.methods import rnp as rnp_module
from ratbench._plugins.methods._blocks import gumbel_sample
from ratbench._plugins.methods._vicinal import perturb_index, perturb_index_reference
from ratbench._plugins.methods.ver import VER
from ratbench.types import Batch, DataInfo

VOCAB = 30


# -- oracle ----------------------------------------------------------------------------------


def oracle_perturb(index, mask, rate, u_sel, u_unsel) -> list[list[int]]:
    """Plain-python restatement of METHODS.md 5.2 (with the per-row clamp) on the same draws."""
    b_size, t_size = len(index), len(index[0])
    out = [list(row) for row in index]
    off_total = 0
    for b in range(b_size):
        for t in range(t_size):
            if mask[b][t] and index[b][t] == 1 and u_sel[b][t] < rate:
                out[b][t] = 0
                off_total += 1
    k = max(off_total // b_size, 1)
    free = [[t for t in range(t_size) if mask[b][t] and index[b][t] == 0] for b in range(b_size)]
    if min(len(f) for f in free) == 0:
        return out
    for b in range(b_size):
        k_b = min(k, len(free[b]))
        for t in sorted(free[b], key=lambda t: -u_unsel[b][t])[:k_b]:
            out[b][t] = 1
    return out


def random_case(gen: torch.Generator, b: int, t: int, p_select: float, min_len: int = 0):
    lengths = torch.randint(min_len, t + 1, (b,), generator=gen)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    index = (torch.rand(b, t, generator=gen) < p_select).long()  # also selects padding
    u_sel = torch.rand(b, t, generator=gen)
    u_unsel = torch.rand(b, t, generator=gen)
    return index, mask, u_sel, u_unsel


def check_against_oracle(index, mask, rate, u_sel, u_unsel):
    got = perturb_index(index, mask, rate, u_sel, u_unsel)
    want = oracle_perturb(index.tolist(), mask.tolist(), rate, u_sel.tolist(), u_unsel.tolist())
    assert got.tolist() == want
    return got


# -- perturb_index ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.3, 0.7, 1.0])
def test_perturb_index_matches_reference_semantics(rate):
    """Exact equality with the plain restatement on many random batches (lengths, padding, selection)."""
    gen = torch.Generator().manual_seed(int(rate * 100) + 1)
    n_with_on_flips = 0
    for trial in range(60):
        b, t = int(torch.randint(1, 7, (1,), generator=gen)), int(torch.randint(1, 25, (1,), generator=gen))
        p_select = [0.2, 0.5, 0.9][trial % 3]
        index, mask, u_sel, u_unsel = random_case(gen, b, t, p_select, min_len=trial % 2)
        got = check_against_oracle(index, mask, rate, u_sel, u_unsel)
        n_with_on_flips += int(((index == 0) & (got == 1)).any())
    assert n_with_on_flips > 10  # the 0 -> 1 branch was exercised


def test_perturb_index_short_rows_clamp_k():
    """Rows with fewer unselected real tokens than k flip all of them, and nothing else."""
    index = torch.tensor(
        [
            [1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
            [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [1, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        ]
    )
    mask = torch.ones(4, 10)
    mask[3, 4:] = 0  # short row, one unselected real token, selected padding
    u_sel = torch.zeros(4, 10)  # every selected real token flips off at rate 0.5
    u_unsel = torch.rand(4, 10, generator=torch.Generator().manual_seed(0))
    got = check_against_oracle(index, mask, 0.5, u_sel, u_unsel)
    # 9 + 8 + 1 + 3 = 21 flips off -> k = 5; rows 0, 1 and 3 have only 1, 2 and 1 free tokens
    assert got[0].tolist() == [0] * 9 + [1]
    assert got[1].tolist() == [0] * 8 + [1, 1]
    assert got[2].sum().item() == 5 and got[2, 0].item() == 0
    assert got[3].tolist() == [0, 1, 0, 0, 1, 1, 1, 1, 1, 1]  # padding stays selected


def test_perturb_index_fully_selected_row_blocks_all_on_flips():
    """If any row has no unselected real token, no row gets 0 -> 1 flips."""
    gen = torch.Generator().manual_seed(5)
    for _ in range(20):
        index, mask, u_sel, u_unsel = random_case(gen, 4, 12, 0.3, min_len=3)
        index[2] = 1  # row 2 fully selected (padding too)
        got = check_against_oracle(index, mask, 0.5, u_sel, u_unsel)
        assert not ((index == 0) & (got == 1)).any()


def test_perturb_index_empty_row_blocks_all_on_flips():
    """An all-padding row has no unselected real token, so 0 -> 1 flips are off for the batch."""
    index = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 1]])
    mask = torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 0]])
    got = check_against_oracle(index, mask, 1.0, torch.zeros(2, 4), torch.rand(2, 4))
    assert got.tolist() == [[0, 0, 0, 0], [1, 1, 0, 1]]


def test_perturb_index_rate_zero_swaps_in_exactly_one_token_per_row():
    """Rate 0: no 1 -> 0 flips, and k = max(0, 1) = 1 token per row flips 0 -> 1."""
    gen = torch.Generator().manual_seed(9)
    index, mask, u_sel, u_unsel = random_case(gen, 6, 20, 0.3, min_len=8)
    got = check_against_oracle(index, mask, 0.0, u_sel, u_unsel)
    assert ((got - index) >= 0).all()
    assert ((got - index) * mask).sum(dim=1).tolist() == [1] * 6


def test_perturb_index_keeps_padding_and_count_of_on_flips():
    """Padding never changes; every row gets the same clamped number of 0 -> 1 flips."""
    gen = torch.Generator().manual_seed(13)
    for _ in range(30):
        index, mask, u_sel, u_unsel = random_case(gen, 8, 30, 0.5, min_len=12)
        got = perturb_index(index, mask, 0.3, u_sel, u_unsel)
        assert torch.equal(got[mask == 0], index[mask == 0])
        real_sel = (index == 1) & (mask > 0)
        n_off = ((got == 0) & real_sel).sum()
        k = max(int(n_off) // 8, 1)
        free = ((index == 0) & (mask > 0)).sum(dim=1)
        on = ((got == 1) & (index == 0)).sum(dim=1)
        expected = torch.minimum(free, torch.tensor(k)) if free.min() > 0 else torch.zeros_like(free)
        assert torch.equal(on, expected)


def test_perturb_index_off_rate_is_bernoulli_rate():
    """With uniform draws, the fraction of selected real tokens flipped off is about the rate."""
    gen = torch.Generator().manual_seed(21)
    index, mask, _, _ = random_case(gen, 64, 200, 0.5, min_len=100)
    flips = selected = 0
    for _ in range(10):
        got = perturb_index(index, mask, 0.3, torch.rand(64, 200, generator=gen), torch.rand(64, 200, generator=gen))
        real_sel = (index == 1) & (mask > 0)
        flips += int(((got == 0) & real_sel).sum())
        selected += int(real_sel.sum())
    assert flips / selected == pytest.approx(0.3, abs=0.01)


# -- perturb_index_reference: the reference's sampler ---------------------------------------


def oracle_reference(index, mask, rate, u_sel, drawn) -> list[list[int]]:
    """Plain-python restatement of the reference's ``perturb_gumbel`` on its draws: the uniform
    draw ``u_sel`` and the rows of indices ``drawn`` that its ``torch.multinomial`` returned
    (None when it was not called)."""
    out = [list(row) for row in index]
    flips = [
        [int(mask[b][t] > 0 and index[b][t] == 1 and u_sel[b][t] < rate) for t in range(len(index[b]))]
        for b in range(len(index))
    ]
    if drawn is not None:
        for b, row in enumerate(drawn):
            for t in row:
                flips[b][t] = 1
    for b in range(len(index)):
        for t in range(len(index[b])):
            out[b][t] = abs(index[b][t] - flips[b][t])
    return out


def run_recorded(index, mask, rate):
    tape = DrawTape()
    with tape.record():
        got = perturb_index_reference(index, mask, rate)
    draws = dict(tape.draws)
    return got, draws["rand"].reshape(index.shape).tolist(), draws.get("multinomial")


@pytest.mark.parametrize("rate", [0.1, 0.3, 1.0])
def test_perturb_index_reference_matches_the_reference_rule(rate):
    """On many random batches: the 1 -> 0 flips are the draws below the rate, the 0 -> 1 flips
    are the multinomial's positions, k = max(floor(mean flips off), 1) of them per row, and no
    0 -> 1 flips at all when a row has no unselected real token."""
    gen = torch.Generator().manual_seed(int(rate * 100) + 7)
    torch.manual_seed(3)
    called = 0
    for trial in range(40):
        b, t = int(torch.randint(1, 6, (1,), generator=gen)), int(torch.randint(2, 25, (1,), generator=gen))
        index, mask, _, _ = random_case(gen, b, t, [0.2, 0.5, 0.9][trial % 3], min_len=2)
        got, u_sel, drawn = run_recorded(index, mask, rate)
        free = ((index == 0) & (mask > 0)).sum(dim=1)
        if free.min() == 0:
            assert drawn is None
        else:
            called += 1
            off = int((((index == 1) & (mask > 0)) & (torch.tensor(u_sel) < rate)).sum())
            assert drawn.shape == (b, max(off // b, 1))
        want = oracle_reference(index.tolist(), mask.tolist(), rate, u_sel, None if drawn is None else drawn.tolist())
        assert got.tolist() == want
    assert called > 5


def test_perturb_index_reference_short_row_takes_zero_weight_positions():
    """A row with fewer unselected real tokens than k: torch.multinomial (2.13, CPU) returns
    zero-weight positions too, and they flip (here: padding or selected tokens), as in the
    reference; the clamped sampler flips only the row's own unselected tokens."""
    index = torch.zeros(3, 12, dtype=torch.long)
    index[:, :6] = 1
    index[2, :11] = 1  # one unselected real token in row 2
    mask = torch.ones(3, 12)
    torch.manual_seed(0)
    got, u_sel, drawn = run_recorded(index, mask, 1.0)  # every selected token flips off: k = 23 // 3 = 7
    assert drawn.shape == (3, 7)
    assert got.tolist() == oracle_reference(index.tolist(), mask.tolist(), 1.0, u_sel, drawn.tolist())
    assert set(drawn[2].tolist()) != {11}  # more than the one free token: zero-weight ones too


# -- the VER method --------------------------------------------------------------------------


def make_info(seed: int = 0) -> DataInfo:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((VOCAB + 1, 6)).astype("float32")
    emb[0] = 0
    return DataInfo(num_classes=2, embeddings=emb)


def make_ver(**overrides) -> VER:
    torch.manual_seed(0)
    config = VER.Config(hidden_dim=8, batch_size=4, **overrides)
    return VER(config, make_info(), torch.device("cpu"))


def make_batch(seed: int, b: int = 4, t: int = 10) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, t + 1, (b,), generator=gen)
    lengths[0] = t
    mask = (torch.arange(t)[None, :] < lengths[:, None]).float()
    ids = torch.randint(1, VOCAB + 1, (b, t), generator=gen) * mask.long()
    ids[0, 1] = 0  # an OOV token
    return Batch(
        ids=ids,
        mask=mask,
        labels=torch.arange(b) % 2,
        gold=None,
        example_ids=[f"e{i}" for i in range(b)],
    )


def test_training_masks_perturb_predictor_input_only():
    """First mask = straight-through of the perturbed index; second = the unperturbed one."""
    method = make_ver(perturb_rate=0.5)
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 12, 2, generator=gen, requires_grad=True)
    soft = torch.softmax(logits, -1)
    index = soft.argmax(-1)
    mask = torch.ones(4, 12)
    mask[1, 8:] = 0
    torch.manual_seed(123)
    expected = perturb_index_reference(index, mask, 0.5)
    torch.manual_seed(123)
    z_pred, z_reg = method.training_masks(soft, index, SimpleNamespace(selectable=mask))

    assert torch.equal(z_reg.detach(), index.float())
    assert torch.equal(z_pred.detach(), expected.float())
    flipped = expected != index
    assert flipped.any()
    assert not torch.equal(z_pred.detach(), z_reg.detach())

    # the classification gradient at a flipped position reaches the soft probabilities
    weights = torch.randn(4, 12, generator=gen)
    (soft_grad,) = torch.autograd.grad((weights * z_pred).sum(), soft)
    assert torch.allclose(soft_grad[..., 1], weights)  # straight-through: identity on y[..., 1]
    assert (soft_grad[..., 1][flipped] != 0).all()
    assert (soft_grad[..., 0] == 0).all()


def test_training_masks_with_rate_zero_are_rnps():
    """perturb_rate 0: the reference does not perturb (model.py:462-464): VER is RNP, no draws."""
    method = make_ver(perturb_rate=0.0)
    soft = torch.softmax(torch.randn(3, 9, 2, generator=torch.Generator().manual_seed(2)), -1)
    index = torch.zeros(3, 9, dtype=torch.long)
    index[:, 0] = 1
    state = torch.get_rng_state()
    z_pred, z_reg = method.training_masks(soft, index, SimpleNamespace(selectable=torch.ones(3, 9)))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(z_reg, index.float()) and torch.equal(z_pred, z_reg)


def test_short_rows_clamp_uses_the_clamped_sampler():
    """short_rows=clamp: two uniform draws and ``perturb_index`` (no multinomial)."""
    method = make_ver(perturb_rate=0.5, short_rows="clamp")
    soft = torch.softmax(torch.randn(4, 12, 2, generator=torch.Generator().manual_seed(4)), -1)
    index, mask = soft.argmax(-1), torch.ones(4, 12)
    torch.manual_seed(9)
    expected = perturb_index(index, mask, 0.5, torch.rand(4, 12), torch.rand(4, 12))
    torch.manual_seed(9)
    z_pred, _ = method.training_masks(soft, index, SimpleNamespace(selectable=mask))
    assert torch.equal(z_pred.detach(), expected.float())


def test_train_epoch_wires_perturbed_mask_to_predictor_and_clean_mask_to_regularizers(monkeypatch):
    """In train_epoch, the predictor sees the perturbed mask and both regularizers the unperturbed one."""
    method = make_ver(perturb_rate=0.5)
    seen: dict[str, list[torch.Tensor]] = {"masks": [], "pred": [], "sparsity": [], "continuity": []}

    original_masks = method.training_masks

    def training_masks(soft, index, mask):
        out = original_masks(soft, index, mask)
        seen["masks"].append(out)
        return out

    monkeypatch.setattr(method, "training_masks", training_masks)
    original_forward = method.model.predictor.forward

    def predictor_forward(embedded, z, mask):
        seen["pred"].append(z)
        return original_forward(embedded, z, mask)

    monkeypatch.setattr(method.model.predictor, "forward", predictor_forward)

    def spy(name, fn):
        def wrapped(z, *args, **kwargs):
            seen[name].append(z)
            return fn(z, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(rnp_module, "sparsity_loss", spy("sparsity", rnp_module.sparsity_loss))
    monkeypatch.setattr(rnp_module, "continuity_loss", spy("continuity", rnp_module.continuity_loss))

    method.train_epoch([make_batch(0), make_batch(1)])
    assert len(seen["masks"]) == len(seen["pred"]) == len(seen["sparsity"]) == len(seen["continuity"]) == 2
    for (z_pred, z_reg), pred_in, sp_in, co_in in zip(
        seen["masks"], seen["pred"], seen["sparsity"], seen["continuity"], strict=True
    ):
        assert pred_in is z_pred
        assert sp_in is z_reg and co_in is z_reg


def test_train_epoch_updates_selector_through_perturbed_mask():
    """With both regularizers off, the selector still learns (via CE through the perturbed mask)."""
    method = make_ver(perturb_rate=0.3, sparsity_lambda=0.0, continuity_lambda=0.0, lr=1e-2)
    selector_before = {k: v.clone() for k, v in method.model.selector.state_dict().items()}
    embed_before = method.model.embed.embedding.weight.clone()
    torch.manual_seed(4)
    stats = method.train_epoch([make_batch(3), make_batch(4)])
    changed = [k for k, v in method.model.selector.state_dict().items() if not torch.equal(v, selector_before[k])]
    assert "head.weight" in changed and any(k.startswith("encoder.") for k in changed)
    assert torch.equal(method.model.embed.embedding.weight, embed_before)  # frozen
    assert np.isfinite(stats["loss"]) and stats["sparsity_loss"] >= 0


def test_selector_gets_classification_gradient_at_flipped_positions():
    """A full forward/backward like train_epoch's gives nonzero selector gradients from CE alone."""
    method = make_ver(perturb_rate=0.5)
    method.model.train()
    batch = make_batch(6)
    torch.manual_seed(8)
    embedded = method.model.embed(batch.ids, batch.mask)
    logits = method.model.selector(embedded)
    logits.retain_grad()
    soft, index = gumbel_sample(logits, 1.0)
    z_pred, _ = method.training_masks(soft, index, SimpleNamespace(selectable=batch.mask))
    flipped = (z_pred.detach() != index.float()) & (batch.mask > 0)
    assert flipped.any()
    loss = torch.nn.functional.cross_entropy(method.model.predictor(embedded, z_pred, batch.mask), batch.labels)
    loss.backward()
    assert logits.grad[flipped].abs().sum() > 0
    assert method.model.selector.head.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("rate", [0.3, 1.0])
def test_rationalize_is_not_perturbed(rate):
    """Eval: clean mode = argmax of selector logits times mask; reference = one plain Gumbel sample."""
    method = make_ver(perturb_rate=rate)
    batch = make_batch(10, b=6, t=15)
    for seed in range(5):
        torch.manual_seed(seed)
        out = method.rationalize(batch, "clean")
        with torch.no_grad():
            sel_logits = method.model.selector(method.model.embed(batch.ids, batch.mask))
        assert not method.model.training
        assert torch.equal(out.mask, (sel_logits.argmax(-1) == 1).float() * batch.mask)
        torch.manual_seed(seed)
        ref = method.rationalize(batch, "reference")
        torch.manual_seed(seed)
        with torch.no_grad():
            expected = gumbel_sample(sel_logits, method.config.tau)[1].float()
        assert torch.equal(ref.mask, expected)
        assert torch.equal(ref.logits, method.predict(batch, expected))


def test_ver_config_defaults_match_readme_run():
    """VER is RNP's config plus perturb_rate 0.3 (the README run) and the reference's short-row
    sampler, all else as in RNP."""
    ver_fields = {f.name: f.default for f in dataclasses.fields(VER.Config)}
    rnp_fields = {f.name: f.default for f in dataclasses.fields(rnp_module.RNP.Config)}
    assert ver_fields.pop("perturb_rate") == 0.3
    assert ver_fields.pop("short_rows") == "reference"
    assert ver_fields == rnp_fields
