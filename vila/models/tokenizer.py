"""Tokenizers.

The embedded model uses a word-level tokenizer over the benchmark's closed vocabulary, built with
the `tokenizers` library and wrapped as a transformers fast tokenizer (so it saves and loads like
any other). Real InstructBLIP checkpoints bring their own T5 and BERT tokenizers.
"""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerFast

SPECIAL = ["<pad>", "</s>", "<unk>"]
LETTERS = "ABCDE"


def synthqa_vocabulary() -> list[str]:
    from tokenizers.pre_tokenizers import Whitespace

    from vila.data import prompts, synthqa

    texts = [prompts.MC_SUFFIX, prompts.VLEP_QUESTION, "Question: Option", *(q.format(c="red") for q in synthqa.QUESTION.values()),
             *synthqa.QUADRANTS, *synthqa.SHAPES]
    words: list[str] = list(LETTERS.lower())
    for text in texts:  # split exactly as the tokenizer will
        words += [w for w, _ in Whitespace().pre_tokenize_str(text.lower())]
    words += list(synthqa.COLOURS)
    words += ["object", "objects", "is", "are", "there", "in", "a", "an", "and"]
    seen: dict[str, None] = {}
    for w in words:
        seen.setdefault(w, None)
    return SPECIAL + sorted(seen)


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
