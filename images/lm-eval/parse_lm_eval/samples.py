"""lm-evaluation-harness per-sample output (``--log_samples``) as :class:`SampleRecord` lines (stdlib only).

lm-eval 0.4.x writes ``samples_<task>_<timestamp>.jsonl`` per task beside ``results_<timestamp>.json``; the samples
files of the newest results file (same directory, same timestamp) are read, older runs' are not. Each line is one
(document, filter): ``doc_id``, ``doc`` (the dataset row), ``target`` (as a string), ``arguments`` (``gen_args_<i>``
-> ``arg_<j>``: one request each), ``resps`` (per request, one raw answer per repeat), ``filtered_resps``,
``filter``, ``metrics`` and each metric's value under its own key.

One record per (task, document, repeat):

- ``scores``: every filter's numeric metric values, named as in results.yml (``X`` for filter ``none``,
  ``X__<filter>`` otherwise); a value that is not one number (IFEval's per-instruction lists, BLEU's
  reference/prediction pairs) is left out. lm-eval scores a document once over all its repeats (``take_first``,
  ``majority_vote``), so each repeat's record carries the document's scores.
- ``sample_id``: ``doc_id`` and the hash of ``doc``, the row before any prompt, system message or model.
- ``input``: what was sent: the chat messages (``local-chat-completions``), the prompt text (completions), the
  shared context of the choices (multiple-choice and other loglikelihood tasks).
- ``prediction``: the repeat's full raw output (generative tasks). Multiple-choice tasks generate nothing: the
  prediction is the text of the choice with the highest loglikelihood (the one ``acc`` counts), as lm-eval passed
  it (with its leading delimiter, e.g. `` blue``); other loglikelihood tasks have none.
- ``status``: ``unscored`` when every filter of the document failed to extract an answer (lm-eval's ``[invalid]``),
  else ``scored``. lm-eval has no failed samples of its own: a failed request stops the run.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.schema.errors import ResultsParseError
from orchestrator.schema.samples import ImageRef, Message, SampleRecord, TextPart, sample_id

from .results import load_results, newest_results_file, run_timestamp

INVALID = "[invalid]"
"""What lm-eval's regex filters answer when they find nothing."""

Line = Mapping[str, Any]


def parse_samples(output_dir: Path) -> list[SampleRecord]:
    """Every record of the newest run below ``output_dir``; [] when it logged no samples."""
    results_path = newest_results_file(output_dir)
    stamp = run_timestamp(results_path)
    if stamp is None:
        return []
    configs = load_results(results_path).get("configs")
    suffix = f"_{stamp}.jsonl"
    records: list[SampleRecord] = []
    for path in sorted(results_path.parent.glob(f"samples_*{suffix}")):
        task = path.name.removeprefix("samples_").removesuffix(suffix)
        config = configs.get(task) if isinstance(configs, dict) else None
        output_type = config.get("output_type") if isinstance(config, dict) else None
        for lines in _documents(path):
            records += _records(task, lines, output_type=output_type if isinstance(output_type, str) else None,
                                where=path)
    return records


def _documents(path: Path) -> Iterator[list[Line]]:
    """A samples file's lines grouped by document (one line per filter), in file order."""
    by_doc: dict[str, list[Line]] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                except ValueError as err:
                    raise _bad(f"{path}:{number}", f"not JSON ({err})") from err
                if not isinstance(line, dict) or not isinstance(line.get("doc_id"), int | str):
                    raise _bad(f"{path}:{number}", "not an object with a doc_id")
                by_doc.setdefault(str(line["doc_id"]), []).append(line)
    except OSError as err:
        raise _bad(str(path), err.strerror or str(err)) from err
    yield from by_doc.values()


def _records(task: str, lines: list[Line], *, output_type: str | None, where: Path) -> list[SampleRecord]:
    first = lines[0]
    try:
        arguments = [first["arguments"][f"gen_args_{i}"] for i in range(len(first["arguments"]))]
        resps = first["resps"]
        doc_id, doc = first["doc_id"], first["doc"]
    except (KeyError, TypeError) as err:
        raise _bad(where, f"doc_id {first.get('doc_id')!r}: no {err} in the expected layout") from err
    kind = output_type or _guess_type(arguments)
    prompt = _input(arguments[0].get("arg_0"), where)
    failed = [str(line.get("filter")) for line in lines if _extraction_failed(line.get("filtered_resps"))]
    unscored = len(failed) == len(lines)
    status_error = f"no answer extracted (filters {', '.join(failed)}: {INVALID})" if unscored else None
    scores = {name: value for line in lines for name, value in _scores(line)}
    repeats = max(1, max((len(r) for r in resps if isinstance(r, list)), default=1))
    return [
        SampleRecord(
            task=task, sample_id=sample_id(doc_id, doc), repeat=repeat, input=prompt, target=first.get("target"),
            prediction=_prediction(kind, arguments, resps, repeat), scores=scores,
            status="unscored" if unscored else "scored", error=status_error,
        )
        for repeat in range(repeats)
    ]


