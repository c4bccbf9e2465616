"""Step-level parity of ratbench's ``nir`` on a transformer with its reference, BERT-A2R + NI
(adamstorek/noise_injection @ 334e888), replayed from ``tests/golden/parity/nir_bert.pt``.

The fixture (``benchmarks/parity/record_nir.py``) holds a tiny BERT's config and initial
weights, the reference's inputs, every random draw it made (dropout keep-masks; the noise's
numpy draws) and what it computed in 3 training steps with noise injection and one evaluation.
Here ratbench builds its real ``nir`` on that BERT (saved to a temporary folder and loaded
through the ``hf:`` path), encodes the same examples with its ``HFEncoder``, batches them with
its real ``collate``, replays the draws through ``method.train_epoch([batch])`` one batch per
call, compares after each step, then evaluates through ``rationalize_split`` and
``score_rationales``.

Everything is compared exactly (``torch.equal`` / ``==``): ratbench runs the same operations
on the same shapes, so the numbers are the same bits (on one thread, as recorded). The
exceptions, with their reasons at the comparison: the noise tables, the replacement
probabilities and the replacement ratio (the reference computes them in float64 NumPy, ratbench
in float32 torch), the accuracy (a fraction against a percentage), and the sentence counts of
ratbench's evaluator (its rule has no off-by-one; the reference's is restated here and matches
exactly).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from parity_tape import DrawTape, fingerprint

from ratbench.data.adapter import DataConfig
from ratbench.data.batching import collate
from ratbench.evaluation.evaluator import rationalize_split, score_rationales
from ratbench.registry import METHODS
from ratbench.types import Batch, DataInfo, Example

transformers = pytest.importorskip("transformers")
nir = pytest.importorskip("ratbench._plugins.methods.nir")
_noise = pytest.importorskip("ratbench._plugins.methods._noise")

FIXTURE = Path(__file__).parent / "golden" / "parity" / "nir_bert.pt"
SEP = "[SEP]"

# ratbench module prefix -> the reference's (models.py BlackBoxPredictor "bb", RationalePredictor "rp")
NAMES = {
    "soft.encoder.transformer.": "bb.encoder.",
    "soft.score.": "bb.token_predictor.1.",
    "soft.head.": "bb.predictor.1.",
    "predictor.encoder.transformer.": "rp.encoder.",
    "predictor.head.": "rp.predictor.1.",
}

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # recorded on one thread


def reference_name(name: str) -> str:
    """The reference's name of ratbench's parameter ``name``."""
    for ours, theirs in NAMES.items():
        if name.startswith(ours):
            return theirs + name.removeprefix(ours)
    raise KeyError(name)


@pytest.fixture(scope="module")
def fx() -> dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope="module")
def model_folder(fx: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's BERT (config and initial weights) and its word-piece vocabulary, saved."""
    folder = tmp_path_factory.mktemp("nir-bert")
    transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(fx["vocab"])}).save_pretrained(folder)
    model = transformers.BertModel(transformers.BertConfig.from_dict(fx["bert_config"]))
    model.load_state_dict(fx["weights"]["encoder"])
    model.save_pretrained(folder)
    return folder


def examples(fx: dict[str, Any], split: str) -> list[Example]:
    """The fixture's raw examples as ratbench ``Example``s (gold words: those of gold sentences)."""
    out = []
    for i, ex in enumerate(fx[split]):
        tokens = [w for sentence in ex["sentences"] for w in sentence]
        sentences = [n for n, sentence in enumerate(ex["sentences"]) for _ in sentence]
        gold = None
        if split == "test":
            gold = tuple(int(s in ex["gold_sentences"]) for s in sentences)
        out.append(
            Example(f"{split}-{i}", tuple(tokens), ex["label"], gold, tuple(ex["query"]), sentences=tuple(sentences))
        )
    return out


def build(fx: dict[str, Any], folder: Path) -> tuple[Any, list[Any], list[Any]]:
    """ratbench's ``nir`` on the fixture's BERT with the reference's weights, and the encoded
    training and test examples (ratbench's ``HFEncoder``, ``[CLS] query [SEP] document [SEP]``)."""
    from ratbench.data.encoders import HFEncoder

    encoder = HFEncoder(DataConfig(encoder=f"hf:{folder}", max_len=fx["config"]["max_length"]))
    train = [encoder.encode(ex) for ex in examples(fx, "train")]
    test = [encoder.encode(ex) for ex in examples(fx, "test")]
    info = DataInfo(num_classes=2, train=tuple(train), **encoder.info())
    cls = METHODS.get("nir")
    cfg = fx["config"]
    config = cls.Config.resolve(
        {
            "lr": cfg["lr"],
            "sparsity": cfg["sparsity"],
            "proximity": cfg["proximity"],
            "noise_p": cfg["noise_p"],
            "batch_size": len(fx["batches"][0]),
        },
        owner="nir",
    )
    method = cls(config, info, torch.device("cpu"))
    encoder_weights = fx["weights"]["encoder"]  # both models start from the same checkpoint
    reference = {f"{model}.encoder.{k}": v for model in ("bb", "rp") for k, v in encoder_weights.items()}
    reference |= fx["weights"]["heads"]
    with torch.no_grad():
        for name, param in method.model.named_parameters():
            param.copy_(reference[reference_name(name)])
    assert sorted(reference_name(n) for n, _ in method.model.named_parameters()) == sorted(fx["parameter_names"])
    return method, train, test


