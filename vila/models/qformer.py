"""InstructBLIP's Q-Former over the frames of a video, with what every frame shares computed once.

The Q-Former reads [query tokens; instruction] for each image: self-attention over both, cross-attention to
the image for the query rows only, and separate feed-forwards for query and text rows. For the F frames of
one question that is F copies of the same instruction, and until the first cross-attention the same queries
too. So:
- a layer whose input rows are all the same for every frame (layer 0) runs once per question, up to its
  cross-attention, after which the query rows are per frame;
- text rows stay the same for every frame until they attend to per-frame queries; until then their keys,
  values and feed-forward are computed once per question;
- in the last layer only the query rows are read (every caller takes the query outputs), so the text rows'
  attention and feed-forward there are not computed at all.
Same function as transformers' per-frame forward, far fewer rows: at 32 frames the embedded model's Q-Former
forward and backward take less than half the time. Its outputs are those of the per-frame forward bit for bit
on CPU (tests/test_model.py); gradients are the same sums taken in another order.

Dropout is the exception: in training, each frame's copy of the instruction would draw its own dropout mask,
so a Q-Former with dropout runs transformers' per-frame forward while training (`shares_instruction`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def shares_instruction(qformer: nn.Module) -> bool:
    """Whether frame_queries equals the per-frame forward: no dropout is active."""
    cfg = qformer.config
    return not qformer.training or (cfg.hidden_dropout_prob == 0 and cfg.attention_probs_dropout_prob == 0)


def frame_queries(
    qformer: nn.Module, query_tokens: torch.Tensor, ids: torch.Tensor, text_mask: torch.Tensor | None,
    image: torch.Tensor,
) -> torch.Tensor:
    """Query outputs [B*F, Q, D] of the Q-Former for every frame: ids/text_mask [B, T] (the instruction once per
    question; mask None = every token real), image [B*F, N, Dv] (frames of question b at rows b*F .. b*F+F-1)."""
    b, nq = ids.shape[0], query_tokens.shape[1]
    frames = image.shape[0] // b
    emb = qformer.embeddings(input_ids=ids, query_embeds=query_tokens.expand(b, -1, -1))
    rows = {"query": emb[:, :nq], "text": emb[:, nq:]}
    per_frame = {"query": False, "text": False}
    key_mask = None
    if text_mask is not None:
        key_mask = torch.cat([torch.ones(b, nq, dtype=torch.bool, device=ids.device), text_mask.bool()], 1)

    def at_frames(x: torch.Tensor, already: bool) -> torch.Tensor:
        return x if already else x.repeat_interleave(frames, dim=0)

    layers = qformer.encoder.layer
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        if not per_frame["query"] and not per_frame["text"]:  # every frame alike: one pass per question
            both = torch.cat([rows["query"], rows["text"]], 1)
            out = _self_attention(layer.attention, both, [both], key_mask)
            query_out, text_out = out[:, :nq], out[:, nq:]
        else:
            mask = None if key_mask is None else key_mask.repeat_interleave(frames, dim=0)
            keys = [rows["query"], rows["text"]]  # the queries are per frame from the first cross-attention on
            query_out = _self_attention(layer.attention, rows["query"], keys, mask)
            text_out = None
            if not last:  # the last layer's text rows are never read
                text_out = _self_attention(layer.attention, at_frames(rows["text"], per_frame["text"]), keys, mask)
                per_frame["text"] = True
        if layer.has_cross_attention:
            query_out = layer.crossattention(at_frames(query_out, per_frame["query"]), encoder_hidden_states=image)
            per_frame["query"] = True
        rows["query"] = layer.feed_forward_chunk_query(query_out)
        if not last:
            rows["text"] = layer.feed_forward_chunk(text_out)
    return at_frames(rows["query"], per_frame["query"])


def _self_attention(
    attention: nn.Module, hidden: torch.Tensor, sources: list[torch.Tensor], key_mask: torch.Tensor | None
) -> torch.Tensor:
    """transformers' Q-Former self-attention block (InstructBlipQFormerAttention: multi-head attention, then
    dense + residual + LayerNorm) for the rows `hidden` [R, L, D], attending to the rows of `sources` (in order,
    each [R, Ls, D] or [R / frames, Ls, D]: keys and values computed once per question, then repeated)."""
    mha = attention.attention
    heads = mha.num_attention_heads

    def split(x: torch.Tensor) -> torch.Tensor:  # [R, L, D] -> [R, H, L, D/H]
        return x.view(*x.shape[:2], heads, -1).transpose(1, 2)

    r = hidden.shape[0]
    keys, values = [], []
    for src in sources:
        k, v = split(mha.key(src)), split(mha.value(src))
        if k.shape[0] != r:
            k, v = k.repeat_interleave(r // k.shape[0], dim=0), v.repeat_interleave(r // v.shape[0], dim=0)
        keys.append(k)
        values.append(v)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(split(mha.query(hidden)), torch.cat(keys, 2), torch.cat(values, 2),
                                         attn_mask=mask, scale=mha.scaling)
    return attention.output(out.transpose(1, 2).reshape(*hidden.shape[:2], -1), hidden)