def _guess_type(arguments: list[Any]) -> str:
    """The output type from the requests' shape, for a results file without ``configs``."""
    if isinstance(arguments[0].get("arg_1"), dict):
        return "generate_until"
    return "multiple_choice" if len(arguments) > 1 else "loglikelihood"


def _input(context: Any, where: Path) -> str | list[Message]:
    """The prompt as sent: chat messages (lm-eval logs them as one JSON string in a list) or text."""
    if isinstance(context, list) and len(context) == 1 and isinstance(context[0], str):
        try:
            messages = json.loads(context[0])
        except ValueError:
            return context[0]
        if isinstance(messages, list) and all(isinstance(m, dict) and "role" in m for m in messages):
            return [Message(role=str(m["role"]), content=_content(m.get("content"), where)) for m in messages]
        return context[0]
    if isinstance(context, str):
        return context
    raise _bad(where, f"unexpected prompt {type(context).__name__}")


def _content(content: Any, where: Path) -> str | list[TextPart | ImageRef]:
    """A message's content; images (data URLs) as sha256 references, never their bytes."""
    if isinstance(content, str):
        return content
    parts: list[TextPart | ImageRef] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, dict) and part.get("type") == "text":
            parts.append(TextPart(text=str(part.get("text", ""))))
        elif isinstance(part, dict) and part.get("type") == "image_url":
            parts.append(ImageRef(sha256=_image_sha256(part.get("image_url"), where)))
        else:
            raise _bad(where, f"unexpected message part {str(part)[:80]!r}")
    return parts


def _image_sha256(image: Any, where: Path) -> str:
    url = image.get("url") if isinstance(image, dict) else None
    head, comma, data = str(url).partition(",")
    if not (comma and head.startswith("data:") and head.endswith(";base64")):
        raise _bad(where, "an image that is not a base64 data URL")
    try:
        return hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest()
    except binascii.Error as err:
        raise _bad(where, f"an image with bad base64 ({err})") from err


def _prediction(kind: str, arguments: list[Any], resps: list[Any], repeat: int) -> str | None:
    if kind == "multiple_choice":
        loglikelihoods = [_loglikelihood(r, repeat) for r in resps]
        choices = len(loglikelihoods) // 2 if len(arguments) % 2 == 0 and _unconditional(arguments) else None
        scored = loglikelihoods[:choices]
        best = max(range(len(scored)), key=lambda i: scored[i])
        return str(arguments[best].get("arg_1"))
    if kind.startswith("loglikelihood"):
        return None
    answers = resps[0] if resps and isinstance(resps[0], list) else []
    return str(answers[repeat]) if repeat < len(answers) else None


def _unconditional(arguments: list[Any]) -> bool:
    """``acc_mutual_info`` doubles the requests: the second half has an empty context."""
    half = len(arguments) // 2
    return all(arg.get("arg_0") == "" for arg in arguments[half:]) and half > 0


def _loglikelihood(resp: Any, repeat: int) -> float:
    """A loglikelihood request's answer for one repeat, logged as ``["-7.74", "True"]``."""
    answer = resp[min(repeat, len(resp) - 1)] if isinstance(resp, list) and resp else None
    try:
        return float(answer[0] if isinstance(answer, list) else str(answer))
    except (TypeError, ValueError, IndexError):
        return -math.inf


def _extraction_failed(filtered: Any) -> bool:
    """True when every filtered answer is lm-eval's ``[invalid]``."""
    flat = list(_strings(filtered))
    return bool(flat) and all(text == INVALID for text in flat)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, list):
        for item in value:
            yield from _strings(item)
    else:
        yield str(value)


def _scores(line: Line) -> Iterator[tuple[str, float]]:
    filter_name = str(line.get("filter", "none"))
    metrics = line.get("metrics")
    for metric in metrics if isinstance(metrics, list) else []:
        value = line.get(str(metric))
        if isinstance(value, bool | int | float) and math.isfinite(value):
            yield (str(metric) if filter_name == "none" else f"{metric}__{filter_name}"), float(value)


def _bad(where: Path | str, what: str) -> ResultsParseError:
    return ResultsParseError(f"{where}: cannot read lm-eval samples: {what}",
                             hint="the file may be truncated (harness killed while writing?); rerun the evaluation")
