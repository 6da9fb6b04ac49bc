"""The mmath harness folder: its framework renders the command we wrote, its parser reads real mmath 26.3 output.

tests/fixtures/mmath_output/ holds two real runs of nvidia-mmath 26.3 through images/mmath/run_mmath.py against the
test endpoint with images/mmath/fixtures/script.json (README there), their problem lists cut to the first problems.
"""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import TemplateFailedError, render_command
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.samples import sample_id

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "images" / "mmath"
OUTPUT = ROOT / "tests" / "fixtures" / "mmath_output"
LANGUAGES = ["en", "zh", "ar", "es", "fr", "ja", "ko", "pt", "th", "vi"]


def resolve(eval_type: str, **kwargs: object) -> Evaluation:
    values: dict[str, object] = {"eval_type": eval_type, "model_id": "org/model", "model_type": "chat",
                                 "model_url": "http://h:9/proxy/v1/chat/completions/?tenant=a&b=c",
                                 "output_dir": "/tmp/out"} | kwargs
    framework = load_model(FrameworkDefinition, HARNESS / "framework.yml")
    return resolve_run(framework, RunRequest(**values))  # type: ignore[arg-type]


def argv(evaluation: Evaluation) -> list[str]:
    return shlex.split(render_command(evaluation).replace("\\\n", " "))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# ---- framework.yml -----------------------------------------------------------------------------------------


def test_every_language_is_a_task_that_asks_in_its_language() -> None:
    """NVIDIA's mmath_ja sets no language (and so would ask in English); ours asks each task in its own."""
    framework = load_model(FrameworkDefinition, HARNESS / "framework.yml")
    types = [e.defaults.config.type for e in framework.evaluations if e.defaults.config]
    assert types == [f"mmath_{lang}" for lang in LANGUAGES]
    for lang in LANGUAGES:
        assert option(argv(resolve(f"mmath_{lang}")), "--lang") == lang


def test_command_takes_the_full_url_as_given_and_the_key_by_name() -> None:
    evaluation = resolve("mmath_fr", api_key_name="MY_KEY",
                         overrides="target.api_endpoint.adapter_config.enabled=false")
    args = argv(evaluation)
    assert args[:2] == ["python", "/opt/evals/mmath/run_mmath.py"]
    assert option(args, "--model-url") == "http://h:9/proxy/v1/chat/completions/?tenant=a&b=c"
    assert option(args, "--model-name") == "org/model"
    assert option(args, "--api-key-var") == "MY_KEY"
    assert (option(args, "--max-tokens"), option(args, "--temperature"), option(args, "--top-p")) == (
        "32768", "0.6", "0.95")
    assert option(args, "--n-samples") == "1"
    assert option(args, "--limit") is None


def test_retries_belong_to_the_proxy_when_it_is_on() -> None:
    on = argv(resolve("mmath_en", overrides="config.params.limit_samples=3,config.params.request_timeout=10.5"))
    assert option(on, "--retries") == "1"  # one attempt; the proxy retries
    assert int(option(on, "--request-timeout") or 0) > 600  # beyond the proxy's budget (max_retry_seconds 600)
    assert option(on, "--limit") == "3"
    off = argv(resolve("mmath_en", overrides="target.api_endpoint.adapter_config.enabled=false,"
                                             "config.params.max_retries=2,config.params.request_timeout=10.5"))
    assert (option(off, "--retries"), option(off, "--request-timeout")) == ("3", "11")


def test_an_unknown_language_is_a_config_error() -> None:
    with pytest.raises(TemplateFailedError, match=r"extra\.language must be one of en, zh"):
        render_command(resolve("mmath_en", overrides="config.params.extra.language=de"))


# ---- run_mmath.py (the parts that need no harness) ---------------------------------------------------------------


def run_mmath() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_mmath", HARNESS / "run_mmath.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reasoning_is_split_as_calculate_lcr_splits_it() -> None:
    split = run_mmath().split_reasoning
    assert split("<think>a</think>b</think> c ") == ("<think>a b", "c")  # the opening tag stays, as there
    assert split(" plain answer ") == ("plain answer", "plain answer")


# ---- the parser --------------------------------------------------------------------------------------------


