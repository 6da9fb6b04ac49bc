"""Write the test repositories under a root directory, in the layout the real Hub repositories have.

``build(root)`` writes (replacing earlier copies):

- ``datasets/openai/gsm8k``: configs ``main`` and ``socratic`` (both: the same rows), splits
  ``train`` (tests/fixtures/data/gsm8k_fewshot.jsonl) and ``test`` (gsm8k_sample.jsonl), as
  ``<config>/<split>-00000-of-00001.parquet``.
- ``datasets/cais/mmlu``: the 57 subject configs of lm-eval's ``mmlu`` group, splits ``test``
  (mmlu_sample.jsonl), ``validation`` and ``dev`` (mmlu_fewshot.jsonl): the same rows in every
  subject, with ``subject`` set to the config's name, as ``<subject>/<split>-00000-of-00001.parquet``.
- ``datasets/openai/openai_humaneval``: ``openai_humaneval/test-00000-of-00001.parquet``, four
  self-written problems (tests/hub/samples.py).
- ``datasets/Idavidrein/gpqa`` (gated on the Hub): ``gpqa_main.csv``, ``gpqa_diamond.csv`` and
  ``gpqa_extended.csv`` with the real columns and three self-written questions.
- ``spaces/evaluate-metric/code_eval``: the metric module ``evaluate.load("code_eval")`` fetches
  (tests/hub/metrics/code_eval.py).
- ``models/evals-test/word-tokenizer``: a tokenizer repository as ``AutoTokenizer.from_pretrained`` reads
  it (``tokenizer.json``, a word-level vocabulary written here, and ``tokenizer_config.json``).

Each repository has a README.md whose YAML header declares its configs, as the real one does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa  # type: ignore[import-not-found, import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]
import yaml

from tests.hub.samples import GPQA_COLUMNS, GPQA_ROWS, HUMANEVAL_PROBLEMS, MMLU_SUBJECTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data"
METRICS = Path(__file__).resolve().parent / "metrics"
GITATTRIBUTES = "*.arrow filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"

GSM8K_SCHEMA = pa.schema([("question", pa.string()), ("answer", pa.string())])
MMLU_SCHEMA = pa.schema(
    [("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())), ("answer", pa.int64())]
)
HUMANEVAL_SCHEMA = pa.schema(
    [(name, pa.string()) for name in ("task_id", "prompt", "canonical_solution", "test", "entry_point")]
)


def build(root: Path) -> None:
    """Write every test repository under ``root`` (``root/datasets/...``, ``root/spaces/...``)."""
    gsm8k(root / "datasets" / "openai" / "gsm8k")
    mmlu(root / "datasets" / "cais" / "mmlu")
    humaneval(root / "datasets" / "openai" / "openai_humaneval")
    gpqa(root / "datasets" / "Idavidrein" / "gpqa")
    code_eval(root / "spaces" / "evaluate-metric" / "code_eval")
    word_tokenizer(root / "models" / "evals-test" / "word-tokenizer")


def gsm8k(repo: Path) -> None:
    """openai/gsm8k: configs main and socratic, splits train and test."""
    splits = {"train": _jsonl("gsm8k_fewshot.jsonl"), "test": _jsonl("gsm8k_sample.jsonl")}
    _fresh(repo)
    configs = {config: _write_splits(repo, config, splits, GSM8K_SCHEMA) for config in ("main", "socratic")}
    _readme(repo, {"pretty_name": "Grade School Math 8K", **_card(configs, features=_features(GSM8K_SCHEMA))})


def mmlu(repo: Path) -> None:
    """cais/mmlu: one config per subject, splits test, validation and dev."""
    sample, fewshot = _jsonl("mmlu_sample.jsonl"), _jsonl("mmlu_fewshot.jsonl")
    _fresh(repo)
    configs = {}
    for subject in MMLU_SUBJECTS:
        splits = {
            split: [{**row, "subject": subject} for row in rows]
            for split, rows in (("test", sample), ("validation", fewshot), ("dev", fewshot))
        }
        configs[subject] = _write_splits(repo, subject, splits, MMLU_SCHEMA)
    features = _features(MMLU_SCHEMA)
    features[-1] = {"name": "answer", "dtype": {"class_label": {"names": {str(i): c for i, c in enumerate("ABCD")}}}}
    _readme(repo, {"pretty_name": "Measuring Massive Multitask Language Understanding", **_card(configs, features)})


def humaneval(repo: Path) -> None:
    """openai/openai_humaneval: one config, split test."""
    _fresh(repo)
    splits = {"test": HUMANEVAL_PROBLEMS}
    configs = {"openai_humaneval": _write_splits(repo, "openai_humaneval", splits, HUMANEVAL_SCHEMA)}
    _readme(repo, {"pretty_name": "OpenAI HumanEval", **_card(configs, features=_features(HUMANEVAL_SCHEMA))})


def gpqa(repo: Path) -> None:
    """Idavidrein/gpqa: one CSV per config (all rows in train), configs declared in the README."""
    _fresh(repo)
    configs = ("gpqa_extended", "gpqa_main", "gpqa_diamond")
    for index, config in enumerate(configs):
        with (repo / f"{config}.csv").open("w", encoding="utf-8", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=GPQA_COLUMNS, restval="")
            writer.writeheader()
            for number, row in enumerate(GPQA_ROWS, start=1):
                writer.writerow({**_pre_revision(row), "Record ID": f"rec{index:02d}{number:015d}"})
    header = {
        "license": "cc-by-4.0",
        "viewer": True,
        "extra_gated_prompt": "You agree to NOT reveal examples from this dataset in plain text or images online.",
        "extra_gated_fields": {"I accept these terms": "checkbox"},
        "configs": [{"config_name": config, "data_files": f"{config}.csv"} for config in configs],
        "pretty_name": "GPQA",
    }
    _readme(repo, header)


def code_eval(repo: Path) -> None:
    """spaces/evaluate-metric/code_eval: the metric module and the Space's README."""
    _fresh(repo, gitattributes=False)
    shutil.copyfile(METRICS / "code_eval.py", repo / "code_eval.py")
    header = {"title": "Code Eval", "sdk": "gradio", "app_file": "app.py", "tags": ["evaluate", "metric"]}
    _readme(repo, header)


