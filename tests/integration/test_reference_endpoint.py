"""The reference endpoint image (SmolLM2-135M-Instruct on llama.cpp), run as users run it and spoken to with
the official `openai` client: chat, completions, lm-eval-style prompt logprobs (checked against an
independent computation in the same image), the tokenizer routes, OCR of chat images, bad requests and
concurrent requests.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam
from testcontainers.core.container import DockerContainer

from orchestrator.schema.container import RESULTS_DIR
from orchestrator.schema.results import ResultsFile
from tests.integration.harness import run_image

IMAGE = os.environ.get("EVALS_REFERENCE_ENDPOINT_IMAGE", "evals/reference-endpoint:latest")
MODEL = "SmolLM2-135M-Instruct"
OCR_PNG = Path(__file__).resolve().parents[1] / "fixtures" / "reference-endpoint" / "ocr_text.png"
"""A rendered PNG reading "The password is GIRAFFE / Meeting in room 4721"."""
STARTUP_SECONDS = 60
REFERENCE_TOLERANCE_NATS = 0.1


@dataclass(frozen=True)
class Reference:
    """A running reference-endpoint container."""

    url: str
    container: DockerContainer

    def client(self, *, timeout: float = 120) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0, timeout=timeout)

    def post(self, path: str, body: object) -> tuple[int, dict[str, object]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, headers={"Content-Type": "application/json"})
        return self._send(request)

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        return self._send(urllib.request.Request(f"{self.url}{path}"))

    @staticmethod
    def _send(request: urllib.request.Request) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def tokenize(self, text: str) -> list[int]:
        status, body = self.post("/tokenize", {"prompt": text, "add_special_tokens": False})
        assert status == 200, body
        tokens = body["tokens"]
        assert isinstance(tokens, list)
        return [int(t) for t in tokens]

    def exec(self, args: list[str]) -> str:
        exit_code, output = self.container.get_wrapped_container().exec_run(args)
        assert isinstance(output, bytes)
        text = output.decode(errors="replace")
        assert exit_code == 0, text
        return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def reference(engine: docker.DockerClient) -> Iterator[Reference]:
    """The image started on a free loopback port (host network), once /health answers."""
    try:
        engine.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{IMAGE} is not built; run `bash scripts/build-image.sh reference-endpoint` (or `make images`)")
    port = free_port()
    container = DockerContainer(IMAGE).with_command(["--port", str(port)]).with_kwargs(network_mode="host", init=True)
    container.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                stdout, stderr = container.get_logs()
                pytest.fail(f"{IMAGE} did not answer /health within {STARTUP_SECONDS}s:\n"
                            f"{(stdout + stderr).decode(errors='replace')}")
            time.sleep(0.25)
        yield Reference(url, container)
    finally:
        container.stop()


def test_image_labels_user_and_size(engine: docker.DockerClient) -> None:
    image = engine.images.get(IMAGE)
    assert image.labels["evals.role"] == "reference-endpoint"
    assert image.labels["evals.model"] == MODEL
    assert image.labels["org.opencontainers.image.title"] == "evals/reference-endpoint"
    assert image.attrs["Config"]["User"] not in ("", "0", "root", "0:0")
    assert image.attrs["Size"] < 600_000_000


def test_health_and_models(reference: Reference) -> None:
    status, body = reference.get("/health")
    assert (status, body["status"]) == (200, "ok")
    models = reference.client().models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_chat_answers_deterministically_with_usage(reference: Reference) -> None:
    client = reference.client()
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Which city is the capital of France?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=32, seed=7)
    again = client.chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=32, seed=7)
    answer = first.choices[0].message.content
    assert answer and "Paris" in answer
    assert again.choices[0].message.content == answer
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage is not None
    status, templated = reference.post("/tokenize", {"messages": messages})
    assert status == 200
    assert first.usage.prompt_tokens == templated["count"]
    assert 0 < first.usage.completion_tokens <= 32
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_chat_sampling_stop_and_max_tokens(reference: Reference) -> None:
    client = reference.client()
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Write a long story about a cat."}]
    short = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=5, temperature=0)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 5
    seeded = [client.chat.completions.create(model=MODEL, messages=messages, max_tokens=24, temperature=1.0,
                                             top_p=0.9, seed=11).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    stopped = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=64, temperature=0, stop=["cat"])
    content = stopped.choices[0].message.content
    assert content is not None and "cat" not in content
    assert stopped.choices[0].finish_reason == "stop"


def test_completions_text_and_echo(reference: Reference) -> None:
    client = reference.client()
    prompt = "The capital of France is"
    completion = client.completions.create(model=MODEL, prompt=prompt, max_tokens=4, temperature=0)
    assert "Paris" in completion.choices[0].text
    assert completion.usage is not None and completion.usage.completion_tokens <= 4
    echoed = client.completions.create(model=MODEL, prompt=prompt, max_tokens=0, echo=True)
    assert echoed.choices[0].text == prompt
    assert echoed.usage is not None and echoed.usage.completion_tokens == 0


def test_lm_eval_style_loglikelihood_on_token_ids(reference: Reference) -> None:
    """What lm-eval's local-completions sends: token-id prompts (a batch), echo, logprobs=1, max_tokens=1."""
    client = reference.client()
    context = reference.tokenize("The capital of France is")
    paris = context + reference.tokenize(" Paris")
    banana = context + reference.tokenize(" banana")
    answer = client.completions.create(model=MODEL, prompt=[paris, banana], echo=True, logprobs=1, max_tokens=1,
                                       temperature=0, seed=1234)
    assert [c.index for c in answer.choices] == [0, 1]
    totals: list[float] = []
    for choice, tokens in zip(answer.choices, [paris, banana], strict=True):
        logprobs = choice.logprobs
        assert logprobs is not None and logprobs.token_logprobs is not None and logprobs.top_logprobs is not None
        assert len(logprobs.token_logprobs) == len(tokens) + 1  # the prompt, then the one generated token
        assert logprobs.token_logprobs[0] is None
        values = [lp for lp in logprobs.token_logprobs[1:] if lp is not None]
        assert len(values) == len(tokens) and all(lp <= 0 for lp in values)
        top = logprobs.top_logprobs[-1]
        assert top is not None and values[-1] == max(top.values())  # generated greedily
        totals.append(sum(values[len(context) - 1 : len(tokens) - 1]))
    assert totals[0] > totals[1] + 5  # " Paris" is far likelier than " banana"


