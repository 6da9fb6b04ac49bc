"""Run BFCL (nvidia-bfcl 26.3) against one OpenAI-compatible chat endpoint; runs in the harness venv.

    run_bfcl.py check --categories CATS        the data step: resolve CATS; exit 2 + one line if any is unavailable
    run_bfcl.py run --categories CATS --model M --url URL --output_dir D [...]

CATS is what NVIDIA's framework passes to ``bfcl generate --test-category``: categories (``simple``,
``live_multiple``, ``multi_turn_base``...) and BFCL's collections (``all``, ``ast``, ``multi_turn``,
``single_turn``...), comma-separated. Collections keep only the categories this image can run and say which
they leave out; a category that cannot run here, named on its own, stops the run (exit 2) before any request.

``run`` is BFCL's own generate and evaluate steps (bfcl._llm_response_generation, bfcl.eval_checker.eval_runner)
with three differences from ``bfcl generate --limit``: the limit applies to each category (BFCL's applies to all of
them together, sorted, so ``--limit 5`` on ``ast`` ran 5 ``irrelevance`` entries and nothing else); the URL and the
model id reach the handler as they are (BFCL's ``--model-args`` splits on ``,`` and ``=``); and the HTTP client
(BFCL's ``requests.post`` without a timeout) takes the rendered timeout, attempts and sampling parameters. It also
writes ``bfcl_entries.jsonl``: each entry's dataset document, reference answer and first request, for samples.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests
from bfcl import _llm_response_generation as generation
from bfcl.constant import POSSIBLE_ANSWER_PATH, PROMPT_PATH, TEST_COLLECTION_MAPPING, TEST_FILE_MAPPING
from bfcl.eval_checker import eval_runner
from bfcl.model_handler.api_inference.openai import OpenAIHandler
from bfcl.utils import load_file

EXEC_REASON = ("an executable category: BFCL runs the model's calls against live public web APIs (with "
               "RAPID_API_KEY, OMDB_API_KEY, GEOCODE_API_KEY, EXCHANGERATE_API_KEY) and scores their answers; this "
               "image reaches nothing but the endpoint")
UNAVAILABLE = {
    "exec_simple": EXEC_REASON,
    "exec_parallel": EXEC_REASON,
    "exec_multiple": EXEC_REASON,
    "exec_parallel_multiple": EXEC_REASON,
    "rest": EXEC_REASON.replace("an executable category", "the REST category"),
    "chatable": "BFCL's evaluator does not score it (nvidia-bfcl 26.3 skips it)",
    "sql": "BFCL's evaluator does not score it (nvidia-bfcl 26.3 skips it)",
}
"""Categories this image does not run, and why."""

ENTRIES_FILE = "bfcl_entries.jsonl"
DATA_ERROR = "evals-data-error: "


class CategoryError(Exception):
    """A category that does not exist or cannot run here."""


def resolve(spec: str) -> tuple[list[str], list[str]]:
    """(the categories to run, in BFCL's order; the unavailable ones that collections in ``spec`` leave out)."""
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise CategoryError("no BFCL test category given (config.params.task)")
    chosen: list[str] = []
    dropped: list[str] = []
    for name in names:
        if name in TEST_COLLECTION_MAPPING:
            members = TEST_COLLECTION_MAPPING[name]
            runnable = [m for m in members if m not in UNAVAILABLE]
            if not runnable:
                raise CategoryError(f"BFCL collection {name!r} has no category this image can run: "
                                    f"{', '.join(members)} are each {EXEC_REASON}")
            chosen += runnable
            dropped += [m for m in members if m in UNAVAILABLE]
        elif name in UNAVAILABLE:
            raise CategoryError(f"BFCL category {name!r} is unavailable in this image: {UNAVAILABLE[name]}")
        elif name in TEST_FILE_MAPPING:
            chosen.append(name)
        else:
            raise CategoryError(f"unknown BFCL test category {name!r} (config.params.task)")
    order = list(TEST_FILE_MAPPING)
    return (sorted(set(chosen), key=order.index),
            sorted(set(dropped) - set(chosen), key=order.index))


def runnable() -> list[str]:
    """Every category this image runs, in BFCL's order."""
    return [category for category in TEST_FILE_MAPPING if category not in UNAVAILABLE]


def check(spec: str) -> int:
    """The data step: the categories resolve and their files (shipped in the package) are there."""
    try:
        categories, dropped = resolve(spec)
    except CategoryError as error:
        print(f"{DATA_ERROR}{error} | hint: set config.params.task to categories or collections that run here: "
              f"{', '.join(runnable())}, or collections of them (all, ast, multi_turn, live, ...)")
        return 2
    for category in categories:
        for folder in (PROMPT_PATH, POSSIBLE_ANSWER_PATH):
            path = Path(folder) / TEST_FILE_MAPPING[category]
            needs_answers = folder == PROMPT_PATH or "relevance" not in category
            if needs_answers and not path.is_file():
                print(f"{DATA_ERROR}BFCL data file {path} for category {category!r} is missing"
                      " | hint: the image ships nvidia-bfcl's data; rebuild it")
                return 2
    print(f"bfcl: categories to run: {', '.join(categories)}")
    if dropped:
        print(f"bfcl: unavailable in this image, not run: {', '.join(dropped)} ({EXEC_REASON})")
    return 0


_current = threading.local()


def make_handler(args: argparse.Namespace, log: dict[str, dict[str, Any]]) -> Any:
    """BFCL's OpenAIHandler with our HTTP client (timeout, attempts, sampling); logs each entry's first request."""
    key = os.environ.get(args.api_key_var, "") if args.api_key_var else ""
    lock = threading.Lock()

    class Handler(OpenAIHandler):  # type: ignore[misc]
        def inference(self, test_entry: dict[str, Any], include_input_log: bool, exclude_state_log: bool) -> Any:
            _current.entry = test_entry["id"]
            _current.logged = False
            return super().inference(test_entry, include_input_log, exclude_state_log)

        def generate_with_backoff(self, **kwargs: Any) -> tuple[Any, float]:
            body: dict[str, Any] = {"model": self.model_name, **kwargs}
            if args.max_tokens is not None:
                body["max_tokens"] = args.max_tokens
            if args.top_p is not None:
                body["top_p"] = args.top_p
            if not getattr(_current, "logged", True):
                _current.logged = True
                with lock:
                    log[_current.entry] = {"messages": body.get("messages"), "tools": body.get("tools")}
            headers = {"Content-Type": "application/json"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            start = time.time()
            for attempt in range(1, args.attempts + 1):
                try:
                    response = requests.post(self.base_url, headers=headers, data=json.dumps(body),
                                             timeout=args.timeout)
                    if response.status_code in (429, 500, 502, 503, 504) and attempt < args.attempts:
                        time.sleep(min(2 ** attempt, 30))
                        continue
                    response.raise_for_status()
                    return response.json(), time.time() - start
                except (requests.ConnectionError, requests.Timeout):
                    if attempt == args.attempts:
                        raise
                    time.sleep(min(2 ** attempt, 30))
            raise AssertionError("unreachable")

    return Handler(model_name=args.model, base_url=args.url, temperature=args.temperature,
                   native_calling=args.native_calling)


def generate(args: argparse.Namespace, categories: list[str]) -> None:
    """BFCL's generation step, with the limit applied per category; entries already answered are kept (resume).
    Appends to ENTRIES_FILE, per entry: its dataset document, reference answer and first request's messages, tools."""
    result_dir = Path(args.output_dir) / "result"
    options = SimpleNamespace(result_dir=result_dir, allow_overwrite=False, run_ids=False, limit=args.limit or 0,
                              model_mapping="oai", model_args={}, temperature=args.temperature,
                              num_threads=args.threads, include_input_log=False, exclude_state_log=True)
    cases: list[dict[str, Any]] = []
    documents: dict[str, dict[str, Any]] = {}
    for category in categories:
        file_name = TEST_FILE_MAPPING[category]
        documents |= {entry["id"]: {"document": entry}
                      for entry in load_file(Path(PROMPT_PATH) / file_name)}
        for answer in load_file(Path(POSSIBLE_ANSWER_PATH) / file_name):
            documents.setdefault(answer["id"], {})["target"] = answer.get("ground_truth")
        entries = load_file(Path(PROMPT_PATH) / file_name)
        cases += generation.collect_test_cases(options, args.model, [category], [file_name], entries)
    if not cases:
        print("bfcl: every selected entry is answered already")
        return
    log: dict[str, dict[str, Any]] = {}
    handler = make_handler(args, log)
    generation.build_handler = lambda *_args, **_kwargs: handler
    try:
        generation.generate_results(options, args.model, cases)
    finally:
        with (Path(args.output_dir) / ENTRIES_FILE).open("a", encoding="utf-8") as out:
            for case in cases:
                record = {"id": case["id"], **documents[case["id"]], **log.get(case["id"], {})}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")


def evaluate(args: argparse.Namespace, categories: list[str]) -> None:
    """BFCL's evaluation step: score files under <output_dir>/score/<model>/, leaderboard CSVs under score/."""
    model_args = f"base_url=unused,native_calling={args.native_calling}"
    eval_runner.main([args.model], "oai", categories, False, args.output_dir, args.output_dir, model_args)


def run(args: argparse.Namespace) -> int:
    try:
        categories, dropped = resolve(args.categories)
    except CategoryError as error:
        print(f"bfcl: {error}", file=sys.stderr)
        return 2
    if dropped:
        print(f"bfcl: unavailable in this image, not run: {', '.join(dropped)} ({EXEC_REASON})")
    print(f"bfcl: running {', '.join(categories)} ({'native function calling' if args.native_calling else 'prompting'}"
          f"{f', at most {args.limit} entries each' if args.limit else ''})", flush=True)
    generate(args, categories)
    evaluate(args, categories)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_bfcl.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="resolve the categories (the data step)")
    check_parser.add_argument("--categories", required=True)
    run_parser = commands.add_parser("run", help="generate and evaluate")
    run_parser.add_argument("--categories", required=True)
    run_parser.add_argument("--model", required=True)
    run_parser.add_argument("--url", required=True, help="the full chat-completions URL")
    run_parser.add_argument("--output_dir", required=True)
    run_parser.add_argument("--api_key_var", default=None, help="the NAME of the variable holding the key")
    run_parser.add_argument("--native_calling", action="store_true")
    run_parser.add_argument("--limit", type=int, default=None, help="entries per category")
    run_parser.add_argument("--threads", type=int, default=1)
    run_parser.add_argument("--temperature", type=float, default=0.001)
    run_parser.add_argument("--top_p", type=float, default=None)
    run_parser.add_argument("--max_tokens", type=int, default=None)
    run_parser.add_argument("--timeout", type=float, default=None)
    run_parser.add_argument("--attempts", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.categories)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
