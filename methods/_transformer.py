"""A Hugging Face transformer as the encoder of a selector, predictor or classifier.

It plays the part the BiGRU plays in ``_blocks``: ``states(ids, mask, keep)`` gives one state
per position. With the word encoder the blocks receive embedded vectors; with a transformer
they receive the token ids (``TokenIds``), because each transformer embeds them with its own
embedding layer (the selector and the predictor are separate copies, as in the paper). How a
rationale ``keep`` reaches the transformer is ``mask_mode``:

* ``embedding``: the input embeddings are multiplied by ``keep`` (the query and special tokens
  are at 1), the attention mask covers padding only: jugechengzi/Bert-MCD ``forward_predictor``;
* ``attention``: the ids go in unchanged and ``log(keep + 1e-8)`` is added to the attention
  scores of every key (padding masked out): CR's modified BERT.

Gradients reach the selector through ``keep`` either way. Models load from local files only.
"""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import Encoder

ATTENTION_EPS = 1e-8  # CR: log(z + 1e-8)


class TokenIds(nn.Module):
    """The "embedding" of transformer backbones: the ids themselves, for the blocks to pass on."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``ids`` as they are (each transformer embeds them with its own layer)."""
        return ids


class TransformerEncoder(Encoder):
    """``AutoModel.from_pretrained(path)``: the last hidden states, one per position (already
    layer-normalised: no LayerNorm after them)."""

    def __init__(self, path: str, pad_id: int, mask_mode: str = "embedding", freeze_embeddings: bool = False) -> None:
        super().__init__()
        from transformers import AutoModel
        from transformers.utils import logging

        logging.disable_progress_bar()  # no "Loading weights" bar per model in a grid's output
        # float32 whatever the checkpoint's stored dtype (transformers 5 defaults to dtype="auto",
        # which would train a half-precision checkpoint in half precision); autocast lowers it
        self.transformer = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        self.pad_id = pad_id
        self.mask_mode = mask_mode
        if freeze_embeddings:
            self.transformer.get_input_embeddings().requires_grad_(False)

    @property
    def output_dim(self) -> int:
        """Width of the states."""
        return int(self.transformer.config.hidden_size)

    def states(
        self, ids: torch.Tensor, mask: torch.Tensor | None = None, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """States ``[B, T, H]`` of ``ids`` ``[B, T]``; padding is where ``mask`` is 0 (default:
        the padding id); ``keep`` ``[B, T]`` is a rationale read as ``mask_mode`` says."""
        if mask is None:
            mask = (ids != self.pad_id).float()
        if keep is None:
            return self.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        if self.mask_mode == "embedding":
            embedded = self.transformer.get_input_embeddings()(ids) * keep.unsqueeze(-1)
            return self.transformer(inputs_embeds=embedded, attention_mask=mask.long()).last_hidden_state
        dtype = self.transformer.dtype
        bias = torch.log(keep.to(dtype) + ATTENTION_EPS).masked_fill(mask == 0, torch.finfo(dtype).min)
        steps = ids.shape[1]
        attention = bias[:, None, None, :].expand(-1, 1, steps, steps)  # every query, per key
        return self.transformer(input_ids=ids, attention_mask=attention).last_hidden_state
