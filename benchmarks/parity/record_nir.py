"""Record the NIR (BERT-A2R + noise injection) parity fixture from the reference code.

    python benchmarks/parity/record_nir.py --reference /path/to/noise_injection --out tests/golden/parity/

The reference (adamstorek/noise_injection, ``model/``) is imported from ``--reference`` and run
as its ``run_ce.py`` runs it, with ``--inject_noise``: its ``BlackBoxPredictor`` and
``RationalePredictor`` (``models.py``), its word-level ``TopkSelector`` and noisy / noiseless
rationale extractors (``models_ce.py``), its collators (``datasets_ce.py``), its noise
statistics (``data_preprocessing/multirc/generate_word_statistics.py``, run on the tiny corpus
written here in its jsonl format), and its own ``train()`` and ``evaluate()`` functions.

The transformer is a tiny BERT built here from a ``BertConfig`` (2 layers, width 32, 2 heads,
a vocabulary of the corpus words, one word piece per word, attention dropout 0 so that every
random draw of the model goes through ``F.dropout``), saved to a temporary folder that both of
the reference's models load with ``AutoModel.from_pretrained``, as they load bert-base-uncased.

Every random draw is recorded with ``tests/parity_tape.py``: dropout keep-masks through the
tape's patch, and the noise's numpy draws (``rng.binomial`` of the replacement decisions, one
per example, and ``rng.choice`` of the replacement words) through a proxy of the extractor's
generator that appends them to the tape as ``np_binomial`` (bool) and ``np_choice`` (the drawn
words as token ids). Hooks on the models, the selector, the extractor, the losses and the
optimizers record what each of the 3 training steps computed; the evaluation records the
soft model's attention, the top-k selection, the rationale inputs, the predictions and the
reference's sentence-level counts (tp, fp, fn) and comprehensiveness/sufficiency.

The fixture holds the full initial weights (the two encoders start from the same checkpoint,
stored once) and, per step, the outputs in full; gradients and updated weights, which would
not fit in the size budget in full, as per-tensor fingerprints (sums, sum of squares and 8
sampled entries), plus the heads' gradients and weights in full.

Shims (transformers 5, the reference was written for 4.x): none are needed in its model code;
``termcolor`` (imported by ``run_ce.py`` for its unused ``color_token``) is stubbed. The data
(and the seed) are chosen so that the recording covers: a replaced word on every step, a selection
of the final [SEP] or of padding (the reference's top-k runs over them), a training row that
selects nothing of its document (the reference's noise then keeps its first word), a selected
first document piece (the reference's noise then reads the document's last word), a document
truncated at ``max_length`` (k from the clipped length), and two sentences kept by the sentence
rule; the script refuses
to write a fixture that misses one of them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from parity_tape import DrawTape, fingerprint  # noqa: E402

DEFAULT_COMMIT = "334e888"  # METHODS.md section 0; used when --reference is not a git checkout

# The recorded run: the reference's proximity and sparsity (run_ce.py defaults), a noise
# proportion and a learning rate large enough that words get replaced and selections move.
CONFIG: dict[str, Any] = {
    "sparsity": 0.2,
    "proximity": 0.1,
    "noise_p": 0.6,
    "lr": 1e-3,
    "max_length": 48,
}
SEED = 3  # picked so that the recording covers every case check_coverage asks for
BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 48,
    "attention_probs_dropout_prob": 0.0,  # the attention's dropout would draw inside SDPA
    "hidden_dropout_prob": 0.1,
}

QUERY_WORDS = ["is", "it", "good", "bad", "does", "say", "the", "claim", "true"]
# fmt: off
DOC_WORDS = [
    "beer", "pours", "hazy", "golden", "color", "with", "thin", "white", "head", "great", "lovely", "awful", "poor",
    "bland", "aroma", "of", "malt", "and", "hops", "taste", "sweet", "bitter", "dark", "nice", "film", "plot",
    "actor", "scene", "story", "was", "a", "very", "dull", "fine",
]
# fmt: on
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = [*SPECIALS, *dict.fromkeys(QUERY_WORDS + DOC_WORDS)]

# Training examples (one sentence each; the reference normalizes the replacement
# probabilities per sentence, ratbench per document) and the three training batches.
TRAIN = [
    (["is", "it", "good"], [["the", "beer", "pours", "hazy", "golden", "with", "a", "great", "head"]], 1),
    (["is", "it", "bad"], [["awful", "aroma", "of", "malt", "and", "the", "taste", "was", "bland"]], 1),
    (["does", "it", "say", "good"], [["thin", "white", "head", "poor", "taste"]], 0),
    (["is", "the", "claim", "true"], [["the", "film", "was", "a", "very", "dull", "story", "and", "plot"]], 0),
    (["is", "it", "good"], [["lovely", "sweet", "hops", "nice", "dark", "color", "the", "malt"]], 1),
    (["is", "it", "bad"], [["fine", "scene", "the", "actor", "was", "great", "film"]], 0),
]
BATCHES = [[0, 1, 2], [3, 4, 5], [5, 0, 3]]
# Documents of training words in several sentences, for the reference's per-sentence
# replacement probabilities (the second has a sentence whose words all score the same).
SPLIT_DOCS = [
    [["the", "beer", "pours", "hazy"], ["golden", "with", "a", "great", "head"]],
    [["the", "the"], ["beer", "pours", "the", "malt", "and", "hops"]],
]


def _long_document() -> list[list[str]]:
    """Nine sentences of five words: cut at ``max_length`` inside its last sentence."""
    return [[DOC_WORDS[(5 * s + i * 3) % len(DOC_WORDS)] for i in range(5)] for s in range(9)]


# Test examples: (query, sentences, label, gold sentence numbers), several sentences each.
TEST = [
    (
        ["is", "it", "good"],
        [["the", "beer", "was", "great"], ["thin", "white", "head"], ["malt", "and", "hops", "taste"]],
        1,
        [0],
    ),
    (["does", "it", "say", "bad"], _long_document(), 0, [2, 5]),
    (["is", "the", "claim", "true"], [["a", "dull", "film"], ["the", "plot", "was", "fine"]], 1, [1]),
]


# -- the reference ---------------------------------------------------------------------------
def import_reference(reference: Path) -> types.SimpleNamespace:
    """The reference's modules: ``run_ce`` (with ``models``, ``models_ce``, ``datasets_ce``) and
    the MultiRC/FEVER word statistics script."""
    sys.modules.setdefault("termcolor", types.SimpleNamespace(colored=lambda text, *_: text))  # shim
    sys.path.insert(0, str(reference / "model"))
    import datasets_ce
    import models
    import models_ce
    import run_ce

    path = reference / "data_preprocessing" / "multirc" / "generate_word_statistics.py"
    spec = importlib.util.spec_from_file_location("nir_word_statistics", path)
    statistics = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(statistics)
    return types.SimpleNamespace(
        run_ce=run_ce, models=models, models_ce=models_ce, datasets_ce=datasets_ce, statistics=statistics
    )


def reference_commit(reference: Path) -> str:
    """The checkout's commit, or the documented one when ``--reference`` is not a git checkout."""
    out = subprocess.run(["git", "-C", str(reference), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else DEFAULT_COMMIT


def write_corpus(folder: Path) -> None:
    """train.jsonl and test.jsonl in the reference's CE format: ``[sentences, label, ranges, query]``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train.jsonl", "w") as f:
        for query, sentences, label in TRAIN:
            f.write(json.dumps([sentences, label, [], query]) + "\n")
    with open(folder / "test.jsonl", "w") as f:
        for query, sentences, label, gold in TEST:
            f.write(json.dumps([sentences, label, gold, query]) + "\n")


def build_model(folder: Path, seed: int) -> tuple[Any, dict[str, Any]]:
    """The tiny BERT and its word-piece tokenizer (one piece per corpus word), saved to ``folder``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab={word: i for i, word in enumerate(VOCAB)})
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), **BERT)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return tokenizer, json.loads(config.to_json_string())


