"""What data each simple-evals task (its ``--eval_name``) loads, read from nvidia-simple-evals 26.3's evals:
Hugging Face datasets by id (with config and split) and files on OpenAI's public blob store by URL."""

from __future__ import annotations

from dataclasses import dataclass

BLOB = "https://openaipublic.blob.core.windows.net/simple-evals/"
"""Where browsecomp and healthbench read their data from; staged as <data_dir>/openaipublic/simple-evals/<file>."""

MGSM_LANGUAGES = ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")
MATH_500 = ("math_test_500", "AA_math_test_500", "math_test_500_nemo")
AIME_2024 = ("AIME_2024", "AA_AIME_2024", "aime_2024_nemo")
AIME_2025 = ("AIME_2025", "aime_2025_nemo")


@dataclass(frozen=True)
class Hub:
    """``load_dataset(id, config)[split]``."""

    id: str
    config: str | None
    split: str

    def describe(self) -> str:
        return f"dataset {self.id}" + (f" (config {self.config})" if self.config else "")


@dataclass(frozen=True)
class Blob:
    """A file under :data:`BLOB`."""

    name: str

    @property
    def url(self) -> str:
        return BLOB + self.name

    def describe(self) -> str:
        return f"file {self.url}"


Source = Hub | Blob


def mmlu_subjects() -> list[str]:
    """cais/mmlu's 57 subject configs, as simple-evals lists them."""
    # Imported when asked, after staging.install(): the eval binds load_dataset when it is imported.
    from simple_evals.evals.mmlu_eval import subject2category  # noqa: PLC0415

    return list(subject2category)


def sources(eval_name: str) -> list[Source]:  # noqa: PLR0912
    """The data ``simple_evals --eval_name EVAL_NAME`` loads; ValueError for a name simple-evals does not know."""
    if eval_name in MATH_500:
        return [Hub("HuggingFaceH4/MATH-500", None, "test")]
    if eval_name in AIME_2024:
        return [Hub("AI-MO/aimo-validation-aime", None, "train")]
    if eval_name in AIME_2025:
        return [Hub("opencompass/AIME2025", "AIME2025-I", "test"), Hub("opencompass/AIME2025", "AIME2025-II", "test")]
    if eval_name == "mgsm":
        return [Hub("juletxara/mgsm", lang, "test") for lang in MGSM_LANGUAGES]
    if eval_name == "humaneval":
        return [Hub("openai/openai_humaneval", None, "test")]
    if eval_name == "humanevalplus":
        return [Hub("evalplus/humanevalplus", None, "test")]
    if eval_name == "mmlu_pro":
        return [Hub("TIGER-Lab/MMLU-Pro", None, "test")]
    if eval_name in ("mmlu", "mmlu_en"):
        return [Hub("cais/mmlu", subject, "test") for subject in mmlu_subjects()]
    if eval_name.startswith("mmlu_") and eval_name.endswith("-lite"):
        return [Hub("CohereLabs/Global-MMLU-Lite", eval_name.removeprefix("mmlu_").removesuffix("-lite"), "test")]
    if eval_name.startswith("mmlu_"):
        return [Hub("CohereLabs/Global-MMLU", eval_name.removeprefix("mmlu_"), "test")]
    if eval_name.startswith("gpqa_"):
        return [Hub("Idavidrein/gpqa", "gpqa_" + eval_name.split("_")[1], "train")]
    if eval_name == "simpleqa":
        return [Hub("basicv8vc/SimpleQA", None, "test")]
    if eval_name == "browsecomp":
        return [Blob("browse_comp_test_set.csv")]
    healthbench = {"healthbench": "2025-05-07-06-14-12_oss_eval.jsonl",
                   "healthbench_hard": "hard_2025-05-08-21-00-10.jsonl",
                   "healthbench_consensus": "consensus_2025-05-09-20-00-46.jsonl"}
    if eval_name in healthbench:
        return [Blob(healthbench[eval_name])]
    raise ValueError(f"simple-evals has no eval named {eval_name!r}")