def translate_tape(fx: dict[str, Any], candidates: torch.Tensor) -> DrawTape:
    """The recorded draws as ratbench asks for them. Dropout masks stay as they are. The noise of
    a step, drawn by the reference per example (``rng.binomial`` over the example's rationale
    words, then ``rng.choice`` of as many words as were replaced), becomes ratbench's two draws:
    the decisions ``[B, K]`` (row i's words first, K the longest rationale) and one word per
    slot ``[B * K]``, as indices into ratbench's candidates, at the replaced slots."""
    draws: list[tuple[str, torch.Tensor]] = []
    kinds, values = fx["tape"]["kinds"], fx["tape"]["values"]
    step, position = 0, 0
    while position < len(kinds):
        if not kinds[position].startswith("np_"):
            draws.append((kinds[position], values[position]))
            position += 1
            continue
        rows = fx["steps"][step]["indices"]
        width = max(len(row) for row in rows)
        decisions = torch.zeros(len(rows), width, dtype=torch.bool)
        words = torch.zeros(len(rows) * width, dtype=torch.long)
        for row in range(len(rows)):
            assert kinds[position : position + 2] == ["np_binomial", "np_choice"]
            replaced, chosen = values[position], values[position + 1]
            decisions[row, : len(replaced)] = replaced
            slots = replaced.nonzero().flatten() + row * width
            for slot, word in zip(slots.tolist(), chosen.tolist(), strict=True):
                [[index]] = (candidates == word).nonzero().tolist()  # a word ratbench can draw
                words[slot] = index
            position += 2
        draws += [("bernoulli", decisions), ("multinomial", words)]
        step += 1
    return DrawTape(draws)