TOKENIZER_WORDS = ["<unk>", "</s>", "the", "answer", "is", "question", ":", ".", *(str(n) for n in range(10))]


def word_tokenizer(repo: Path) -> None:
    """models/evals-test/word-tokenizer: a word-level fast tokenizer (lower-cased, split on whitespace)."""
    _fresh(repo, gitattributes=False)
    special = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 0, "content": "<unk>", **special}, {"id": 1, "content": "</s>", **special}],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {word: i for i, word in enumerate(TOKENIZER_WORDS)},
                  "unk_token": "<unk>"},
    }
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "</s>", "unk_token": "<unk>",
              "model_max_length": 4096}
    (repo / "tokenizer.json").write_text(json.dumps(tokenizer, indent=2) + "\n", encoding="utf-8")
    (repo / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    _readme(repo, {"license": "apache-2.0", "tags": ["tokenizer"]})


def _fresh(repo: Path, *, gitattributes: bool = True) -> None:
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    if gitattributes:
        (repo / ".gitattributes").write_text(GITATTRIBUTES, encoding="utf-8")


def _write_splits(
    repo: Path, config: str, splits: dict[str, list[dict[str, Any]]], schema: pa.Schema
) -> dict[str, dict[str, Any]]:
    """Write ``<config>/<split>-00000-of-00001.parquet`` per split; returns each split's README entry."""
    (repo / config).mkdir()
    written = {}
    for split, rows in splits.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, repo / config / f"{split}-00000-of-00001.parquet")
        written[split] = {"name": split, "num_bytes": table.nbytes, "num_examples": table.num_rows}
    return written


def _card(configs: dict[str, dict[str, dict[str, Any]]], features: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``dataset_info`` and ``configs`` parts of a README header, as the Hub writes them for parquet."""
    return {
        "dataset_info": [
            {
                "config_name": config,
                "features": features,
                "splits": list(splits.values()),
            }
            for config, splits in configs.items()
        ],
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": split, "path": f"{config}/{split}-*"} for split in splits],
            }
            for config, splits in configs.items()
        ],
    }


def _features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The README's feature list: ``dtype: string``, ``dtype: int64``, or ``sequence: string`` for a list."""
    names = {pa.string(): "string", pa.int64(): "int64"}
    return [
        {"name": field.name, "sequence": names[field.type.value_type]}
        if pa.types.is_list(field.type)
        else {"name": field.name, "dtype": names[field.type]}
        for field in schema
    ]


class _Dumper(yaml.SafeDumper):
    """Writes repeated parts out in full (no ``&id001`` anchors), as the Hub's READMEs have them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _readme(repo: Path, header: dict[str, Any]) -> None:
    text = yaml.dump(header, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    body = "Test data for tests/hub; not the real dataset.\n"
    (repo / "README.md").write_text(f"---\n{text}---\n\n{body}", encoding="utf-8")


def _pre_revision(row: dict[str, str]) -> dict[str, str]:
    """A GPQA row with its Pre-Revision columns equal to the revised ones, as most real rows have."""
    names = ("Question", "Correct Answer", *(f"Incorrect Answer {n}" for n in (1, 2, 3)), "Explanation")
    return {**row, **{f"Pre-Revision {name}": row[name] for name in names}}


def _jsonl(name: str) -> list[dict[str, Any]]:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
