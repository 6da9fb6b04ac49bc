"""Build the image's offline tokenizer folder: whitespace-separated words over AIPerf's own prompt corpus.

AIPerf needs a tokenizer to build prompts of a given input length (it cuts its corpus into token blocks) and to
count tokens. The image has no Hub access, tiktoken's ``builtin`` encoding is a download too, so the image ships a
Hugging Face ``tokenizers`` WordLevel tokenizer whose tokens are the whitespace-separated words of AIPerf's
corpus (aiperf/dataset/generator/assets/shakespeare.txt, public domain): an input length of N tokens is a prompt
of N words. Output token counts come from the endpoint's ``usage`` (``--use-server-token-count``), so the reported
output tokens are the model's own. Run at build time in the harness venv: ``python make_tokenizer.py OUT_DIR``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from aiperf.dataset import generator
from tokenizers import Tokenizer, models, pre_tokenizers

SPECIAL = ["<unk>", "<s>", "</s>"]


def build(corpus: str) -> Tokenizer:
    """A WordLevel tokenizer over the distinct words of ``corpus`` (in sorted order, after the special tokens)."""
    vocab = {token: index for index, token in enumerate(SPECIAL)}
    for word in sorted(set(re.findall(r"\S+", corpus))):
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tokenizer


def main(out: Path) -> None:
    corpus = (Path(generator.__file__).parent / "assets" / "shakespeare.txt").read_text(encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build(corpus)
    tokenizer.save(str(out / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "<unk>", "bos_token": "<s>",
              "eos_token": "</s>", "model_max_length": 1_000_000}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: {tokenizer.get_vocab_size()} words")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
