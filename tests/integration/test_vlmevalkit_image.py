"""The vlmevalkit image, run as NVIDIA's Evals Factory documents it, against the deterministic test endpoint.

The samples (tests/fixtures/lmudata/LMUData, from tests/fixtures/make_lmudata.py) are in LMUData's TSV
format with md5s that differ from upstream's, so VLMEvalKit unpatched would try to download the real
files. Expected scores are worked out here from the rows and the endpoint's documented reply rule
(tests/endpoint/README.md), not from its code.
"""

from __future__ import annotations

import ast
import base64
import csv
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from orchestrator.runtime.harness_parser import load_parsers
from orchestrator.runtime.render import render_command
from orchestrator.schema.container import DATA_DIR, RESULTS_DIR
from orchestrator.schema.errors import InputError
from orchestrator.schema.framework import FrameworkDefinition
from orchestrator.schema.loading import load_model
from orchestrator.schema.resolve import RunRequest, resolve_run
from orchestrator.schema.results import EvaluationResult, ResultsFile
from orchestrator.schema.samples import ImageRef, SampleRecord, TextPart
from tests.endpoint.server import EndpointServer, serve
from tests.faults.server import serve_faulty
from tests.integration.conftest import REPO
from tests.integration.harness import Finished, run_image

samples = load_parsers(Path(__file__).resolve().parents[2] / "images" / "vlmevalkit").parse_samples

DATA = REPO / "tests" / "fixtures" / "lmudata"
TASKS = ["ai2d_judge", "chartqa", "mathvista-mini", "mmmu_judge", "ocrbench", "ocr_reasoning", "slidevqa"]
UPSTREAM_MD5 = {"OCRBench": "e953d98a987cc6e26ef717b61260b778", "ChartQA_TEST": "c902e0aa9be5582a7aad6dcf52734b42",
                "AI2D_TEST": "0f593e0d1c7df9a3d69bf1f947e71975"}
"""What vlmeval 26.3 records for the real files (DATASET_MD5)."""
CHARTQA_SUFFIX = "\nAnswer the question using a single word or phrase."
"""ImageVQADataset.build_prompt appends this to each question."""
FIXED_REPLY = "This is a deterministic test response."

csv.field_size_limit(sys.maxsize)


# ---- the endpoint's rule and VLMEvalKit's scoring, re-derived ----------------------------------------


def reply(prompt: str) -> str:
    """tests/endpoint/README.md: the last integer of the text after the last 'Question:' (up to 'Answer:')."""
    if "Question:" not in prompt:
        return FIXED_REPLY
    question = prompt.rsplit("Question:", 1)[1].split("Answer:", 1)[0]
    numbers = re.findall(r"[0-9]+", question)
    return f"The answer is {int(numbers[-1])}." if numbers else FIXED_REPLY