class Spy:
    """What ratbench's modules saw and returned, per call (forward hooks and wrappers)."""

    def __init__(self, method: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, list[Any]] = {"soft": [], "predictor_in": [], "predictor": [], "select": [], "js": []}
        self.losses: list[tuple[torch.Tensor, ...]] = []
        model = method.model
        model.soft.register_forward_hook(lambda m, a, out: self.calls["soft"].append([t.detach() for t in out]))
        model.predictor.register_forward_pre_hook(lambda m, a: self.calls["predictor_in"].append(a))
        model.predictor.register_forward_hook(lambda m, a, out: self.calls["predictor"].append(out.detach()))
        select, losses, js = method._select, method._losses, nir.js_reference

        def spy_select(*args: Any) -> torch.Tensor:
            self.calls["select"].append(select(*args))
            return self.calls["select"][-1]

        def spy_losses(*args: Any) -> Any:
            self.losses.append(losses(*args))
            return self.losses[-1]

        def spy_js(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
            self.calls["js"].append(js(p, q))
            return self.calls["js"][-1]

        monkeypatch.setattr(method, "_select", spy_select)
        monkeypatch.setattr(method, "_losses", spy_losses)
        monkeypatch.setattr(nir, "js_reference", spy_js)

    def clear(self) -> None:
        for calls in self.calls.values():
            calls.clear()
        self.losses.clear()


def reference_selection(hard_mask: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The reference's top-k (``[B, T - 1]``, no [CLS] position) as ratbench's document mask."""
    return torch.nn.functional.pad(hard_mask.float(), (1, 0)) * batch.selectable


def test_encoding_and_batches_are_the_reference_layout(fx: dict[str, Any], model_folder: Path) -> None:
    """HFEncoder + collate give the reference's tokenizer output: ``[CLS] query [SEP] document
    [SEP]``, the long document cut at its tail to max_length, each batch padded to its longest."""
    method, train, test = build(fx, model_folder)
    for indices, step in zip(fx["batches"], fx["steps"], strict=True):
        batch = collate([train[i] for i in indices])
        assert torch.equal(batch.ids, step["input_ids"])
        assert torch.equal(batch.mask.long(), step["attention_mask"])
    batch = collate(test)
    assert torch.equal(batch.ids, fx["evaluation"]["input_ids"])
    assert torch.equal(batch.mask.long(), fx["evaluation"]["attention_mask"])
    assert method.model.soft.encoder.transformer.config._attn_implementation == fx["meta"]["attn_implementation"]


def test_noise_tables_and_replacement_probabilities(fx: dict[str, Any], model_folder: Path) -> None:
    """The vocabulary distribution (max s - s(w), s = ATF * IDF) and the per-word replacement
    probabilities of the reference's generate_word_statistics.py. Tolerance 1e-6 relative: the
    reference computes in float64 NumPy, ratbench in float32."""
    method, train, _ = build(fx, model_folder)
    noise = fx["noise"]
    drawable = noise["vocab_scores"] > 0  # the reference keeps zero-probability words in its vocabulary
    expected = dict(zip(noise["vocab_ids"][drawable].tolist(), noise["vocab_scores"][drawable].tolist(), strict=True))
    got = dict(zip(method.inject_noise.candidates.tolist(), method.inject_noise.weights.tolist(), strict=True))
    assert got.keys() == expected.keys()
    assert [got[w] for w in expected] == pytest.approx(list(expected.values()), rel=1e-6)

    # One sentence per training document: the reference's per-sentence normalization is ratbench's per document.
    batch = collate(train)
    probability = _noise.replacement_probability(
        batch.ids, batch.selectable, method.inject_noise.idf, fx["config"]["noise_p"], flat="zero"
    )
    for row, per_sentence in enumerate(fx["noise"]["train_replacement_probs"]):
        flat = [p for sentence in per_sentence for p in sentence]
        assert probability[row][batch.selectable[row] > 0].tolist() == pytest.approx(flat, rel=1e-6)

    # Several sentences (groups), one of them flat: the reference's zero rule.
    vocab = {w: i for i, w in enumerate(fx["vocab"])}
    for document, per_sentence in zip(noise["split_documents"], noise["split_replacement_probs"], strict=True):
        ids = torch.tensor([[vocab[w] for sentence in document for w in sentence]])
        groups = torch.tensor([[n for n, sentence in enumerate(document) for _ in sentence]])
        got_p = _noise.replacement_probability(ids, torch.ones(ids.shape), method.inject_noise.idf, 1.0, groups, "zero")
        expected_p = [min(p, 1.0) for sentence in per_sentence for p in sentence]
        assert got_p[0].tolist() == pytest.approx(expected_p, rel=1e-6, abs=1e-7)
    assert min(p for p in noise["split_replacement_probs"][1][0]) == 0.0  # the flat sentence was recorded


def test_training_steps_and_evaluation_match_the_reference(
    fx: dict[str, Any], model_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method, train, test = build(fx, model_folder)
    spy = Spy(method, monkeypatch)
    params = dict(method.model.named_parameters())
    order = {reference_name(n): n for n in params}
    ordered = [params[order[name]] for name in fx["parameter_names"]]
    heads = [name for name in fx["parameter_names"] if name in fx["steps"][0]["grad_heads"]]
    tape = translate_tape(fx, method.inject_noise.candidates)
    proximity = fx["config"]["proximity"]
    with tape.replay():
        for number, (indices, step) in enumerate(zip(fx["batches"], fx["steps"], strict=True)):
            spy.clear()
            batch = collate([train[i] for i in indices])
            means = method.train_epoch([batch])
            where = f"step {number}"
            # the reference's replace_ratio, a float64 NumPy mean of per-example shares
            assert means["replaced"] == pytest.approx(step["replace_ratio"], rel=1e-6), where

            [(soft_logits, weights)] = spy.calls["soft"]
            assert torch.equal(weights[:, 1:], step["token_att"]), where
            assert torch.equal(weights[:, 0], torch.zeros(len(indices))), where
            assert torch.equal(soft_logits.softmax(-1), step["soft_probs"]), where
            [selected] = spy.calls["select"]
            assert torch.equal(selected, reference_selection(step["hard_mask"], batch)), where
            [(ids, mask)] = spy.calls["predictor_in"]
            assert torch.equal(ids, step["rationale_ids"]), where
            assert torch.equal(mask.long(), step["rationale_mask"]), where
            [hard_logits] = spy.calls["predictor"]
            assert torch.equal(hard_logits.softmax(-1), step["hard_probs"]), where

            [(soft_loss, hard_loss, soft_ce, hard_ce)] = spy.losses
            js_soft, js_hard = spy.calls["js"]
            assert (soft_ce.item(), js_soft.item(), soft_loss.item()) == (
                step["soft_ce"],
                step["soft_js"],
                step["soft_loss"],
            ), where
            assert (hard_ce.item(), js_hard.item(), hard_loss.item()) == (
                step["hard_ce"],
                step["hard_js"],
                step["hard_loss"],
            ), where
            assert soft_loss.item() == pytest.approx(soft_ce.item() + proximity * js_soft.item())

            grads = fingerprint([p.grad for p in ordered])
            assert torch.equal(grads.isnan(), step["grad_fingerprint"].isnan()), where  # the soft model's BERT pooler
            assert torch.equal(grads.nan_to_num(), step["grad_fingerprint"].nan_to_num()), where
            assert torch.equal(fingerprint(ordered), step["weight_fingerprint"]), where
            for name in heads:
                param = params[order[name]]
                assert torch.equal(param.grad, step["grad_heads"][name]), f"{where}: {name}"
                assert torch.equal(param.detach(), step["weight_heads"][name]), f"{where}: {name}"

        spy.clear()
        evaluation = fx["evaluation"]
        batch = collate(test)  # one batch in the split's order, as the reference's unshuffled test loader
        outputs = rationalize_split(method, [batch], "clean")
        [(_, out)] = outputs
        [(_, weights)] = spy.calls["soft"]
        assert torch.equal(weights[:, 1:], evaluation["token_att"])
        assert torch.equal(out.mask, reference_selection(evaluation["hard_mask"], batch))
        [(ids, mask)] = spy.calls["predictor_in"]
        assert torch.equal(ids, evaluation["rationale_ids"])  # [CLS] query [SEP] [SEP] selected [SEP]
        assert torch.equal(mask.long(), evaluation["rationale_mask"])
        assert torch.equal(out.logits.softmax(-1), evaluation["probs"])
        assert torch.equal(out.logits.argmax(-1), evaluation["predictions"])
        # The reference's comprehensiveness reads the full text (ratbench's predict on the whole
        # document) and the remainder (its own layout: the query again, then the unselected rest).
        assert torch.equal(method.predict(batch, batch.mask).softmax(-1), evaluation["full_probs"])
        remainder = evaluation["remainder_ids"]
        probs = method.model.predictor(remainder, (remainder != 0).float()).softmax(-1)
        assert torch.equal(probs, evaluation["remainder_probs"])

        sentences = {ex.id: np.asarray(ex.sentences) for ex in examples(fx, "test")}
        metrics = score_rationales(method, outputs, "clean", method.config.sparsity, sentences=sentences).metrics
    tape.finish()

    assert metrics["Acc"] == pytest.approx(100 * evaluation["results"]["accuracy"])  # percent vs fraction
    # The reference's sentence rule, restated with its off-by-one, on ratbench's attention: the
    # reference's selected sentences and counts, exactly.
    rate = fx["config"]["sparsity"]
    shifted = [top_sentences(out.scores[row], batch, sentences, row, rate, shift=True) for row in range(len(test))]
    assert [sorted(s) for s in shifted] == evaluation["selected_sentences"]
    gold = [set(ex["gold_sentences"]) for ex in fx["test"]]
    counts = (
        sum(len(s & g) for s, g in zip(shifted, gold, strict=True)),
        sum(len(s - g) for s, g in zip(shifted, gold, strict=True)),
        sum(len(g - s) for s, g in zip(shifted, gold, strict=True)),
    )
    assert counts == (evaluation["tp"], evaluation["fp"], evaluation["fn"])
    # ratbench's evaluator ranks each sentence by its own words (no off-by-one): nir_sentence_*.
    plain = [top_sentences(out.scores[row], batch, sentences, row, rate, shift=False) for row in range(len(test))]
    hits = sum(len(s & g) for s, g in zip(plain, gold, strict=True))
    assert metrics["nir_sentence_P"] == pytest.approx(100 * hits / sum(len(s) for s in plain))
    assert metrics["nir_sentence_R"] == pytest.approx(100 * hits / sum(len(g) for g in gold))


def top_sentences(
    scores: torch.Tensor, batch: Batch, sentences: dict[str, np.ndarray], row: int, rate: float, shift: bool
) -> set[int]:
    """NIR's sentence rule (``TopkSentenceSelector.get_selected_sentences``): the
    ``max(1, round(rate * #sentences))`` sentences with the highest mean attention of their
    pieces. With ``shift``, as the reference maps pieces to sentences: through ``word_ids``
    minus the piece index of the document's start, which counts the query's [SEP] as a word,
    so each piece falls to the previous word's sentence and the first piece to none."""
    numbers = sentences[batch.example_ids[row]]
    document = batch.selectable[row].nonzero().flatten()
    words = batch.word_index[row, document] - (1 if shift else 0)
    owner = torch.tensor([int(numbers[w]) if w >= 0 else -1 for w in words.tolist()])
    count = int(numbers.max()) + 1
    means = torch.stack([scores[document][owner == s].sum() / (owner == s).sum() for s in range(count)])
    k = max(1, int(torch.round(torch.tensor(count) * rate)))  # float32, half to even, as the reference
    return set(means.topk(k).indices.tolist())