# -- recording helpers -----------------------------------------------------------------------
class TapedGenerator:
    """The extractor's numpy generator, appending each draw to the tape (ids for the words)."""

    def __init__(self, rng: np.random.Generator, tape: DrawTape, word_id: dict[str, int]) -> None:
        self.rng, self.tape, self.word_id = rng, tape, word_id

    def binomial(self, n: int, p: np.ndarray) -> np.ndarray:
        value = self.rng.binomial(n=n, p=p)
        self.tape.add("np_binomial", torch.as_tensor(np.asarray(value) > 0))
        return value

    def choice(self, a: np.ndarray, size: int, p: np.ndarray) -> np.ndarray:
        value = self.rng.choice(a, size=size, p=p)
        self.tape.add("np_choice", torch.as_tensor([self.word_id[str(w)] for w in value], dtype=torch.long))
        return value


HEADS = ("bb.token_predictor", "bb.predictor", "rp.predictor")


def named_parameters(bb: nn.Module, rp: nn.Module) -> dict[str, nn.Parameter]:
    """Both models' parameters, ``bb.*`` then ``rp.*``, in the reference's names."""
    return {
        **{f"bb.{name}": p for name, p in bb.named_parameters()},
        **{f"rp.{name}": p for name, p in rp.named_parameters()},
    }


