"""Shared building blocks of the RNP family (METHODS.md 2) against their reference formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ratbench._plugins.methods._blocks import (
    BiGRU,
    Encoder,
    FrozenEmbedding,
    Predictor,
    Selector,
    continuity_loss,
    gumbel_sample,
    make_encoder,
    make_predictor,
    make_selector,
    sparsity_loss,
    straight_through,
)
from ratbench._plugins.methods._options import TransformerOptions
from ratbench.types import DataInfo


def padded_case(seed: int, b: int = 5, t: int = 9):
    """Soft z in [0, 1] at every position (padding included) and a mask with varying lengths."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, t + 1, size=b)
    lengths[0] = t
    mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
    z = rng.random((b, t)).astype(np.float32)
    return z, mask


# -- regularizers ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_sparsity_loss_reference_sums_padding(seed):
    """Reference: |sum of z over ALL positions / sum(mask) - alpha|, one ratio per batch."""
    z, mask = padded_case(seed)
    want = abs(z.astype(np.float64).sum() / mask.sum() - 0.125)
    got = sparsity_loss(torch.from_numpy(z), torch.from_numpy(mask), 0.125)
    assert got.item() == pytest.approx(want, rel=1e-5)
    per_example = np.mean([abs(z[b].sum() / max(mask[b].sum(), 1) - 0.125) for b in range(len(z))])
    assert got.item() != pytest.approx(per_example, rel=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_sparsity_loss_masked_ignores_padding(seed):
    """mask_padding=True: only real positions count in the numerator."""
    z, mask = padded_case(seed)
    want = abs((z * mask).astype(np.float64).sum() / mask.sum() - 0.3)
    got = sparsity_loss(torch.from_numpy(z), torch.from_numpy(mask), 0.3, mask_padding=True)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_sparsity_loss_padding_selection_is_penalized_only_in_reference():
    """Selecting a padding position raises the reference loss and leaves the masked one unchanged."""
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 0, 0]])
    z = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 0]])
    z_pad = z.clone()
    z_pad[1, 3] = 1
    assert sparsity_loss(z, mask, 0.0).item() == pytest.approx(1 / 6)
    assert sparsity_loss(z_pad, mask, 0.0).item() == pytest.approx(2 / 6)
    assert sparsity_loss(z_pad, mask, 0.0, mask_padding=True).item() == pytest.approx(1 / 6)


@pytest.mark.parametrize("seed", range(4))
def test_continuity_loss_reference_includes_padding(seed):
    """Reference: mean over B x (T-1) of |z_t - z_{t-1}|, padding in both sum and count."""
    z, _ = padded_case(seed)
    b, t = z.shape
    want = sum(abs(float(z[i, j]) - float(z[i, j - 1])) for i in range(b) for j in range(1, t)) / (b * (t - 1))
    assert continuity_loss(torch.from_numpy(z)).item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_continuity_loss_masked_counts_real_pairs_only(seed):
    """Masked: mean of |z_t - z_{t-1}| over transitions between two real tokens."""
    z, mask = padded_case(seed)
    b, t = z.shape
    pairs = [(i, j) for i in range(b) for j in range(1, t) if mask[i, j] and mask[i, j - 1]]
    want = sum(abs(float(z[i, j]) - float(z[i, j - 1])) for i, j in pairs) / len(pairs)
    got = continuity_loss(torch.from_numpy(z), torch.from_numpy(mask))
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_continuity_loss_masked_without_pairs_is_zero():
    """No pair of adjacent real tokens (all rows of length <= 1): 0, not NaN."""
    z = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 0, 0], [0, 0, 0]])
    assert continuity_loss(z, mask).item() == 0.0
    assert continuity_loss(z).item() == pytest.approx(1.0)


def test_regularizers_backpropagate_to_z():
    """Both regularizers are differentiable in z (they train the selector)."""
    z = torch.tensor([[0.2, 0.9, 0.1, 0.7]], requires_grad=True)
    mask = torch.tensor([[1.0, 1, 1, 0]])
    (g_s,) = torch.autograd.grad(sparsity_loss(z, mask, 0.1), z)
    assert torch.allclose(g_s, torch.full((1, 4), 1 / 3))  # sign(1.9/3 - 0.1) / sum(mask), padding too
    (g_c,) = torch.autograd.grad(continuity_loss(z), z)
    assert torch.allclose(g_c, torch.tensor([[-1.0, 2.0, -2.0, 1.0]]) / 3)


