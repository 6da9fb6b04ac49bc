"""RULER (nvidia-long-context-eval 26.3) against a chat or completions endpoint, in three steps, with the package's
own code where it has it. Runs in the harness venv (/opt/harness/venv).

- ``check`` (the data step, before any request to the model): the tasks are RULER's, the context length is set,
  and a tokenizer is there: a local folder (or file) with a Hugging Face ``tokenizer.json`` given as
  ``config.params.extra.tokenizer``, else the endpoint's vLLM-style ``POST /tokenize`` at the server root. Neither:
  one line naming the keys, exit 2. The image never loads a tokenizer from the Hugging Face Hub (NVIDIA's
  ``hf`` backend does, through transformers' ``AutoTokenizer``; transformers and huggingface_hub are not installed).
- ``run``: for each task, the package's generator script (``long_context_eval/data/synthetic/<kind>.py``, seeded as
  NVIDIA's ``prepare.py`` seeds it, with the same template and arguments) writes ``<dir>/data/<task>/
  validation.jsonl``, counting tokens with that tokenizer (``generate``, in a child process); then each sample's
  prompt is sent once as NVIDIA's ``GenericOAIURLClient`` sends it (one user message, or the prompt; ``max_tokens``
  = the task's tokens_to_generate; ``seed`` 0; ``stop`` []) and scored with the package's per-sample metric
  (``string_match_all``; ``string_match_part`` for qa) after its ``postprocess_pred``. The answers go to
  ``<dir>/pred/<task>.jsonl`` (the package's prediction lines plus ``mode``: ``chat`` = ``input`` was sent as the
  one user message, ``completion`` = as the prompt; ``score`` in [0, 1]; ``error``),
  ``<dir>`` = ``<output_dir>/ruler/<max_seq_length>``.

NVIDIA's ``call_api.py`` retries a failed request forever; here a request has ``--attempts`` attempts (1 when the
adapter proxy, which owns retries, is on) and a sample whose request still fails is kept with its ``error``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

TASKS = ("niah_single_1", "niah_single_2", "niah_single_3", "niah_multikey_1", "niah_multikey_2", "niah_multikey_3",
         "niah_multivalue", "niah_multiquery", "vt", "cwe", "fwe", "qa_1", "qa_2")
"""NVIDIA's AVAILABLE_TASKS (entrypoint.py), in its order."""
TOKENIZER_KEY = "config.params.extra.tokenizer"
SUFFIXES = ("/v1/chat/completions", "/v1/completions", "/chat/completions", "/completions")
SEED = 42
"""prepare.py's random_seed (42 + chunk index; one chunk)."""


class Tokenizer(Protocol):
    def text_to_tokens(self, text: str) -> list[int]: ...


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def server_root(url: str) -> str:
    """The endpoint's server root, where vLLM serves /tokenize: the URL without its query and API path."""
    path = url.split("?", 1)[0].rstrip("/")
    for suffix in SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def _headers(key_var: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(key_var) if key_var else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def post_json(url: str, body: dict[str, Any], *, key_var: str | None, timeout: float) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers=_headers(key_var))
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.loads(answer.read())