def test_loglikelihood_keeps_its_shape_when_the_model_ends_its_turn(reference: Reference) -> None:
    """lm-eval drops the last entry (the generated token): an end-of-turn token must still be one."""
    prompt = ("<|im_start|>user\nWhich city is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
              "The capital of France is Paris.")
    tokens = reference.tokenize(prompt)
    answer = reference.client().completions.create(model=MODEL, prompt=[tokens], echo=True, logprobs=1,
                                                   max_tokens=1, temperature=0)
    choice = answer.choices[0]
    assert choice.logprobs is not None and choice.logprobs.tokens is not None
    assert choice.logprobs.token_logprobs is not None
    assert choice.logprobs.tokens[-1] == "<|im_end|>" and choice.finish_reason == "stop"
    assert len(choice.logprobs.token_logprobs) == len(tokens) + 1
    assert choice.text == prompt  # the end-of-turn token is counted and scored, never written
    assert answer.usage is not None and answer.usage.completion_tokens == 1


def test_prompt_logprobs_match_an_independent_computation(reference: Reference) -> None:
    """Server: one pass with logits for every position. Reference (in the image): each prefix evaluated from
    scratch on another context, last position only, normalised in plain Python."""
    tokens = reference.tokenize("Paris is the capital and most populous city of France. It is known for")
    answer = reference.client().completions.create(model=MODEL, prompt=tokens, echo=True, logprobs=5, max_tokens=1,
                                                   temperature=0)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.token_logprobs is not None
    served = logprobs.token_logprobs
    expected = json.loads(reference.exec(["python", "-m", "reference_endpoint.reference", "--tokens",
                                          ",".join(map(str, tokens))]).strip().splitlines()[-1])
    assert served[0] is None and expected["token_logprobs"][0] is None
    pairs = list(zip(served[1 : len(tokens)], expected["token_logprobs"][1:], strict=True))
    worst = max(abs(float(s or 0.0) - e) for s, e in pairs)
    assert worst < REFERENCE_TOLERANCE_NATS, pairs
    assert min(e for _, e in pairs) < -1  # not a degenerate sequence of near-certain tokens
    greedy_logprob = served[-1]
    assert greedy_logprob is not None
    assert abs(greedy_logprob - expected["next_top"][0][1]) < REFERENCE_TOLERANCE_NATS


def test_tokenizer_routes_round_trip(reference: Reference) -> None:
    status, info = reference.get("/tokenizer_info")
    assert status == 200
    assert (info["bos_token"], info["eos_token"], info["pad_token"]) == ("<|im_start|>", "<|im_end|>", "<|im_end|>")
    assert "<|im_start|>" in str(info["chat_template"])
    text = "Hello world, this is a round trip: 3.14 ünïcödé"
    status, tokenized = reference.post("/tokenize", {"prompt": text, "add_special_tokens": False})
    assert status == 200
    tokens = tokenized["tokens"]
    assert isinstance(tokens, list) and tokenized["count"] == len(tokens) and tokenized["max_model_len"] == 8192
    status, detokenized = reference.post("/detokenize", {"tokens": tokens})
    assert (status, detokenized["prompt"]) == (200, text)
    assert reference.tokenize("<|im_end|>") == [info["eos_token_id"]]  # how lm-eval finds the EOS id


