"""Tokenizers.

The embedded model uses a word-level tokenizer over a closed vocabulary (the embedded benchmark's words, vila.data.synthqa.vocabulary), built with
the `tokenizers` library and wrapped as a transformers fast tokenizer (so it saves and loads like
any other). Real InstructBLIP checkpoints bring their own T5 and BERT tokenizers.
"""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerFast

SPECIAL = ["<pad>", "</s>", "<unk>"]
LETTERS = "ABCDE"


def word_vocabulary(words: list[str]) -> list[str]:
    """The word-level tokenizer's vocabulary: the special tokens, then every word (lower-cased, once, sorted)
    and the option letters the answer is read from."""
    return SPECIAL + sorted({*LETTERS.lower(), *(w.lower() for w in words)})


def build_word_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab.index("</s>"))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def answer_token_ids(tokenizer) -> tuple[list[int], list[int]]:
    """(decoder prefix for "Option", id of each letter A-E) under this tokenizer.

    The answer is read at the position after "Option", as in the released code; every "Option X"
    must tokenize as the prefix plus exactly one letter token.
    """
    prefix = tokenizer("Option", add_special_tokens=False).input_ids
    letters = []
    for letter in LETTERS:
        ids = tokenizer(f"Option {letter}", add_special_tokens=False).input_ids
        if ids[:-1] != prefix or len(ids) != len(prefix) + 1:
            raise ValueError(f"tokenizer splits 'Option {letter}' as {ids}; expected {prefix} + one letter token")
        letters.append(ids[-1])
    return prefix, letters