# -- Gumbel sampling and straight-through ----------------------------------------------------


def test_gumbel_sample_is_f_gumbel_softmax_draw():
    """Same RNG draw as F.gumbel_softmax(hard=True): identical soft sample and hard mask."""
    logits = torch.randn(4, 11, 2, generator=torch.Generator().manual_seed(0))
    for tau in (1.0, 0.5):
        torch.manual_seed(3)
        soft, index = gumbel_sample(logits, tau)
        torch.manual_seed(3)
        ref = F.gumbel_softmax(logits, tau=tau, hard=True)
        torch.manual_seed(3)
        ref_soft = F.gumbel_softmax(logits, tau=tau, hard=False)
        assert torch.allclose(soft, ref_soft)
        assert torch.equal(straight_through(index, soft), ref)


def test_straight_through_forward_is_exactly_one_hot():
    """Forward values of the straight-through sample are exactly 0 and 1 (no rounding residue)."""
    torch.manual_seed(1)
    logits = torch.randn(64, 50, 2) * 3
    soft, index = gumbel_sample(logits, 1.0)
    z = straight_through(index, soft)
    assert torch.equal(z, F.one_hot(index, 2).float())
    assert torch.equal(index, soft.argmax(-1))
    assert torch.equal(z[..., 1], (z[..., 1] == 1).float())


def test_straight_through_gradient_is_softmax_gradient():
    """d(loss on ST sample)/d(logits) equals the gradient of the same loss on the soft sample."""
    torch.manual_seed(2)
    logits = torch.randn(3, 7, 2, requires_grad=True)
    weights = torch.randn(3, 7, 2)
    soft, index = gumbel_sample(logits, 0.7)
    (g_st,) = torch.autograd.grad((weights * straight_through(index, soft)).sum(), logits, retain_graph=True)
    (g_soft,) = torch.autograd.grad((weights * soft).sum(), logits)
    assert torch.allclose(g_st, g_soft)
    assert g_st.abs().sum() > 0


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_gumbel_hard_sample_frequencies_follow_softmax(tau):
    """P(index = c) = softmax(logits)_c for the Gumbel-max draw, whatever tau."""
    torch.manual_seed(5)
    base = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.3, 0.3]])
    logits = base.unsqueeze(1).expand(3, 20000, 2)
    _, index = gumbel_sample(logits, tau)
    freq = index.float().mean(dim=1)
    assert torch.allclose(freq, torch.softmax(base, -1)[:, 1], atol=0.015)


# -- predictor -------------------------------------------------------------------------------


def predictor_case(seed: int):
    torch.manual_seed(seed)
    pred = Predictor(input_dim=6, hidden_dim=8, num_classes=3, dropout=0.5).eval()
    lengths = torch.tensor([9, 4, 1, 6])
    mask = (torch.arange(9)[None, :] < lengths[:, None]).float()
    embedded = torch.randn(4, 9, 6) * mask.unsqueeze(-1)
    z = (torch.rand(4, 9) < 0.5).float()  # also "selects" padding
    return pred, embedded, z, mask, lengths


@pytest.mark.parametrize("seed", range(3))
def test_predictor_matches_manual_masked_max_pool(seed):
    """Eval logits = head(max over real positions of BiGRU(e * z)); deselected real tokens stay in."""
    pred, embedded, z, mask, lengths = predictor_case(seed)
    with torch.no_grad():
        got = pred(embedded, z, mask)
        hidden = pred.encoder.gru(embedded * z.unsqueeze(-1))[0]
        pooled = torch.stack([hidden[b, : lengths[b]].max(dim=0).values for b in range(4)])
        want = pred.head(pooled)
    assert torch.allclose(got, want, atol=1e-6)


