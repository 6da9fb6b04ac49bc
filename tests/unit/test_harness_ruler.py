"""The ruler harness folder: its framework renders the commands we wrote, run_ruler.py's harness-free parts, and its
parser reads real run_ruler.py output.

images/ruler/fixtures/output/ holds the prediction files of a real run of the ruler image against the test endpoint
with images/ruler/fixtures/script.json (ruler-4k-chat, niah_single_1, niah_multivalue and cwe, 2 samples each;
tests/integration/test_ruler_image.py works out its scores), the generated data files left out.
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
from orchestrator.runtime.render import render_command
from orchestrator.schema.config import Evaluation
from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.samples import sample_id

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "images" / "ruler"
OUTPUT = HARNESS / "fixtures" / "output"
LENGTHS = {"4k": 4000, "8k": 8000, "16k": 16000, "32k": 32000, "64k": 64000, "128k": 128000, "256k": 256000,
           "512k": 512000, "1m": 1000000}


def resolve(eval_type: str, *, model_type: str = "chat", **kwargs: object) -> Evaluation:
    url = "http://h:9/v1/chat/completions" if model_type == "chat" else "http://h:9/v1/completions"
    values: dict[str, object] = {"eval_type": eval_type, "model_id": "org/model", "model_type": model_type,
                                 "model_url": url, "output_dir": "/tmp/out"} | kwargs
    framework = load_model(FrameworkDefinition, HARNESS / "framework.yml")
    return resolve_run(framework, RunRequest(**values))  # type: ignore[arg-type]


def argv(text: str) -> list[str]:
    return shlex.split(text.replace("\\\n", " "))


def option(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def run_ruler() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_ruler", HARNESS / "run_ruler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- framework.yml -----------------------------------------------------------------------------------------


def test_every_length_is_a_chat_and_a_completions_task() -> None:
    framework = load_model(FrameworkDefinition, HARNESS / "framework.yml")
    types = [e.defaults.config.type for e in framework.evaluations if e.defaults.config]
    assert types == ["ruler-chat", "ruler-completions",
                     *(f"ruler-{n}-{kind}" for n in LENGTHS for kind in ("chat", "completions"))]
    for label, tokens in LENGTHS.items():
        chat = argv(render_command(resolve(f"ruler-{label}-chat")))
        assert (option(chat, "--max_seq_length"), option(chat, "--mode")) == (str(tokens), "chat")
        completions = argv(render_command(resolve(f"ruler-{label}-completions", model_type="completions")))
        assert option(completions, "--mode") == "completion"


def test_run_and_data_step_take_the_url_the_key_by_name_and_the_tokenizer() -> None:
    evaluation = resolve("ruler-4k-chat", api_key_name="MY_KEY",
                         overrides="config.params.limit_samples=3,config.params.extra.tokenizer=/data/tok,"
                                   "config.params.extra.subtasks=[vt,qa_1],config.params.max_new_tokens=64")
    run = argv(render_command(evaluation))
    assert run[:3] == ["python", "/opt/evals/ruler/run_ruler.py", "run"]
    assert option(run, "--url") == "http://h:9/v1/chat/completions"
    assert (option(run, "--api_key_var"), option(run, "--tokenizer"), option(run, "--tasks")) == (
        "MY_KEY", "/data/tok", "vt,qa_1")
    assert (option(run, "--num_samples"), option(run, "--max_tokens")) == ("3", "64")
    assert (option(run, "--temperature"), option(run, "--top_p")) == ("0.0", "0.0001")
    assert option(run, "--attempts") == "1"  # the proxy retries
    check = argv(render_command(evaluation, data=True))
    assert check[:3] == ["python", "/opt/evals/ruler/run_ruler.py", "check"]
    assert (option(check, "--tokenizer"), option(check, "--max_seq_length")) == ("/data/tok", "4000")


def test_defaults_are_rulers_own() -> None:
    run = argv(render_command(resolve("ruler-8k-chat")))
    assert (option(run, "--num_samples"), option(run, "--tasks"), option(run, "--tokenizer")) == ("500", "all", None)
    assert option(run, "--max_tokens") is None  # each task's own budget
    off = argv(render_command(resolve("ruler-8k-chat", overrides="target.api_endpoint.adapter_config.enabled=false,"
                                                                 "config.params.max_retries=2")))
    assert option(off, "--attempts") == "3"


def test_a_run_without_a_length_stops_in_the_data_step(capsys: pytest.CaptureFixture[str]) -> None:
    evaluation = resolve("ruler-chat")
    check = argv(render_command(evaluation, data=True))
    assert option(argv(render_command(evaluation)), "--max_seq_length") is None and "--max_seq_length" not in check
    with pytest.raises(SystemExit) as stopped:
        run_ruler().main(check[2:])
    assert stopped.value.code == 2
    assert "config.params.extra.max_seq_length is required" in capsys.readouterr().err
    run = argv(render_command(resolve("ruler-chat", overrides="config.params.extra.max_seq_length=12345")))
    assert option(run, "--max_seq_length") == "12345"


# ---- run_ruler.py (the parts that need no harness) ---------------------------------------------------------------


@pytest.mark.parametrize(("url", "root"), [
    ("http://h:8000/v1/chat/completions", "http://h:8000"),
    ("http://h:8000/v1/completions/?a=b", "http://h:8000"),
    ("http://h/prefix/v1/chat/completions", "http://h/prefix"),
])
def test_the_tokenizer_routes_are_at_the_server_root(url: str, root: str) -> None:
    assert run_ruler().server_root(url) == root


def test_tasks_and_the_generators_arguments() -> None:
    module = run_ruler()
    assert module.task_list("all") == list(module.TASKS) and len(module.TASKS) == 13
    assert module.task_list(" vt, qa_1 ") == ["vt", "qa_1"]
    with pytest.raises(SystemExit) as stopped:
        module.task_list("vt,niah_single_9")
    assert stopped.value.code == 2
    config = {"task": "qa", "tokens_to_generate": 32, "args": {"dataset": "squad"}, "template": "T {context}"}
    args = module.generator_argv("qa_1", config, save_dir=Path("/o/data"), max_seq_length=4000, num_samples=2)
    assert option(args, "--random_seed") == "42" and option(args, "--pre_samples") == "0"
    assert (option(args, "--dataset"), option(args, "--template"), option(args, "--tokens_to_generate")) == (
        "squad", "T {context}", "32")


def test_a_missing_local_tokenizer_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    module = run_ruler()
    (tmp_path / "tokenizer.json").write_text("{}")
    assert module.local_tokenizer_file(str(tmp_path)) == tmp_path / "tokenizer.json"
    with pytest.raises(SystemExit) as stopped:
        module.local_tokenizer_file("meta-llama/Llama-3.1-8B-Instruct")
    assert stopped.value.code == 2
    assert "config.params.extra.tokenizer" in capsys.readouterr().err


def test_predictions_are_cleaned_as_rulers_evaluate_cleans_them() -> None:
    assert run_ruler().postprocess_pred("  a\tb\x01c \n") == "a\nb\nc"
    assert run_ruler().postprocess_pred(None) == ""


# ---- parse_ruler.py ----------------------------------------------------------------------------------------------


def test_results_per_task_and_length() -> None:
    result = load_parsers(HARNESS).parse(OUTPUT)
    values = {name: task.metrics["score"].scores["score"] for name, task in result.tasks.items()}
    assert {name: score.value for name, score in values.items()} == pytest.approx(
        {"niah_single_1_4000": 0.5, "niah_multivalue_4000": 0.75, "cwe_4000": 0.25})
    assert (values["niah_multivalue_4000"].stats.count, values["niah_multivalue_4000"].stats.sum) == (2, 1.5)
    assert result.groups["ruler_4000"].metrics["score"].scores["score"].value == pytest.approx(0.5)


def test_samples_are_the_generated_items_as_sent() -> None:
    records = load_parsers(HARNESS).parse_samples(OUTPUT)
    assert len(records) == 6
    by_key = {(r.task, r.sample_id.split("#")[0]): r for r in records}
    first = by_key[("niah_single_1_4000", "0")]
    assert (first.target, first.scores, first.status) == (["4612365"], {"score": 1.0}, "scored")
    message = first.input[0]
    assert not isinstance(message, str) and message.role == "user" and isinstance(message.content, str)
    assert message.content.startswith("A special magic number is hidden within the following text.")
    line = json.loads((OUTPUT / "ruler" / "4000" / "pred" / "niah_single_1.jsonl").read_text().splitlines()[0])
    assert first.sample_id == sample_id("0", {"index": 0, "input": line["input"], "outputs": ["4612365"]})
    assert by_key[("niah_multivalue_4000", "0")].scores == {"score": 0.5}


def test_a_failed_request_is_an_error_not_a_wrong_answer(tmp_path: Path) -> None:
    shutil.copytree(OUTPUT, tmp_path / "out")
    path = tmp_path / "out" / "ruler" / "4000" / "pred" / "cwe.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0] |= {"pred": None, "score": None, "error": "HTTP 500: boom"}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    parsers = load_parsers(HARNESS)
    cwe = parsers.parse(tmp_path / "out").tasks["cwe_4000"].metrics["score"].scores["score"]
    assert (cwe.value, cwe.stats.count) == (0.0, 1)
    record = next(r for r in parsers.parse_samples(tmp_path / "out") if r.task == "cwe_4000" and r.sample_id[0] == "0")
    assert (record.status, record.error, record.scores, record.prediction) == ("error", "HTTP 500: boom", {}, None)


def test_no_predictions_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsParseError, match="no RULER prediction file"):
        load_parsers(HARNESS).parse(tmp_path)