def image_message(text: str, url: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


def test_image_text_is_read_and_given_to_the_model(reference: Reference) -> None:
    url = "data:image/png;base64," + base64.b64encode(OCR_PNG.read_bytes()).decode()
    question = "What is the password?"
    messages = image_message(question, url)
    status, tokenized = reference.post("/tokenize", {"messages": messages})
    assert status == 200
    status, prompt = reference.post("/detokenize", {"tokens": tokenized["tokens"]})
    assert status == 200
    prompt_text = str(prompt["prompt"])
    assert "Text in the image:" in prompt_text
    for word in ("password", "GIRAFFE", "room", "4721"):
        assert word in prompt_text, prompt_text
    assert prompt_text.index("GIRAFFE") < prompt_text.index(question)
    answer = reference.client().chat.completions.create(model=MODEL, messages=messages, temperature=0, max_tokens=24)
    assert "GIRAFFE" in (answer.choices[0].message.content or "")  # greedy SmolLM2 reads it back
    assert answer.usage is not None and answer.usage.prompt_tokens == tokenized["count"]
    without_image: list[ChatCompletionMessageParam] = [{"role": "user", "content": question}]
    plain = reference.client().chat.completions.create(model=MODEL, messages=without_image, temperature=0,
                                                       max_tokens=1)
    assert plain.usage is not None and answer.usage.prompt_tokens > plain.usage.prompt_tokens + 10


BAD_REQUESTS: list[tuple[str, str, object]] = [
    ("invalid JSON", "/v1/chat/completions", b"{not json"),
    ("no messages", "/v1/chat/completions", {"model": MODEL, "messages": []}),
    ("unknown role", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}),
    ("temperature type", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                                                  "temperature": "hot"}),
    ("streaming", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stream": True}),
    ("remote image", "/v1/chat/completions", {"messages": image_message("hi", "https://example.com/cat.png")}),
    ("bad base64", "/v1/chat/completions", {"messages": image_message("hi", "data:image/png;base64,%%%")}),
    ("not an image", "/v1/chat/completions", {"messages": image_message("hi", "data:image/png;base64,aGVsbG8=")}),
    ("token out of range", "/v1/completions", {"prompt": [1, 2, 10_000_000], "max_tokens": 1}),
    ("negative token", "/v1/completions", {"prompt": [[5, -1]], "max_tokens": 1}),
    ("empty prompt", "/v1/completions", {"prompt": "", "max_tokens": 1}),
    ("prompt too long", "/v1/completions", {"prompt": [28] * 9000, "max_tokens": 1}),
    ("negative max_tokens", "/v1/completions", {"prompt": "hi", "max_tokens": -1}),
    ("too many logprobs", "/v1/completions", {"prompt": "hi", "logprobs": 1000}),
    ("detokenize junk", "/detokenize", {"tokens": ["a"]}),
    ("tokenize nothing", "/tokenize", {}),
]


@pytest.mark.parametrize(("what", "path", "body"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_400_and_the_server_lives_on(reference: Reference, what: str, path: str,
                                                      body: object) -> None:
    status, answer = reference.post(path, body)
    assert status == 400, (what, answer)
    error = answer["error"]
    assert isinstance(error, dict) and error["message"] and error["type"] == "invalid_request_error"
    assert reference.get("/health")[0] == 200


def test_openai_client_sees_bad_requests_and_unknown_routes(reference: Reference) -> None:
    client = reference.client()
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=MODEL, prompt="hi", max_tokens=-5)
    assert "max_tokens" in bad.value.message
    status, body = reference.get("/v1/nothing-here")
    assert status == 404 and isinstance(body["error"], dict)
    assert client.completions.create(model=MODEL, prompt="Hello", max_tokens=1).choices[0].text is not None


def test_eight_concurrent_requests_are_all_answered(reference: Reference) -> None:
    client = reference.client(timeout=300)

    def ask(i: int) -> str:
        if i % 2:
            completion = client.completions.create(model=MODEL, prompt=f"Count from {i}:", max_tokens=12,
                                                   temperature=0)
            return completion.choices[0].text
        chat = client.chat.completions.create(model=MODEL, max_tokens=12, temperature=0,
                                              messages=[{"role": "user", "content": f"Say the number {i}."}])
        return chat.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert len(answers) == 8 and all(answers)
    assert reference.get("/health")[0] == 200


def test_end_to_end_lm_eval_image_on_the_embedded_model(reference: Reference, lm_eval_image: str,
                                                         tmp_path: Path) -> None:
    """The embedded default as `make demo` uses it: the lm-eval image scores SmolLM2 on real HumanEval data."""
    finished = run_image(lm_eval_image, [
        "run_eval", "--eval_type", "humaneval_offline", "--model_id", MODEL,
        "--model_url", f"{reference.url}/v1/completions", "--model_type", "completions",
        "--output_dir", RESULTS_DIR, "--overrides", "config.params.limit_samples=2,config.params.max_new_tokens=96",
        "--offline",
    ], output_dir=tmp_path)
    assert finished.exit_code == 0, finished.logs
    results = ResultsFile.model_validate(yaml.safe_load((tmp_path / "results.yml").read_text()))
    score = results.results.tasks["humaneval_offline"].metrics["pass@1__create_test"].scores["pass@1__create_test"]
    assert score.stats.count == 2 and 0.0 <= score.value <= 1.0
    assert results.usage is not None and results.usage.requests == 2 and results.usage.completion_tokens > 0