def test_results_per_source_and_overall() -> None:
    """en, limit 31: AIME2024 problems 0 (\\dfrac{408}{2} for 204) and 1 right, 2 wrong, 3..29 nothing to extract;
    AIME2025's first right. mmath's 'micro_avg' is the mean of the two sources."""
    result = load_parsers(HARNESS).parse(OUTPUT / "en")
    assert set(result.tasks) == {"AIME2024", "AIME2025"}
    aime24 = result.tasks["AIME2024"].metrics["accuracy"].scores["accuracy"]
    assert aime24.value == pytest.approx(2 / 30)
    assert (aime24.stats.count, aime24.stats.sum) == (30, 2.0)
    assert result.tasks["AIME2025"].metrics["accuracy"].scores["accuracy"].value == 1.0
    overall = result.groups["MMATH"].metrics["accuracy"].scores
    assert overall["accuracy"].value == pytest.approx((2 / 30 + 1) / 2)
    assert overall["micro_accuracy"].value == pytest.approx(3 / 31)
    lcr = result.groups["MMATH"].metrics["language_consistency"].scores
    assert (lcr["thinking_lcr"].value, lcr["answering_lcr"].value) == (1.0, 1.0)


def test_samples_are_the_problems_asked() -> None:
    records = load_parsers(HARNESS).parse_samples(OUTPUT / "en")
    assert len(records) == 31
    by_gid = {int(r.sample_id.split("#")[0]): r for r in records}
    assert by_gid[0].scores["accuracy"] == 1.0 and by_gid[0].status == "scored"
    assert by_gid[0].target == "204" and "dfrac{408}{2}" in (by_gid[0].prediction or "")
    assert (by_gid[2].scores["accuracy"], by_gid[2].status) == (0.0, "scored")
    assert (by_gid[3].scores["accuracy"], by_gid[3].status) == (0.0, "unscored")
    assert by_gid[30].task == "AIME2025"
    assert [r.status for r in records].count("unscored") == 27
    message = by_gid[1].input[0]
    assert not isinstance(message, str) and message.role == "user" and isinstance(message.content, str)
    assert message.content.endswith("Please reason step by step, and put your final answer within \\boxed{}.")


def test_sample_ids_hash_the_dataset_row_only() -> None:
    """The id is the same whatever the model answered: mmath's added keys are not part of the document."""
    records = load_parsers(HARNESS).parse_samples(OUTPUT / "en")
    problem = json.loads((OUTPUT / "en" / "test-model" / "en.json").read_text(encoding="utf-8"))[0]
    row = {k: problem[k] for k in ("question", "answer", "data_source", "data_source_id", "lang", "gid")}
    assert records[0].sample_id == sample_id(0, row)


def test_language_consistency_of_a_nested_model_name() -> None:
    """zh, model org/test-model (a nested folder): replies in Chinese, in English, and English thinking followed by
    a Chinese answer."""
    result = load_parsers(HARNESS).parse(OUTPUT / "zh")
    task = result.tasks["AIME2024"]
    assert task.metrics["accuracy"].scores["accuracy"].value == pytest.approx(2 / 3)
    lcr = task.metrics["language_consistency"].scores
    assert lcr["thinking_lcr"].value == pytest.approx(1 / 3)
    assert lcr["answering_lcr"].value == pytest.approx(2 / 3)
    records = load_parsers(HARNESS).parse_samples(OUTPUT / "zh")
    assert [r.scores for r in records] == [
        {"accuracy": 1.0, "thinking_lcr": 1.0, "answering_lcr": 1.0},
        {"accuracy": 1.0, "thinking_lcr": 0.0, "answering_lcr": 0.0},
        {"accuracy": 0.0, "thinking_lcr": 0.0, "answering_lcr": 1.0}]


def test_without_detections_there_is_no_lcr(tmp_path: Path) -> None:
    shutil.copytree(OUTPUT / "zh", tmp_path / "zh")
    (tmp_path / "zh" / "org" / "test-model" / "lcr_zh.json").unlink()
    result = load_parsers(HARNESS).parse(tmp_path / "zh")
    assert "language_consistency" not in result.tasks["AIME2024"].metrics
    assert result.tasks["AIME2024"].metrics["accuracy"].scores["accuracy"].value == pytest.approx(2 / 3)


def test_missing_or_ambiguous_output_is_a_parse_error(tmp_path: Path) -> None:
    parser = load_parsers(HARNESS)
    with pytest.raises(ResultsParseError, match="no mmath metrics file"):
        parser.parse(tmp_path)
    shutil.copytree(OUTPUT / "en", tmp_path / "both")
    shutil.copytree(OUTPUT / "zh", tmp_path / "both", dirs_exist_ok=True)
    with pytest.raises(ResultsParseError, match="several mmath runs"):
        parser.parse(tmp_path / "both")
    (tmp_path / "bad" / "m").mkdir(parents=True)
    (tmp_path / "bad" / "m" / "metrics_en.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ResultsParseError, match="no micro_avg"):
        parser.parse(tmp_path / "bad")