class EndpointTokenizer:
    """Token counts from the endpoint's ``POST /tokenize`` (no special tokens, as the package's HF tokenizer's
    ``tokenize`` counts). A failure ends the process: the package's generators retry a failed count forever."""

    def __init__(self, root: str, *, model: str, key_var: str | None) -> None:
        self.url, self.model, self.key_var = f"{root}/tokenize", model, key_var

    def text_to_tokens(self, text: str) -> list[int]:
        try:
            answer = post_json(self.url, {"model": self.model, "prompt": text, "add_special_tokens": False},
                               key_var=self.key_var, timeout=120)
            return list(answer["tokens"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"error: the endpoint's tokenizer failed at {self.url}: {error}", file=sys.stderr, flush=True)
            os._exit(1)


class LocalTokenizer:
    """A Hugging Face ``tokenizer.json`` (the ``tokenizers`` library; no special tokens added)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as HFTokenizer  # noqa: PLC0415 (harness venv only)

        self.tokenizer = HFTokenizer.from_file(str(path))

    def text_to_tokens(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)


def local_tokenizer_file(spec: str) -> Path:
    path = Path(spec)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        fail(f"{TOKENIZER_KEY}={spec!r} is not a local tokenizer.json or a folder holding one; this image never "
             "downloads a tokenizer from the Hugging Face Hub: mount the folder with --data_dir and give its path "
             "under /data, or leave the key unset to use the endpoint's /tokenize")
    return file


def endpoint_tokenizer(url: str, *, model: str, key_var: str | None, max_seq_length: int | None) -> EndpointTokenizer:
    """The endpoint's tokenizer, checked with one ``/tokenize`` call; exit 2 naming the keys if it serves none."""
    root = server_root(url)
    try:
        answer = post_json(f"{root}/tokenize", {"model": model, "prompt": "RULER", "add_special_tokens": False},
                           key_var=key_var, timeout=60)
        if not isinstance(answer.get("tokens"), list):
            raise ValueError("no `tokens` list in its answer")
    except (OSError, ValueError, AttributeError) as error:
        reason = f"HTTP {error.code}" if isinstance(error, urllib.error.HTTPError) else str(error)
        fail(f"RULER needs a tokenizer and the endpoint serves none at {root}/tokenize ({reason}): set "
             f"{TOKENIZER_KEY} to a folder with a tokenizer.json (mounted with --data_dir, e.g. /data/tokenizer), "
             "or serve the vLLM tokenizer routes (/tokenize) at the endpoint's root")
    limit = answer.get("max_model_len")
    if max_seq_length and isinstance(limit, int) and max_seq_length > limit:
        fail(f"config.params.extra.max_seq_length={max_seq_length} is more than the endpoint's max_model_len "
             f"{limit}: choose a shorter RULER task (e.g. ruler-4k-chat)")
    return EndpointTokenizer(root, model=model, key_var=key_var)


def make_tokenizer(args: argparse.Namespace) -> Tokenizer:
    if args.tokenizer:
        return LocalTokenizer(local_tokenizer_file(args.tokenizer))
    return endpoint_tokenizer(args.url, model=args.model, key_var=args.api_key_var,
                              max_seq_length=getattr(args, "max_seq_length", None))


def task_list(text: str) -> list[str]:
    names = list(TASKS) if text.strip() == "all" else [t.strip() for t in text.split(",") if t.strip()]
    unknown = [name for name in names if name not in TASKS]
    if unknown or not names:
        fail(f"config.params.extra.subtasks: unknown RULER task(s) {', '.join(unknown) or '(none)'}; "
             f"use all or a comma-separated list of {', '.join(TASKS)}")
    return names


def task_config(task: str) -> dict[str, Any]:
    """synthetic.yaml's entry for ``task`` merged with its kind's defaults, template built as prepare.py builds it."""
    import long_context_eval  # noqa: PLC0415
    import yaml  # noqa: PLC0415 (harness venv only)
    from long_context_eval.data.synthetic.constants import TASKS as KINDS  # noqa: PLC0415
    from long_context_eval.data.template import Templates  # noqa: PLC0415

    package = Path(long_context_eval.__file__).parent
    config: dict[str, Any] = yaml.safe_load((package / "synthetic.yaml").read_text(encoding="utf-8"))[task]
    config.update(KINDS[config["task"]])
    config["template"] = Templates["base"].format(task_template=config["template"]) + config.get("answer_prefix", "")
    config["script"] = str(package / "data" / "synthetic" / f"{config['task']}.py")
    return config


def generator_argv(task: str, config: dict[str, Any], *, save_dir: Path, max_seq_length: int,
                   num_samples: int) -> list[str]:
    """The generator's arguments as prepare.py passes them (tokenizer arguments are ours: see ``generate``)."""
    argv = ["--save_dir", str(save_dir), "--save_name", task, "--subset", "validation",
            "--tokenizer_path", "ruler-run", "--tokenizer_type", "ruler-run",
            "--max_seq_length", str(max_seq_length), "--tokens_to_generate", str(config["tokens_to_generate"]),
            "--num_samples", str(num_samples), "--random_seed", str(SEED)]
    for key, value in config["args"].items():
        argv += [f"--{key}", str(value)]
    if config["task"] == "qa":
        argv += ["--pre_samples", "0"]
    return [*argv, "--template", config["template"]]


def generate(args: argparse.Namespace, script_argv: list[str]) -> int:
    """Run one of the package's generator scripts with ``select_tokenizer`` answering our tokenizer."""
    import runpy  # noqa: PLC0415

    import long_context_eval.data.tokenizer as package_tokenizer  # noqa: PLC0415 (harness venv only)

    tokenizer = make_tokenizer(args)
    package_tokenizer.select_tokenizer = lambda *_args, **_kwargs: tokenizer
    sys.modules["tokenizer"] = package_tokenizer  # the scripts that `from tokenizer import select_tokenizer`
    sys.argv = [args.script, *script_argv]
    sys.path.insert(0, str(Path(args.script).parent))  # as `python <script>` has it (vt imports `constants`)
    runpy.run_path(args.script, run_name="__main__")
    return 0


def postprocess_pred(text: str | None) -> str:
    """eval/evaluate.py's ``postprocess_pred`` (that module parses its command line on import)."""
    if text is None:
        return ""
    return re.sub(r"[\x00-\x1f]", "\n", text.strip()).strip()


def score(kind: str, prediction: str, outputs: list[str]) -> float:
    """The package's per-sample metric of ``kind``, in [0, 1] (it writes percent)."""
    from long_context_eval.eval.synthetic.constants import TASKS as METRICS  # noqa: PLC0415 (harness venv only)

    return float(METRICS[kind]["metric_fn_per_sample"]([prediction], [outputs])[0]) / 100


def request_body(args: argparse.Namespace, text: str, max_tokens: int) -> dict[str, Any]:
    body: dict[str, Any] = ({"messages": [{"role": "user", "content": text}]} if args.mode == "chat"
                            else {"prompt": text})
    body |= {"temperature": args.temperature, "top_p": args.top_p, "seed": 0, "stop": [], "max_tokens": max_tokens,
             "model": args.model}
    return body


def ask(args: argparse.Namespace, body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the reply's text, None) or (None, what failed after ``args.attempts`` attempts)."""
    error = ""
    for attempt in range(args.attempts):
        try:
            answer = post_json(args.url, body, key_var=args.api_key_var, timeout=args.timeout)
            choice = answer["choices"][0]
            text = choice["message"]["content"] if args.mode == "chat" else choice["text"]
            return text or "", None
        except urllib.error.HTTPError as failure:
            error = f"HTTP {failure.code}: {failure.read()[:300].decode('utf-8', 'replace')}"
        except (OSError, ValueError, KeyError, IndexError, TypeError) as failure:
            error = f"{type(failure).__name__}: {failure}"
        if attempt + 1 < args.attempts:
            time.sleep(min(2.0 ** attempt, 30.0))
    return None, error


def predict(args: argparse.Namespace, task: str, config: dict[str, Any], data_file: Path, pred_file: Path) -> None:
    rows = [json.loads(line) for line in data_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    max_tokens = args.max_tokens or int(config["tokens_to_generate"])

    def one(row: dict[str, Any]) -> dict[str, Any]:
        body = request_body(args, row["input"], max_tokens)
        text, error = ask(args, body)
        value = None if text is None else score(config["task"], postprocess_pred(text), row["outputs"])
        return {"index": row["index"], "pred": text, "input": row["input"], "outputs": row["outputs"],
                "others": row.get("others", {}), "truncation": row.get("truncation", -1),
                "length": row.get("length", -1), "mode": args.mode, "score": value, "error": error}

    with ThreadPoolExecutor(max_workers=max(1, args.threads)) as pool:
        lines = list(pool.map(one, rows))
    pred_file.parent.mkdir(parents=True, exist_ok=True)
    pred_file.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    done = [line["score"] for line in lines if line["score"] is not None]
    print(f"{task}: {len(lines)} samples, {len(lines) - len(done)} failed, "
          f"score {100 * sum(done) / max(1, len(done)):.2f}", flush=True)


def run(args: argparse.Namespace) -> int:
    tasks = task_list(args.tasks)
    make_tokenizer(args)  # the same check as the data step, in case the run was started without it
    folder = Path(args.output_dir) / "ruler" / str(args.max_seq_length)
    tokenizer_args = ["--tokenizer", args.tokenizer] if args.tokenizer else []
    key_args = ["--api_key_var", args.api_key_var] if args.api_key_var else []
    for task in tasks:
        config = task_config(task)
        data_file = folder / "data" / task / "validation.jsonl"
        if not data_file.is_file():
            print(f"Generating {task} ({args.num_samples} samples, {args.max_seq_length} tokens) ...", flush=True)
            argv = generator_argv(task, config, save_dir=folder / "data", max_seq_length=args.max_seq_length,
                                  num_samples=args.num_samples)
            command = [sys.executable, __file__, "generate", "--script", config["script"], "--url", args.url,
                       "--model", args.model, *tokenizer_args, *key_args, "--", *argv]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            try:
                code = subprocess.run(command, env=env, check=False, timeout=args.generate_timeout).returncode
            except subprocess.TimeoutExpired:
                fail(f"RULER's generator of {task} did not finish in {args.generate_timeout:g} s: with this "
                     f"tokenizer its smallest context may not fit in {args.max_seq_length} tokens (the package's "
                     "generators then retry forever): use a longer context or the model's own tokenizer, or raise "
                     "config.params.extra.generate_timeout", 1)
            if code != 0 or not data_file.is_file():
                fail(f"generating the data of {task} failed (see the lines above)", 1)
        predict(args, task, config, data_file, folder / "pred" / f"{task}.jsonl")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="run_ruler.py", description=__doc__.split("\n\n")[0])
    steps = main.add_subparsers(dest="step", required=True)
    for name in ("check", "run", "generate"):
        step = steps.add_parser(name)
        step.add_argument("--url", required=True, help="the full chat or completions URL")
        step.add_argument("--model", required=True)
        step.add_argument("--api_key_var", default=None, help="the NAME of the variable holding the API key")
        step.add_argument("--tokenizer", default=None, help="a tokenizer.json or a folder with one")
        if name != "generate":
            step.add_argument("--tasks", default="all")
            step.add_argument("--max_seq_length", type=int, default=None, help="required: the context length")
        else:
            step.add_argument("--script", required=True)
    run_step = steps.choices["run"]
    run_step.add_argument("--output_dir", required=True)
    run_step.add_argument("--mode", choices=("chat", "completion"), required=True)
    run_step.add_argument("--num_samples", type=int, default=500)
    run_step.add_argument("--temperature", type=float, default=0.0)
    run_step.add_argument("--top_p", type=float, default=1.0)
    run_step.add_argument("--max_tokens", type=int, default=None)
    run_step.add_argument("--threads", type=int, default=1)
    run_step.add_argument("--attempts", type=int, default=1)
    run_step.add_argument("--timeout", type=float, default=300.0)
    run_step.add_argument("--generate_timeout", type=float, default=3600.0, help="seconds per task's data")
    return main


def main(argv: list[str]) -> int:
    ours, script_argv = (argv[: argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    args = parser().parse_args(ours)
    if args.step != "generate" and not args.max_seq_length:
        fail("config.params.extra.max_seq_length is required (the context length in tokens, e.g. 4000): or run a "
             "task with a length, e.g. ruler-4k-chat")
    if args.step == "generate":
        return generate(args, script_argv)
    if args.step == "check":
        task_list(args.tasks)
        make_tokenizer(args)
        print(f"RULER {args.tasks} at {args.max_seq_length} tokens: tokenizer "
              f"{args.tokenizer or server_root(args.url) + '/tokenize'}", flush=True)
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