def test_predictor_pool_never_picks_padding():
    """Huge hidden states at padding do not reach the pooled features (they are overwritten)."""
    pred, embedded, z, mask, _ = predictor_case(0)
    encoder = pred.encoder
    with torch.no_grad():
        base = pred(embedded, z, mask)

    class Loud(torch.nn.Module):
        def states(self, x, mask_, keep):
            return encoder.states(x, mask_, keep) + 1e3 * (1 - mask).unsqueeze(-1)

    pred.encoder = Loud()
    with torch.no_grad():
        assert torch.equal(pred(embedded, z, mask), base)


def test_predictor_ignores_padding_inputs_via_frozen_embedding():
    """Ids at padding do not matter: the embedding zeroes them before the predictor reads them."""
    torch.manual_seed(0)
    vectors = np.random.default_rng(0).standard_normal((21, 6)).astype(np.float32)
    vectors[0] = 0
    embed = FrozenEmbedding(vectors)
    pred = Predictor(6, 8, 2, 0.2).eval()
    mask = torch.tensor([[1.0, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    ids = torch.tensor([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]])
    ids_noisy = ids.clone()
    ids_noisy[0, 3:] = torch.tensor([17, 9])
    z = torch.ones(2, 5)
    with torch.no_grad():
        assert torch.equal(pred(embed(ids, mask), z, mask), pred(embed(ids_noisy, mask), z, mask))


# -- frozen embedding ------------------------------------------------------------------------


def test_frozen_embedding_not_trainable_and_masks_positions():
    """No trainable parameter; output = mask * vectors[ids], zero at padding whatever the id."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((11, 4)).astype(np.float32)
    vectors[0] = 0
    embed = FrozenEmbedding(vectors)
    assert embed.dim == 4
    assert not any(p.requires_grad for p in embed.parameters())
    ids = torch.tensor([[1, 0, 5, 7], [2, 3, 9, 10]])
    mask = torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    out = embed(ids, mask)
    want = vectors[ids.numpy()] * mask.numpy()[..., None]
    assert np.array_equal(out.numpy(), want)
    assert (out[0, 1] == 0).all()  # OOV real token: zero vector
    assert (out[1, 2:] == 0).all()  # padding with non-zero ids: zeroed
    assert not out.requires_grad  # no gradient can reach the vectors


# -- the encoder interface -------------------------------------------------------------------


class Doubling(Encoder):
    """An encoder of the interface only: its states are its inputs, twice."""

    @property
    def output_dim(self) -> int:
        return 6

    def states(self, x, mask=None, keep=None):
        return 2 * (x if keep is None else x * keep.unsqueeze(-1))


def test_the_blocks_ask_the_encoder_not_its_type():
    """A LayerNorm where the encoder ``needs_layer_norm`` (the BiGRU's raw states), none on an
    encoder without it; a predictor on an encoder with no keep-mask shortcut classifies each copy."""
    assert isinstance(Selector(6, 8, 0.0).norm, torch.nn.LayerNorm)
    assert isinstance(Selector(None, None, 0.0, Doubling()).norm, torch.nn.Identity)
    predictor = Predictor(None, None, 2, 0.0, Doubling()).eval()
    text, keep = torch.randn(5, 6), torch.tensor([[1.0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
    expected = predictor(text.expand(2, 5, 6), keep, torch.ones_like(keep))
    assert torch.equal(predictor.over_keep_masks([(text, keep)]), expected)
    with pytest.raises(TypeError, match="needs the input and hidden widths"):
        Selector(None, None, 0.0)


def test_the_factories_size_the_bigru_from_the_word_vectors():
    """No width is read from the embedding layer: the BiGRU's input is the vectors' dimension."""
    info = DataInfo(num_classes=3, embeddings=np.zeros((11, 7), dtype=np.float32))
    options = TransformerOptions(pooling="cls")  # read on a transformer only
    encoder = make_encoder(info, 10, options)
    assert isinstance(encoder, BiGRU) and encoder.gru.input_size == 7 and encoder.output_dim == 10
    assert isinstance(make_selector(info, 10, 0.1, options).norm, torch.nn.LayerNorm)
    predictor = make_predictor(info, 10, 3, 0.1, options)
    assert predictor.pooling == "max" and predictor.head.out_features == 3
