"""Run ``aiperf profile`` once per concurrency against one OpenAI-compatible endpoint URL.

``python run_aiperf.py --url URL --model M --endpoint-type chat --concurrency 1,4 ... --output-dir D`` writes
AIPerf's own files for concurrency C to ``D/concurrency_C/`` (profile_export_aiperf.json: the aggregate metrics;
profile_export.jsonl: one record per request, errors included; logs/aiperf.log) and stops at the first run that
fails. The URL is the full endpoint URL the runtime gives every harness (the adapter proxy's): its origin goes to
``--url`` and its path and query to ``--custom-endpoint``, so AIPerf asks exactly that URL.

The API key goes by the NAME of its variable (``--api-key-var``): each profile runs in a child process of this
script that reads the value from its environment and hands it to AIPerf's CLI in-process (never on a command line).
The tokenizer must be a local folder: AIPerf 0.13.0 cannot load a local folder with the Hugging Face offline
switches set, so they are unset for it, and HF_ENDPOINT points at a closed loopback port so that nothing can
reach the Hub.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

CHILD = "--profile-child"
KEY_VAR = "AIPERF_EVALS_KEY_VAR"
NO_HUB = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")


def split_url(url: str) -> tuple[str, str]:
    """``http://h:1/a/v1/chat/completions?x=1`` -> (``http://h:1``, ``/a/v1/chat/completions?x=1``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SystemExit(f"run_aiperf: --url must be an http(s) URL, not {url!r}")
    path = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}", path + (f"?{parts.query}" if parts.query else "")


def concurrencies(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise SystemExit(f"run_aiperf: --concurrency must be positive integers separated by commas, not {text!r}")
    return values


def profile_args(args: argparse.Namespace, concurrency: int, artifact_dir: Path) -> list[str]:
    """The ``aiperf profile`` arguments for one concurrency (the key is added by the child)."""
    base, path = split_url(args.url)
    count = args.request_count or max(8, 4 * concurrency)
    argv = ["profile", "--model", args.model, "--url", base, "--custom-endpoint", path,
            "--endpoint-type", args.endpoint_type, "--tokenizer", args.tokenizer,
            "--concurrency", str(concurrency), "--request-count", str(count),
            "--isl", str(args.input_tokens), "--isl-stddev", str(args.input_tokens_stddev),
            "--osl", str(args.output_tokens), "--random-seed", str(args.random_seed),
            "--use-server-token-count", "--use-legacy-max-tokens",
            "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry",
            "--export-level", "records", "--artifact-dir", str(artifact_dir)]
    if args.streaming:
        argv.append("--streaming")
    if args.request_timeout:
        argv += ["--request-timeout-seconds", str(args.request_timeout)]
    if args.warmup_requests:
        argv += ["--warmup-request-count", str(args.warmup_requests)]
    extra = [f"{name}:{value}" for name, value in args.extra_input]
    if extra:
        argv += ["--extra-inputs", *extra]
    return argv


def child_env(api_key_var: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in OFFLINE_SWITCHES} | NO_HUB
    if api_key_var:
        env[KEY_VAR] = api_key_var
    return env


def run_child(argv: list[str]) -> int:
    """In the child: AIPerf's CLI with the key read from the variable named in the environment."""
    from aiperf.cli import app  # noqa: PLC0415 (only the child imports aiperf)

    name = os.environ.pop(KEY_VAR, "")
    if name:
        key = os.environ.get(name)
        if not key:
            print(f"run_aiperf: the API key variable {name} is not set", file=sys.stderr)
            return 2
        argv = [*argv, "--api-key", key]
    sys.argv = ["aiperf", *argv]
    result = app()
    return result if isinstance(result, int) else 0


def all_failed(artifact_dir: Path) -> bool:
    """AIPerf wrote per-request records, no aggregate, and every record is an error."""
    records = artifact_dir / "profile_export.jsonl"
    if (artifact_dir / "profile_export_aiperf.json").exists() or not records.is_file():
        return False
    lines = [line for line in records.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        return bool(lines) and all(json.loads(line).get("error") for line in lines)
    except (ValueError, AttributeError):
        return False


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_aiperf.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--url", required=True, help="the full endpoint URL (chat or completions)")
    p.add_argument("--model", required=True)
    p.add_argument("--endpoint-type", choices=["chat", "completions"], required=True)
    p.add_argument("--streaming", action="store_true")
    p.add_argument("--api-key-var", help="NAME of the variable holding the API key")
    p.add_argument("--concurrency", type=concurrencies, default=[1])
    p.add_argument("--request-count", type=int, default=0, help="requests per concurrency (0: 4 x it, at least 8)")
    p.add_argument("--input-tokens", type=int, required=True)
    p.add_argument("--input-tokens-stddev", type=int, default=0)
    p.add_argument("--output-tokens", type=int, required=True)
    p.add_argument("--tokenizer", required=True, help="a local tokenizer folder")
    p.add_argument("--random-seed", type=int, default=0)
    p.add_argument("--request-timeout", type=float)
    p.add_argument("--warmup-requests", type=int, default=0)
    p.add_argument("--extra-input", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a request parameter to add to every request (AIPerf's --extra-inputs NAME:VALUE)")
    p.add_argument("--output-dir", type=Path, required=True)
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == [CHILD]:
        return run_child(argv[1:])
    args = parser().parse_args(argv)
    if not Path(args.tokenizer, "tokenizer.json").is_file():
        print(f"run_aiperf: no tokenizer.json in the tokenizer folder {args.tokenizer}", file=sys.stderr)
        return 2
    env = child_env(args.api_key_var)
    for concurrency in args.concurrency:
        artifact_dir = args.output_dir / f"concurrency_{concurrency}"
        print(f"run_aiperf: concurrency {concurrency} -> {artifact_dir}", flush=True)
        code = subprocess.call([sys.executable, __file__, CHILD, *profile_args(args, concurrency, artifact_dir)],
                               env=env)
        if code != 0 and all_failed(artifact_dir):
            # AIPerf 0.13.0 exits 1 and writes no aggregate when no request succeeded; its records say why, and
            # the parser counts them: an endpoint that only errors is measured as such (error_rate 1).
            print(f"run_aiperf: every request at concurrency {concurrency} failed (see "
                  f"{artifact_dir / 'profile_export.jsonl'})", file=sys.stderr)
            continue
        if code != 0:
            print(f"run_aiperf: aiperf profile at concurrency {concurrency} exited with code {code}", file=sys.stderr)
            return code
        if not (artifact_dir / "profile_export_aiperf.json").is_file():
            print(f"run_aiperf: aiperf wrote no {artifact_dir / 'profile_export_aiperf.json'}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