def heads_of(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The classification heads' entries of ``values`` (small enough to store in full)."""
    return {name: value.detach().clone() for name, value in values.items() if name.startswith(HEADS)}


class Recorder:
    """Hooks on the reference's objects; ``steps`` and ``evaluation`` collect what they saw."""

    def __init__(self, ref: types.SimpleNamespace, bb: nn.Module, rp: nn.Module, tape: DrawTape) -> None:
        self.ref, self.bb, self.rp, self.tape = ref, bb, rp, tape
        self.current: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []
        self.rp_outputs: list[torch.Tensor] = []
        self.rp_inputs: list[dict[str, torch.Tensor]] = []
        bb.register_forward_hook(self._bb_forward)
        rp.register_forward_hook(self._rp_forward)

    def _bb_forward(self, module: nn.Module, args: Any, output: tuple[torch.Tensor, torch.Tensor]) -> None:
        att_pred, token_att = output
        self.current["soft_probs"] = att_pred.detach().clone()
        self.current["token_att"] = token_att.detach().squeeze(-1).clone()

    def _rp_forward(self, module: nn.Module, args: Any, output: torch.Tensor) -> None:
        self.rp_outputs.append(output.detach().clone())

    def selector(self, selector: Any) -> Any:
        recorder = self

        def select(batch: Any, token_att: torch.Tensor) -> torch.Tensor:
            recorder.current["input_ids"] = batch.tokenized_examples.input_ids.clone()
            recorder.current["attention_mask"] = batch.tokenized_examples.attention_mask.clone()
            recorder.current["k"] = selector.get_k(batch.tokenized_examples.input_ids).clone()
            hard_mask = selector(batch, token_att)
            recorder.current["hard_mask"] = hard_mask.squeeze(-1).clone()  # the extractor edits it in place
            return hard_mask

        return select

    def extractor(self, extractor: Any) -> Any:
        recorder = self
        if hasattr(extractor, "extract_rationale"):  # the noisy one: the words each example kept
            original = extractor.extract_rationale

            def extract_rationale(evidence: list[str], indices: list[int], replacement_mask: np.ndarray) -> Any:
                recorder.current.setdefault("indices", []).append(list(indices))
                return original(evidence=evidence, indices=indices, replacement_mask=replacement_mask)

            extractor.extract_rationale = extract_rationale

        def extract(batch: Any, hard_mask: torch.Tensor) -> Any:
            rationale, remainder, ratio = extractor(batch, hard_mask)
            recorder.current["rationale_ids"] = rationale["input_ids"].clone()
            recorder.current["rationale_mask"] = rationale["attention_mask"].clone()
            recorder.current["remainder_ids"] = remainder["input_ids"].clone()
            recorder.current["replace_ratio"] = float(ratio)
            return rationale, remainder, ratio

        return extract

    def losses(self) -> None:
        """Wrap both models' ``get_loss`` to keep each term (the reference's own formulas)."""
        for prefix, model in (("soft", self.bb), ("hard", self.rp)):
            original = model.get_loss

            def get_loss(att_pred: Any, hard_pred: Any, labels: Any, proximity: float, _p=prefix, _o=original) -> Any:
                ce_input = att_pred if _p == "soft" else hard_pred
                self.current[f"{_p}_ce"] = torch.nn.functional.cross_entropy(ce_input, labels).item()
                self.current[f"{_p}_js"] = self.ref.models.js_div(att_pred, hard_pred).item()
                loss = _o(att_pred=att_pred, hard_pred=hard_pred, labels=labels, proximity=proximity)
                self.current[f"{_p}_loss"] = loss.item()
                return loss

            model.get_loss = get_loss

    def optimizers(self, bb_optimizer: torch.optim.Optimizer, rp_optimizer: torch.optim.Optimizer) -> None:
        """Record the gradients before the first step and the weights after the second."""
        recorder = self
        bb_step, rp_step = bb_optimizer.step, rp_optimizer.step

        def bb_wrapped(*args: Any, **kwargs: Any) -> Any:
            grads = {n: p.grad for n, p in named_parameters(recorder.bb, recorder.rp).items()}
            recorder.current["grad_fingerprint"] = fingerprint(grads.values())
            recorder.current["grad_heads"] = heads_of(grads)
            return bb_step(*args, **kwargs)

        def rp_wrapped(*args: Any, **kwargs: Any) -> Any:
            out = rp_step(*args, **kwargs)
            params = named_parameters(recorder.bb, recorder.rp)
            recorder.current["weight_fingerprint"] = fingerprint(params.values())
            recorder.current["weight_heads"] = heads_of(params)
            recorder.current["hard_probs"] = recorder.rp_outputs[-1]
            recorder.current["rp_input_ids"] = recorder.current["rationale_ids"]
            recorder.steps.append(recorder.current)
            recorder.current = {}
            return out

        bb_optimizer.step, rp_optimizer.step = bb_wrapped, rp_wrapped


# -- the run ---------------------------------------------------------------------------------
def record(reference: Path, seed: int = SEED) -> dict[str, Any]:
    """Run the reference's training (3 steps) and evaluation; return the fixture."""
    import transformers

    ref = import_reference(reference)
    tape = DrawTape()
    with tempfile.TemporaryDirectory() as tmp:
        folder, data = Path(tmp) / "bert", Path(tmp) / "data"
        tokenizer, bert_config = build_model(folder, seed)
        write_corpus(data)
        ref.statistics.WordStatisticsGenerator(str(data)).generate_word_statistics()
        word_id = {word: i for i, word in enumerate(VOCAB)}

        torch.manual_seed(seed)
        device, model = "cpu", str(folder)
        bb = ref.models.BlackBoxPredictor(num_labels=2, model=model, freeze_encoder=False)
        rp = ref.models.RationalePredictor(num_labels=2, model=model, freeze_encoder=False)
        encoder_state = {k: v.clone() for k, v in bb.encoder.state_dict().items()}
        assert all(torch.equal(v, rp.encoder.state_dict()[k]) for k, v in encoder_state.items())
        heads = {f"bb.{k}": v.clone() for k, v in bb.state_dict().items() if not k.startswith("encoder.")}
        heads |= {f"rp.{k}": v.clone() for k, v in rp.state_dict().items() if not k.startswith("encoder.")}

        selector = ref.models_ce.RationaleSelectorFactory(
            CONFIG["sparsity"], CONFIG["max_length"], tokenizer.pad_token_id, device
        ).create_selector("words")
        extractor = ref.models_ce.RationaleExtractorFactory(tokenizer, device, str(data)).create_extractor(True)
        extractor.rng = TapedGenerator(np.random.default_rng(seed), tape, word_id)
        dataset = ref.datasets_ce.CEDatasetFactory(str(data), "train", CONFIG["noise_p"]).create_dataset(True)
        collate = ref.datasets_ce.CollatorFactory(tokenizer, CONFIG["max_length"]).create_collator("train", True)
        batches = [collate([dataset[i] for i in indices]) for indices in BATCHES]
        bb_optimizer = torch.optim.Adam(bb.parameters(), CONFIG["lr"])
        rp_optimizer = torch.optim.Adam(rp.parameters(), CONFIG["lr"])

        recorder = Recorder(ref, bb, rp, tape)
        recorder.losses()
        recorder.optimizers(bb_optimizer, rp_optimizer)
        with tape.record():
            ref.run_ce.train(
                bb_model=bb,
                bb_optimizer=bb_optimizer,
                rp_model=rp,
                rp_optimizer=rp_optimizer,
                train_loader=batches,
                valid_loader=[],
                eval_every=10**9,  # no validation inside the 3 steps
                device=device,
                proximity=CONFIG["proximity"],
                num_epochs=1,
                patience=-1,
                checkpoint_dir=str(Path(tmp) / "checkpoints"),
                rationale_selector=recorder.selector(selector),
                rationale_extractor=recorder.extractor(extractor),
                validation_rationale_extractor=None,
            )
            evaluation = evaluate(ref, recorder, selector, tokenizer, data, Path(tmp))
        train_probs = [[np.asarray(s, dtype=np.float64).tolist() for s in doc] for doc in dataset.replacement_probs]
        generator = ref.statistics.WordStatisticsGenerator(str(data))
        split_probs = [[p.tolist() for p in generator.get_document_replacement_probs(doc)] for doc in SPLIT_DOCS]
        vocab_words, vocab_scores = generator.get_scored_vocab()

    steps = recorder.steps
    return {
        "meta": {
            "reference": "adamstorek/noise_injection",
            "commit": reference_commit(reference),
            "files": "model/models.py, model/models_ce.py, model/datasets_ce.py, model/run_ce.py, "
            "data_preprocessing/multirc/generate_word_statistics.py",
            "transformers": str(transformers.__version__),
            "torch": str(torch.__version__),
            "numpy": str(np.__version__),
            "attn_implementation": str(bb.encoder.config._attn_implementation),
            "shims": "termcolor stubbed (run_ce.py imports it for an unused helper); no transformers shim needed",
        },
        "config": dict(CONFIG),
        "bert_config": bert_config,
        "vocab": list(VOCAB),
        "train": [{"query": q, "sentences": s, "label": y} for q, s, y in TRAIN],
        "test": [{"query": q, "sentences": s, "label": y, "gold_sentences": g} for q, s, y, g in TEST],
        "batches": BATCHES,
        "noise": {
            "vocab_ids": torch.tensor([word_id[w] for w in vocab_words]),
            "vocab_scores": torch.tensor(np.asarray(vocab_scores, dtype=np.float64)),
            "train_replacement_probs": train_probs,  # per sentence, times noise_p, clipped
            "split_documents": SPLIT_DOCS,
            "split_replacement_probs": split_probs,  # per sentence, before noise_p
        },
        "weights": {"encoder": encoder_state, "heads": heads},
        "parameter_names": list(named_parameters(bb, rp)),
        "tape": tape.to_state(),
        "steps": [_step_record(step) for step in steps],
        "evaluation": evaluation,
    }


def _step_record(step: dict[str, Any]) -> dict[str, Any]:
    # fmt: off
    keys = [
        "input_ids", "attention_mask", "token_att", "soft_probs", "k", "hard_mask", "indices", "rationale_ids",
        "rationale_mask", "hard_probs", "replace_ratio", "soft_ce", "soft_js", "soft_loss", "hard_ce", "hard_js",
        "hard_loss", "grad_fingerprint", "grad_heads", "weight_fingerprint", "weight_heads",
    ]
    # fmt: on
    return {key: step[key] for key in keys}


def evaluate(
    ref: types.SimpleNamespace, recorder: Recorder, selector: Any, tokenizer: Any, data: Path, tmp: Path
) -> dict[str, Any]:
    """The reference's ``evaluate()`` on the test split (one batch); what it computed."""
    dataset = ref.datasets_ce.CEDatasetFactory(str(data), "test", CONFIG["noise_p"]).create_dataset(False)
    collate = ref.datasets_ce.CollatorFactory(tokenizer, CONFIG["max_length"]).create_collator("test", False)
    batch = collate([dataset[i] for i in range(len(dataset))])
    sentence_selector = ref.models_ce.TopkSentenceSelector(
        CONFIG["sparsity"], CONFIG["max_length"], tokenizer.pad_token_id, "cpu"
    )
    selected_sentences: list[list[int]] = []
    original = sentence_selector.get_selected_sentences

    def get_selected_sentences(batch: Any, token_att: torch.Tensor) -> list[list[int]]:
        selected_sentences.extend(original(batch, token_att))
        return selected_sentences

    sentence_selector.get_selected_sentences = get_selected_sentences
    extractor = ref.models_ce.RationaleExtractor(tokenizer, "cpu")
    recorder.rp_outputs.clear()
    recorder.current = {}
    ref.run_ce.evaluate(
        bb_model=recorder.bb,
        rp_model=recorder.rp,
        test_loader=[batch],
        device="cpu",
        show_detail=False,
        rationale_selector=recorder.selector(selector),
        rationale_extractor=recorder.extractor(extractor),
        sentence_selector=sentence_selector,
        checkpoint_dir=None,
        result_path=str(tmp),
    )
    results = json.loads((tmp / "results.json").read_text())
    seen = recorder.current
    gold = [set(g) for _, _, _, g in TEST]
    chosen = [set(s) for s in selected_sentences]
    return {
        "input_ids": seen["input_ids"],
        "attention_mask": seen["attention_mask"],
        "token_att": seen["token_att"],
        "k": seen["k"],
        "hard_mask": seen["hard_mask"],
        "rationale_ids": seen["rationale_ids"],
        "rationale_mask": seen["rationale_mask"],
        "remainder_ids": seen["remainder_ids"],
        "probs": recorder.rp_outputs[0],  # rationale; [1] the remainder, [2] the full text
        "remainder_probs": recorder.rp_outputs[1],
        "full_probs": recorder.rp_outputs[2],
        "predictions": recorder.rp_outputs[0].argmax(1),
        "selected_sentences": [sorted(s) for s in chosen],
        "tp": sum(len(c & g) for c, g in zip(chosen, gold, strict=True)),
        "fp": sum(len(c - g) for c, g in zip(chosen, gold, strict=True)),
        "fn": sum(len(g - c) for c, g in zip(chosen, gold, strict=True)),
        "results": results,
    }


def check_coverage(fixture: dict[str, Any]) -> None:
    """Refuse a recording that misses a case the parity test is meant to cover."""
    steps, evaluation = fixture["steps"], fixture["evaluation"]
    kinds = fixture["tape"]["kinds"]
    replaced = [v for k, v in zip(kinds, fixture["tape"]["values"], strict=True) if k == "np_binomial"]
    problems = []
    if sum(int(v.sum()) for v in replaced) < len(steps):
        problems.append("fewer replaced words than steps")
    off_document = any(
        bool((s["hard_mask"] & ((s["input_ids"][:, 1:] == 3) | (s["input_ids"][:, 1:] == 0))).any()) for s in steps
    )
    if not off_document:
        problems.append("no step selects the final [SEP] or padding")
    no_document = any(
        bool(((s["hard_mask"] & (s["input_ids"][:, 1:] != 0) & (s["input_ids"][:, 1:] != 3)).sum(1) == 0).any())
        for s in steps
    )
    if not no_document:
        problems.append("no training row selects nothing of its document (the reference then keeps its first word)")
    if not any(-1 in row for s in steps for row in s["indices"]):
        problems.append("no step selects a first document piece (the reference then reads the last word)")
    if int(evaluation["attention_mask"].sum(1).max()) != CONFIG["max_length"]:
        problems.append("no test document reaches max_length")
    if not any(len(s) > 1 for s in evaluation["selected_sentences"]):
        problems.append("no example keeps two sentences")
    if problems:
        raise SystemExit("recording misses: " + "; ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="checkout of adamstorek/noise_injection")
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "golden" / "parity")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the test replays on one thread: reductions split over threads round differently
    fixture = record(args.reference.resolve())
    check_coverage(fixture)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "nir_bert.pt"
    torch.save(fixture, path)
    torch.load(path, weights_only=True)  # loadable as the test loads it
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
