"""Model sizes. `tiny` is the embedded model (sized from a measured CPU budget); `flant5xl` is
InstructBLIP Flan-T5-XL (EVA ViT-g/14 at 224 px, a 12-layer Q-Former with 32 queries, Flan-T5-XL)."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "vision_config": {
            "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
            "image_size": 32, "patch_size": 4, "attention_dropout": 0.0,
        },
        "qformer_config": {
            "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
            "encoder_hidden_size": 64, "max_position_embeddings": 64, "cross_attention_frequency": 2,
            "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        },
        "text_config": {
            "model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 256, "num_layers": 2, "num_decoder_layers": 1,
            "num_heads": 4, "relative_attention_num_buckets": 16, "relative_attention_max_distance": 64, "dropout_rate": 0.0,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": True,
        },
        "num_query_tokens": 4,
    },
    "flant5xl": {
        "vision_config": {
            "hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": 39, "num_attention_heads": 16,
            "image_size": 224, "patch_size": 14,
        },
        "qformer_config": {
            "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "encoder_hidden_size": 1408, "vocab_size": 30523, "max_position_embeddings": 512,
            "cross_attention_frequency": 2,
        },
        "text_config": {
            "model_type": "t5", "d_model": 2048, "d_kv": 64, "d_ff": 5120, "num_layers": 24, "num_decoder_layers": 24,
            "num_heads": 32, "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
        },
        "num_query_tokens": 32,
    },
}


def backbone_config(preset: str, vocab_size: int | None = None):
    """An InstructBlipConfig for a preset; `vocab_size` sets both tokenizers' size (tiny preset)."""
    import copy

    from transformers import InstructBlipConfig

    spec = copy.deepcopy(PRESETS[preset])
    if vocab_size is not None:
        spec["qformer_config"]["vocab_size"] = vocab_size
        spec["text_config"]["vocab_size"] = vocab_size
    # transformers 5: a hand-built T5 config needs its special ids, or a forward with labels fails.
    spec["text_config"].update(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return InstructBlipConfig(**spec)
