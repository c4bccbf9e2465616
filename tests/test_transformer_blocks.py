"""Transformer backbones: how a rationale reaches the predictor (embedding or attention), the
selector's gradient through it, pooling, separate learning rates, and presets by encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ratbench.data.batching import train_batches
from ratbench.execution import grid
from ratbench.execution.runner import prepare_data, seed_everything
from ratbench.registry import METHODS

pytest.importorskip("transformers")


def _rnp(model: Path, toy: type, **method: str):
    sets = {"toy": {"n": "16"}, "data": {"encoder": f"hf:{model}"}, "rnp": method}
    [spec] = grid.expand(["rnp"], ["toy"], [1], preset="demo", epochs=1, sets=sets)
    seed_everything(1)
    data = prepare_data(spec)
    cls = METHODS.get("rnp")
    method = cls(cls.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    return method, next(train_batches(data.splits["train"], 8, np.random.default_rng(0)))


@pytest.mark.parametrize("mask_mode", ["embedding", "attention"])
def test_both_mask_modes_give_the_selector_a_gradient(tiny_hf_model: Path, toy_dataset: type, mask_mode: str) -> None:
    method, batch = _rnp(tiny_hf_model, toy_dataset, mask_mode=mask_mode)
    model = method.model
    logits = model.selector(model.embed(batch.ids, batch.mask))
    z = torch.softmax(logits, -1)[..., 1]  # a soft rationale, so that the gradient is plain
    loss = torch.nn.functional.cross_entropy(model.predictor(batch.ids, z, batch.mask), batch.labels)
    loss.backward()
    assert model.selector.head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.selector.encoder.parameters())


def test_the_mask_modes_read_a_rationale_differently_and_a_full_one_as_the_text(
    tiny_hf_model: Path, toy_dataset: type
) -> None:
    """Dropping tokens changes the output in both modes; attention with all ones is the plain text."""
    outputs = {}
    for mask_mode in ("embedding", "attention"):
        method, batch = _rnp(tiny_hf_model, toy_dataset, mask_mode=mask_mode)
        predictor = method.model.predictor.eval()
        half = batch.mask.clone()
        half[:, 1::2] = 0
        with torch.no_grad():
            full, partial = predictor(batch.ids, batch.mask, batch.mask), predictor(batch.ids, half, batch.mask)
            states = predictor.encoder.states(batch.ids, batch.mask).masked_fill(batch.mask.unsqueeze(-1) == 0, -1e6)
            plain = predictor.classify(states.max(dim=1).values)
        assert not torch.allclose(full, partial)
        outputs[mask_mode] = (full, plain)
    full, plain = outputs["attention"]
    assert torch.allclose(full, plain, atol=1e-5)  # log(1 + 1e-8) is 0: no change


def test_cls_pooling_and_separate_encoder_learning_rates(tiny_hf_model: Path, toy_dataset: type) -> None:
    method, batch = _rnp(tiny_hf_model, toy_dataset, pooling="cls", encoder_lr="1e-5", lr="1e-3")
    with torch.no_grad():
        features = method.model.predictor.eval().features(batch.ids, batch.mask, batch.mask)
        states = method.model.predictor.encoder.states(batch.ids, batch.mask, batch.mask)
    assert torch.equal(features, states[:, 0])
    rates = sorted(group["lr"] for group in method.optimizers[0].param_groups)
    assert rates == [1e-5, 1e-5, 1e-3, 1e-3]  # selector and predictor: encoder, heads


def test_freezing_the_embeddings(tiny_hf_model: Path, toy_dataset: type) -> None:
    method, _ = _rnp(tiny_hf_model, toy_dataset, freeze_embeddings="true")
    for part in (method.model.selector, method.model.predictor):
        assert not part.encoder.transformer.get_input_embeddings().weight.requires_grad


def test_a_preset_can_depend_on_the_encoder() -> None:
    """``hf/*`` and ``hf/<dataset>`` scopes apply only to transformer cells, after their plain scope."""
    assert grid.preset_scopes("eraser", "fever") == ("*", "eraser", "eraser.fever")
    assert grid.preset_scopes("eraser", "fever", "hf") == (
        "*", "hf/*", "eraser", "hf/eraser", "eraser.fever", "hf/eraser.fever"
    )  # fmt: skip


def test_nir_on_a_transformer_compacts_the_rationale_behind_the_query(tiny_hf_model: Path, query_toy_dataset) -> None:
    """BERT-A2R's rationale input: [CLS] query [SEP] selected document pieces [SEP]."""
    from ratbench._plugins.methods._blocks import visible
    from ratbench._plugins.methods.nir import compact

    sets = {"querytoy": {"n": "16"}, "data": {"encoder": f"hf:{tiny_hf_model}"}}
    [spec] = grid.expand(["nir"], ["querytoy"], [1], preset="demo", epochs=1, sets=sets)
    assert spec.method_config["pooling"] == "cls"
    seed_everything(1)
    data = prepare_data(spec)
    cls = METHODS.get("nir")
    method = cls(cls.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    batch = next(train_batches(data.splits["test"], 4, np.random.default_rng(0)))
    selected = method.rationalize(batch, "clean").mask
    ids, mask = compact(batch.ids, visible(selected, batch))
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_model)
    for row in range(len(ids)):
        pieces = tokenizer.convert_ids_to_tokens(ids[row, : int(mask[row].sum())].tolist())
        assert pieces[:5] == ["[CLS]", "is", "it", pieces[3], "[SEP]"] and pieces[3] in ("good", "bad")
        assert pieces[-1] == "[SEP]" and len(pieces) == 6 + int(selected[row].sum())


def test_a_half_precision_checkpoint_loads_in_float32(tiny_hf_model: Path, tmp_path: Path) -> None:
    """transformers 5 loads a checkpoint in its stored dtype by default; the encoder asks for
    float32 (autocast, not the checkpoint, decides the precision)."""
    import transformers

    from ratbench._plugins.methods._transformer import TransformerEncoder

    transformers.AutoModel.from_pretrained(tiny_hf_model).half().save_pretrained(tmp_path)
    assert transformers.AutoModel.from_pretrained(tmp_path).dtype == torch.float16  # what "auto" would give
    encoder = TransformerEncoder(str(tmp_path), pad_id=0)
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


def test_a2i_keeps_frozen_embeddings_frozen(tiny_hf_model: Path, toy_dataset: type) -> None:
    """A2I's requires_grad toggling restores each parameter's own flag: with freeze_embeddings
    the transformers' input embeddings stay frozen and unchanged after training."""
    sets = {"toy": {"n": "16"}, "data": {"encoder": f"hf:{tiny_hf_model}"}, "a2i": {"freeze_embeddings": "true"}}
    [spec] = grid.expand(["a2i"], ["toy"], [1], preset="demo", epochs=1, sets=sets)
    seed_everything(1)
    data = prepare_data(spec)
    cls = METHODS.get("a2i")
    method = cls(cls.Config.resolve(spec.method_config), data.info, torch.device("cpu"))
    flags = {name: p.requires_grad for name, p in method.model.named_parameters()}
    embeddings = {name: p.detach().clone() for name, p in method.model.named_parameters() if "word_embeddings" in name}
    assert len(embeddings) == 3 and not any(flags[name] for name in embeddings)  # selector, predictor, attacker
    method.train_epoch(train_batches(data.splits["train"], 8, np.random.default_rng(0)))
    assert {name: p.requires_grad for name, p in method.model.named_parameters()} == flags
    params = dict(method.model.named_parameters())
    assert all(torch.equal(params[name], value) for name, value in embeddings.items())