def rows(name: str) -> list[dict[str, str]]:
    with (DATA / "LMUData" / f"{name}.tsv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def ocrbench_expected() -> dict[str, tuple[int, int]]:
    """(hits, count) per category: a hit is any gold answer inside the reply (lower-cased; HMER without spaces)."""
    scores: dict[str, tuple[int, int]] = {}
    for row in rows("OCRBench"):
        prediction, category = reply(row["question"]), row["category"]
        golds = ast.literal_eval(row["answer"])
        if category == "Handwritten Mathematical Expression Recognition":
            hit = any(gold.replace(" ", "") in prediction.replace(" ", "") for gold in golds)
        else:
            hit = any(gold.lower().strip() in prediction.lower() for gold in golds)
        hits, count = scores.get(category, (0, 0))
        scores[category] = (hits + hit, count + 1)
    return scores


def chartqa_expected() -> dict[str, float]:
    """Relaxed accuracy per split and overall: the replies are sentences, so only a whole-sentence gold matches."""
    hits: dict[str, list[bool]] = {}
    for row in rows("ChartQA_TEST"):
        hit = reply(row["question"] + CHARTQA_SUFFIX).lower() == row["answer"].lower()
        hits.setdefault(row["split"], []).append(hit)
        hits.setdefault("Overall", []).append(hit)
    return {split: sum(values) / len(values) for split, values in hits.items()}


def test_expected_scores_are_not_trivial() -> None:
    """The samples are built so that the endpoint gets some right and some wrong (fixture README)."""
    assert ocrbench_expected() == {
        "Regular Text Recognition": (1, 2), "Irregular Text Recognition": (0, 1), "Handwriting Recognition": (1, 1),
        "Digit String Recognition": (0, 1), "Scene Text-centric VQA": (1, 2), "Doc-oriented VQA": (1, 1),
        "Key Information Extraction": (1, 1), "Handwritten Mathematical Expression Recognition": (0, 1),
    }
    assert chartqa_expected() == pytest.approx({"test_human": 2 / 3, "test_augmented": 1 / 3, "Overall": 0.5})
    for name, upstream in UPSTREAM_MD5.items():
        assert hashlib.md5((DATA / "LMUData" / f"{name}.tsv").read_bytes()).hexdigest() != upstream


# ---- helpers -------------------------------------------------------------------------------------------


class Trap:
    """A loopback TCP listener that counts connections: set as HTTP(S)_PROXY it sees any download attempt."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def env(self) -> dict[str, str]:
        proxies = {name: self.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
        return proxies | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def close(self) -> None:
        self._socket.close()
        self._thread.join(timeout=5)


@pytest.fixture
def trap() -> Iterator[Trap]:
    listener = Trap()
    yield listener
    listener.close()


def eval_args(task: str, endpoint: EndpointServer, *extra: str) -> list[str]:
    """The documented run_eval flags, against the test endpoint."""
    return ["run_eval", "--eval_type", task, "--model_id", endpoint.model,
            "--model_url", f"{endpoint.url}/v1/chat/completions", "--model_type", "vlm",
            "--output_dir", RESULTS_DIR, *extra]


def results_of(output_dir: Path) -> ResultsFile:
    return ResultsFile.model_validate(yaml.safe_load((output_dir / "results.yml").read_text()))


def accuracy(results: EvaluationResult, *, task: str | None = None, group: str | None = None) -> float:
    holder = results.tasks[task] if task is not None else results.groups[str(group)]
    return holder.metrics["accuracy"].scores["accuracy"].value


def slug(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "-", name.lower()).strip("-")


def chat_images(endpoint: EndpointServer) -> list[tuple[str, str, bytes, str]]:
    """(mime, detail, image bytes, prompt text) of each inference request."""
    found = []
    for request in endpoint.requests:
        if request.kind != "inference":
            continue
        content = request.body["messages"][-1]["content"]
        [image] = [part["image_url"] for part in content if part["type"] == "image_url"]
        head, data = image["url"].split(",", 1)
        text = "\n".join(part["text"] for part in content if part["type"] == "text")
        mime = head.removeprefix("data:").removesuffix(";base64")
        found.append((mime, image["detail"], base64.b64decode(data), text))
    return found


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the first start-of-frame marker."""
    assert data[:2] == b"\xff\xd8"
    offset = 2
    while offset < len(data):
        marker, length = data[offset + 1], struct.unpack(">H", data[offset + 2:offset + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[offset + 5:offset + 9])
            return width, height
        offset += 2 + length
    raise AssertionError("no JPEG frame header")


def assert_ok(finished: Finished) -> None:
    assert finished.exit_code == 0, finished.logs[-4000:]


def sent_parts(record: SampleRecord) -> tuple[str, str]:
    """(image sha256, text) of a record's one user message: one image, then the text."""
    assert not isinstance(record.input, str)
    [message] = record.input
    assert message.role == "user" and not isinstance(message.content, str)
    image, text = message.content
    assert isinstance(image, ImageRef) and isinstance(text, TextPart)
    return image.sha256, text.text


# ---- the image -----------------------------------------------------------------------------------------


def test_image_labels_user_size_and_cpu_torch(engine: docker.DockerClient, vlmevalkit_image: str) -> None:
    image = engine.images.get(vlmevalkit_image)
    labels = image.labels
    assert (labels["evals.harness"], labels["evals.harness.version"]) == ("vlmevalkit", "26.3")
    assert json.loads(labels["evals.tasks"]) == TASKS
    assert base64.b64decode(labels["evals.framework"]) == (REPO / "images/vlmevalkit/framework.yml").read_bytes()
    assert image.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert image.attrs["Size"] < 2_500_000_000
    probe = ("import torch, torchvision, transformers.utils as t, vlmeval; "
             "print(torch.__version__, torch.version.cuda, t.is_torchvision_available())")
    output = engine.containers.run(vlmevalkit_image, ["-c", probe], entrypoint="python", network_mode="host",
                                   remove=True, stderr=False)
    assert output.decode().split() == ["2.13.0+cpu", "None", "False"]


def test_ls_lists_the_documented_tasks(vlmevalkit_image: str, tmp_path: Path) -> None:
    finished = run_image(vlmevalkit_image, ["ls"], output_dir=tmp_path)
    assert_ok(finished)
    assert finished.logs.splitlines() == ["Available tasks:", *(f"* {task} (in vlmevalkit)" for task in TASKS)]


def test_documented_dry_run_prints_config_and_command(vlmevalkit_image: str, tmp_path: Path) -> None:
    finished = run_image(vlmevalkit_image, [
        "run_eval", "--eval_type", "ocrbench", "--model_id", "M", "--model_url",
        "http://localhost:8000/v1/chat/completions", "--model_type", "vlm", "--api_key_name", "MY_API_KEY",
        "--output_dir", RESULTS_DIR, "--dry_run"], output_dir=tmp_path)
    assert_ok(finished)
    assert "Rendered config:" in finished.logs and "Rendered command:" in finished.logs
    assert '"img_size": -1' in finished.logs and '"img_detail": "high"' in finished.logs
    assert f"python -m vlmeval.run --config {RESULTS_DIR}/vlmeval_config.json" in finished.logs
    assert list(tmp_path.iterdir()) == []


def test_ocrbench_documented_flags_full_fidelity_offline(vlmevalkit_image: str, endpoint: EndpointServer,
                                                         trap: Trap, tmp_path: Path) -> None:
    finished = run_image(vlmevalkit_image, eval_args("ocrbench", endpoint, "--api_key_name", "MY_API_KEY"),
                         output_dir=tmp_path, data_dir=DATA, env={"MY_API_KEY": "sk-vlm-321", **trap.env()})
    assert_ok(finished)
    results = results_of(tmp_path)
    expected = ocrbench_expected()
    hits, count = map(sum, zip(*expected.values(), strict=True))
    assert accuracy(results.results, group="ocrbench") == pytest.approx(hits / count)
    recognition = [v for k, v in expected.items() if k.endswith("Recognition") and "Mathematical" not in k]
    nested = (results.results.groups["ocrbench"].groups or {})["text-recognition"]
    assert nested.metrics["accuracy"].scores["accuracy"].value == pytest.approx(
        sum(h for h, _ in recognition) / sum(c for _, c in recognition))
    assert set(results.results.tasks) == {slug(category) for category in expected}
    for category, (category_hits, category_count) in expected.items():
        score = results.results.tasks[slug(category)].metrics["accuracy"].scores["accuracy"]
        assert score.value == pytest.approx(category_hits / category_count)
        assert score.stats.count == category_count
    assert results.provenance.harness_version == "26.3"
    # The pre-staged file was used despite its md5, and nothing tried to reach the internet.
    assert "OCRBench.tsv: using the pre-staged file" in finished.logs
    assert trap.connections == 0
    # Every image arrived as the very bytes of the TSV's PNG, at full size, detail high, with the key.
    originals = {base64.b64decode(row["image"]) for row in rows("OCRBench")}
    sent = chat_images(endpoint)
    assert len(sent) == len(originals) == count
    assert {data for _, _, data, _ in sent} == originals
    assert {(mime, detail) for mime, detail, _, _ in sent} == {("image/png", "high")}
    assert all(png_size(data)[0] == 1200 for _, _, data, _ in sent)
    assert {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"} == {"Bearer sk-vlm-321"}
    # Per sample: the prompt as the endpoint got it (image by its sha256), the reply, the hit VLMEvalKit's rule gave.
    records = samples(tmp_path)
    assert len(records) == count and {r.status for r in records} == {"scored"}
    received = sorted((hashlib.sha256(data).hexdigest(), text) for _, _, data, text in sent)
    assert sorted(sent_parts(r) for r in records) == received
    for record in records:
        assert record.prediction == reply(sent_parts(record)[1])
    per_task: dict[str, list[float]] = {}
    for record in records:
        per_task.setdefault(record.task, []).append(record.scores["accuracy"])
    assert {task: (sum(v), len(v)) for task, v in per_task.items()} == {slug(c): v for c, v in expected.items()}


def test_ocrbench_documented_run_config(vlmevalkit_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    """The Evals Factory's YAML verbatim (limit 20 > the 10 samples), key variable NVIDIA_API_KEY."""
    (tmp_path / "run.yml").write_text(yaml.safe_dump({
        "config": {"type": "ocrbench", "params": {"parallelism": 50, "limit_samples": 20}},
        "target": {"api_endpoint": {"model_id": endpoint.model, "type": "vlm",
                                    "url": f"{endpoint.url}/v1/chat/completions", "api_key": "NVIDIA_API_KEY"}},
    }))
    finished = run_image(vlmevalkit_image, ["run_eval", "--run_config", f"{RESULTS_DIR}/run.yml", "--output_dir",
                                            RESULTS_DIR], output_dir=tmp_path, data_dir=DATA,
                         env={"NVIDIA_API_KEY": "nvapi-run-config-1"})
    assert_ok(finished)
    results = results_of(tmp_path)
    assert accuracy(results.results, group="ocrbench") == pytest.approx(0.5)
    assert results.config.params.parallelism == 50 and results.config.params.limit_samples == 20
    assert "--api-nproc 50 --first-n 20" in results.provenance.command
    auth = {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"}
    assert auth == {"Bearer nvapi-run-config-1"}


def test_chartqa_scores_and_smaller_images_on_request(vlmevalkit_image: str, endpoint: EndpointServer,
                                                      tmp_path: Path) -> None:
    finished = run_image(vlmevalkit_image, eval_args(
        "chartqa", endpoint, "--overrides", "config.params.extra.img_size=512,config.params.extra.img_detail=low"),
        output_dir=tmp_path, data_dir=DATA)
    assert_ok(finished)
    results = results_of(tmp_path).results
    expected = chartqa_expected()
    assert accuracy(results, group="chartqa") == pytest.approx(expected.pop("Overall"))
    assert {name: accuracy(results, task=slug(name)) for name in expected} == pytest.approx(expected)
    sent = chat_images(endpoint)
    assert sorted(text for *_, text in sent) == sorted(row["question"] + CHARTQA_SUFFIX for row in rows("ChartQA_TEST"))
    assert {(mime, detail) for mime, detail, _, _ in sent} == {("image/jpeg", "low")}
    assert {jpeg_size(data) for _, _, data, _ in sent} == {(512, 384)}  # 960 x 720 shrunk to fit 512


# ---- judges and missing data ---------------------------------------------------------------------------


def test_judge_task_without_a_judge_stops_with_exit_2(vlmevalkit_image: str, tmp_path: Path) -> None:
    finished = run_image(vlmevalkit_image, [
        "run_eval", "--eval_type", "ai2d_judge", "--model_id", "M", "--model_url",
        "http://localhost:8000/v1/chat/completions", "--model_type", "vlm", "--output_dir", RESULTS_DIR,
    ], output_dir=tmp_path, data_dir=DATA)
    assert finished.exit_code == 2
    assert "task ai2d_judge is scored by an LLM judge and none is configured" in finished.logs
    assert "config.params.extra.judge.model" in finished.logs and "Traceback" not in finished.logs
    assert list(tmp_path.iterdir()) == []


def test_judge_key_variable_must_be_set(vlmevalkit_image: str, trap: Trap, tmp_path: Path) -> None:
    judge = '{"model": "j", "url": "http://127.0.0.1:9/v1/chat/completions", "api_key": "UNSET_JUDGE_KEY"}'
    finished = run_image(vlmevalkit_image, [
        "run_eval", "--eval_type", "ai2d_judge", "--model_id", "M", "--model_url",
        "http://localhost:8000/v1/chat/completions", "--model_type", "vlm", "--output_dir", RESULTS_DIR,
        "--overrides", f"config.params.extra.judge={judge}"], output_dir=tmp_path, data_dir=DATA, timeout=120,
        env=trap.env())
    assert finished.exit_code == 2
    assert "environment variable UNSET_JUDGE_KEY (named by config.params.extra.judge.api_key) is not set" \
        in finished.logs
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
    assert trap.connections == 0


def test_judge_key_is_a_variable_name_and_args_may_be_a_json_string() -> None:
    """Resolving and rendering only: a key value in place of its name is refused unseen; NVIDIA's string-form args
    pass verbatim."""
    definition = load_model(FrameworkDefinition, REPO / "images/vlmevalkit/framework.yml")

    def command(judge: dict[str, object]) -> str:
        request = RunRequest(eval_type="mmmu_judge", model_id="m", model_url="http://localhost:8000/v1/chat/completions",
                             model_type="vlm", output_dir="/tmp/out",
                             overrides=f"config.params.extra.judge={json.dumps(judge)}")
        return render_command(resolve_run(definition, request))

    with pytest.raises(InputError, match="must be the NAME of an environment variable") as info:  # when resolved
        command({"model": "j", "api_key": "nvapi-abc$(id)"})
    assert info.value.exit_code == 2 and "nvapi-abc" not in str(info.value)
    rendered = command({"model": "j", "api_key": "JUDGE_KEY", "args": '{"use_azure": true}'})
    assert """--judge-args '{"use_azure": true}'""" in rendered
    assert 'OPENAI_API_KEY="${JUDGE_KEY}"' in rendered


def test_judge_is_any_openai_compatible_endpoint(vlmevalkit_image: str, endpoint: EndpointServer,
                                                 tmp_path: Path) -> None:
    """The judge from the run config: its URL, its model id as given, its key (not an `sk-` one) by name."""
    with serve(model="judge-model") as judge:
        (tmp_path / "run.yml").write_text(yaml.safe_dump({"config": {"params": {"extra": {"judge": {
            "model": "judge-model", "url": f"{judge.url}/v1/chat/completions", "api_key": "JUDGE_KEY"}}}}}))
        finished = run_image(vlmevalkit_image, eval_args("ai2d_judge", endpoint, "--run_config",
                                                         f"{RESULTS_DIR}/run.yml"),
                             output_dir=tmp_path, data_dir=DATA, env={"JUDGE_KEY": "nvapi-judge-654"})
        judged = [r for r in judge.requests if r.kind == "inference"]
    assert_ok(finished)
    # Row 1's reply names option D's text (6), the gold; rows 2 and 3 get the fixed sentence, which the
    # judge (the same deterministic rule) cannot map to an option. VLMEvalKit then picks an option at
    # random (unseeded, its own behaviour), so rows 2 and 3 may or may not count: at least 1 of 3.
    score = accuracy(results_of(tmp_path).results, group="ai2d")
    assert any(score == pytest.approx(k / 3) for k in (1, 2, 3))
    assert len(judged) >= 3  # `working()` says hello, then at least one extraction per unmatched row
    assert {(r.header("Authorization"), r.body["model"]) for r in judged} == {("Bearer nvapi-judge-654",
                                                                               "judge-model")}
    assert len([r for r in endpoint.requests if r.kind == "inference"]) == 3
    # Rows 2 and 3 got a random option: unscored, with the hit VLMEvalKit counted and its log.
    records = {r.sample_id.split("#")[0]: r for r in samples(tmp_path)}
    assert (records["0"].status, records["0"].scores, records["0"].target) == ("scored", {"accuracy": 1.0}, "D")
    for index in ("1", "2"):
        assert records[index].status == "unscored"
        assert "randomly generate one" in (records[index].error or "")
    assert sum(r.scores["accuracy"] for r in records.values()) / 3 == pytest.approx(score)


def test_a_flaky_judge_is_retried_by_its_own_proxy_cached_and_counted_apart(vlmevalkit_image: str,
                                                                           endpoint: EndpointServer,
                                                                           tmp_path: Path) -> None:
    """Every judge request gets a 503 first: the judge's proxy retries it, VLMEvalKit never sees it; the judge's
    traffic is in usage_by_role.judge, not in the model's usage; a re-run from the proxies' caches asks neither."""
    with serve_faulty("503", model="judge-model") as judge:
        (tmp_path / "run.yml").write_text(yaml.safe_dump({"config": {"params": {"extra": {"judge": {
            "model": "judge-model", "url": f"{judge.url}/v1/chat/completions", "api_key": "JUDGE_KEY"}}}}}))
        args = eval_args("ai2d_judge", endpoint, "--run_config", f"{RESULTS_DIR}/run.yml", "--offline")
        env = {"JUDGE_KEY": "nvapi-judge-321"}
        finished = run_image(vlmevalkit_image, args, output_dir=tmp_path, data_dir=DATA, env=env)
        assert_ok(finished)
        first = results_of(tmp_path)
        asked, counts = list(judge.requests), dict(judge.counts)
        # VLMEvalKit reuses its own prediction and score files: keep only the run config and the proxies' caches
        for path in tmp_path.iterdir():
            if path.name not in ("run.yml", "cache"):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        again = run_image(vlmevalkit_image, args, output_dir=tmp_path, data_dir=DATA, env=env)
        assert_ok(again)
        second = results_of(tmp_path)
        assert judge.requests == asked
    distinct = len({r.key for r in asked})
    assert distinct >= 3 and counts == {"503": distinct, "ok": distinct}  # `working()` and the extractions
    assert first.usage is not None and second.usage is not None
    assert (first.usage.requests, first.usage.retries) == (3, 0)
    judged = first.usage_by_role["judge"]
    # VLMEvalKit asks the same extraction again when the answer maps to no option: the cache answers the repeats
    assert judged.requests == distinct + judged.cache_hits
    assert (judged.upstream_attempts, judged.retries, judged.failed_requests) == (2 * distinct, distinct, 0)
    assert judged.errors == {"http_503": distinct}
    assert (second.usage.cache_hits, second.usage_by_role["judge"].cache_hits) == (3, judged.requests)
    assert second.usage_by_role["judge"].upstream_attempts == 0
    assert len([r for r in endpoint.requests if r.kind == "inference"]) == 3  # the first run only
    assert judge.url not in first.provenance.command
    records = [json.loads(line) for line in (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()]
    assert len([r for r in records if r["role"] == "judge"]) == judged.requests
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"nvapi-judge-321" not in path.read_bytes(), path


def test_missing_dataset_offline_stops_at_once_without_download(vlmevalkit_image: str, endpoint: EndpointServer,
                                                                trap: Trap, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "LMUData").mkdir(parents=True)
    shutil.copy(DATA / "LMUData" / "OCRBench.tsv", data / "LMUData")
    out = tmp_path / "out"
    finished = run_image(vlmevalkit_image, [*eval_args("chartqa", endpoint), "--offline"], output_dir=out,
                         data_dir=data, env=trap.env(), timeout=180)
    assert finished.exit_code == 2
    assert "VLMEvalKit dataset ChartQA_TEST (ChartQA_TEST.tsv) is neither in the cache /cache/LMUData nor " \
           f"pre-staged in {DATA_DIR}/LMUData, and this run is offline" in finished.logs
    assert "stage the file as DIR/LMUData/ChartQA_TEST.tsv and pass --data_dir DIR" in finished.logs
    assert "Traceback" not in finished.logs
    assert trap.connections == 0
    assert not (out / "results.yml").exists()
    assert [r for r in endpoint.requests if r.kind == "inference"] == []


def test_missing_dataset_online_is_fetched_from_upstream_and_a_failure_is_one_line(
        vlmevalkit_image: str, endpoint: EndpointServer, trap: Trap, tmp_path: Path) -> None:
    """Online, the file is asked of VLMEvalKit's own URL (through the proxy, which here drops every connection:
    nothing leaves loopback); the failure stops the run before any request to the model."""
    out = tmp_path / "out"
    finished = run_image(vlmevalkit_image, eval_args("chartqa", endpoint), output_dir=out, env=trap.env(),
                         timeout=300)
    assert finished.exit_code == 2, finished.logs[-3000:]
    assert "ChartQA_TEST.tsv cannot be fetched from https://opencompass.openxlab.space/utils/VLMEval/" \
           "ChartQA_TEST.tsv: ConnectionError" in finished.logs
    assert "set EVALS_LMUDATA_MIRROR to a mirror of https://opencompass.openxlab.space/" in finished.logs
    assert "Traceback" not in finished.logs
    assert trap.connections >= 1
    assert not (out / "results.yml").exists()
    assert [r for r in endpoint.requests if r.kind == "inference"] == []


# ---- the host CLI ----------------------------------------------------------------------------------------


def test_evals_run_on_the_host(vlmevalkit_image: str, endpoint: EndpointServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.host.cli", "run", "--harness", "vlmevalkit", "--eval_type", "ocrbench",
         "--model_id", endpoint.model, "--model_url", f"{endpoint.url}/v1/chat/completions", "--model_type", "vlm",
         "--api_key_name", "HOST_KEY", "--output_dir", str(out), "--data_dir", str(DATA)],
        capture_output=True, text=True, check=False, timeout=900, cwd=REPO,
        env={**os.environ, "HOST_KEY": "sk-host-vlm-9"},
    )
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    assert str(out / "results.yml") in result.stdout
    assert re.search(r"group\s*│\s*ocrbench\s*│\s*accuracy\s*│\s*0\.5000", result.stdout), result.stdout
    results = results_of(out)
    assert accuracy(results.results, group="ocrbench") == pytest.approx(0.5)
    assert (out / "results.yml").stat().st_uid == os.getuid()
    assert {r.header("Authorization") for r in endpoint.requests if r.kind == "inference"} == {"Bearer sk-host-vlm-9"}
    sent = {data for _, _, data, _ in chat_images(endpoint)}
    assert sent == {base64.b64decode(row["image"]) for row in rows("OCRBench")}
    for path in out.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"sk-host-vlm-9" not in path.read_bytes(), path


def test_a_judge_task_runs_through_evals_run_with_its_key_by_name(vlmevalkit_image: str, endpoint: EndpointServer,
                                                                   tmp_path: Path) -> None:
    """`evals run` forwards every key a config names (here the judge's), checks it on the host first, and masks it."""
    run_yml = tmp_path / "run.yml"
    with serve(model="judge-model") as judge:
        run_yml.write_text(yaml.safe_dump({"config": {"params": {"extra": {"judge": {
            "model": "judge-model", "url": f"{judge.url}/v1/chat/completions", "api_key": "JUDGE_KEY"}}}}}))
        args = [sys.executable, "-m", "orchestrator.host.cli", "run", "--harness", "vlmevalkit", "--eval_type",
                "ai2d_judge", "--model_id", endpoint.model, "--model_url", f"{endpoint.url}/v1/chat/completions",
                "--model_type", "vlm", "--run_config", str(run_yml), "--data_dir", str(DATA), "--offline"]
        env = {k: v for k, v in os.environ.items() if k != "JUDGE_KEY"}
        unset = subprocess.run([*args, "--output_dir", str(tmp_path / "unset")], capture_output=True, text=True,
                               check=False, timeout=300, cwd=REPO, env=env)
        assert unset.returncode == 2
        assert "JUDGE_KEY (named by config.params.extra.judge.api_key) is not set" in unset.stderr
        assert not (tmp_path / "unset").exists()
        result = subprocess.run([*args, "--output_dir", str(tmp_path / "out")], capture_output=True, text=True,
                                check=False, timeout=900, cwd=REPO, env={**env, "JUDGE_KEY": "nvapi-judge-777"})
        judged = [r for r in judge.requests if r.kind == "inference"]
    assert result.returncode == 0, result.stderr[-4000:] + result.stdout[-4000:]
    assert {r.header("Authorization") for r in judged} == {"Bearer nvapi-judge-777"}
    assert any(accuracy(results_of(tmp_path / "out").results, group="ai2d") == pytest.approx(k / 3) for k in (1, 2, 3))
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert b"nvapi-judge-777" not in path.read_bytes(), path
