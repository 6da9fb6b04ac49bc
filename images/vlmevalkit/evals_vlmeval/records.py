"""Per-sample files a parser can read without Excel, and the per-sample scores VLMEvalKit computes but never writes.

VLMEvalKit 26.3 writes its per-sample prediction file as ``<model>_<DATASET>.xlsx`` whatever ``PRED_FORMAT``
says (``run.py`` and ``inference.infer_data_job`` hard-code the name; ``PRED_FORMAT`` only reaches a few judge
files), and the judged files of most datasets as ``.xlsx`` too. The orchestrator's runtime has no Excel reader,
and Excel cells hold at most 32,767 characters. Here:

- ``dump``: every table VLMEvalKit writes as ``X.xlsx`` is also written as ``X.tsv`` (what its own ``dump``
  writes for ``.tsv``: tab-separated, every cell quoted), from the same data, before Excel could cut a cell;
- ``infer_data_job``: before inference, two columns are added to the dataset's rows, so they reach the prediction
  file and the judged files: ``evals_image_sha256`` (JSON list: the sha256 of each of the row's images, decoded
  from the TSV's base64) and ``evals_prompt`` (JSON list of chat messages: what the chat client sends for the row,
  built by the same ``build_prompt``, images as ``{"type": "image", "sha256": ...}`` of the image file it sends);
- ``evaluate`` of OCRBench, ImageVQADataset (ChartQA, ...), MathVista and OCR_Reasoning: after VLMEvalKit scored
  the file, ``<model>_<DATASET>_evals_hit.tsv`` (``index``, ``hit``) holds each sample's hit, computed with the
  dataset's own rule (its ``process_line``/``hit_calculate``, its ``post_check``; OCRBench's inline rule,
  repeated here). The hits must add up to what VLMEvalKit reported, or the file is not written (a warning says
  why).

Nothing VLMEvalKit writes or scores changes, apart from the two extra columns.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from evals_vlmeval.patches import rebind

HIT_SUFFIX = "_evals_hit.tsv"
IMAGES_COLUMN = "evals_image_sha256"
PROMPT_COLUMN = "evals_prompt"


def apply() -> str:
    """Install the three changes."""
    import vlmeval.inference  # noqa: PLC0415
    import vlmeval.smp.file  # noqa: PLC0415
    from vlmeval.dataset.image_vqa import ImageVQADataset, MathVista, OCR_Reasoning, OCRBench  # noqa: PLC0415

    upstream_dump = vlmeval.smp.file.dump
    rebind("dump", upstream_dump, _dump(upstream_dump))
    upstream_infer = vlmeval.inference.infer_data_job
    rebind("infer_data_job", upstream_infer, _infer(upstream_infer))
    for cls, hits in ((OCRBench, _ocrbench_hits), (ImageVQADataset, _vqa_hits), (MathVista, _judged_hits("mathvista")),
                      (OCR_Reasoning, _judged_hits("ocr_reasoning"))):
        _wrap_evaluate(cls, hits)
    return "per-sample files also as .tsv, with image sha256s, prompts and hits"


def _dump(upstream: Callable[..., Any]) -> Callable[..., Any]:
    def dump(data: Any, f: str, **kwargs: Any) -> Any:
        result = upstream(data, f, **kwargs)
        if isinstance(f, str) and f.endswith(".xlsx") and hasattr(data, "to_csv"):
            try:
                upstream(data, f[: -len(".xlsx")] + ".tsv")
            except Exception as err:  # VLMEvalKit's own file is written: carry on without the copy
                print(f"evals_vlmeval: no .tsv copy of {f}: {type(err).__name__}: {err}", file=sys.stderr)
        return result

    return dump


# ---- the rows' images and prompts ------------------------------------------------------------------------------


def _infer(upstream: Callable[..., Any]) -> Callable[..., Any]:
    def infer_data_job(model: Any, work_dir: str, model_name: str, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        data = dataset.data
        try:
            images = [json.dumps(_image_hashes(cell)) for cell in data["image"]] if "image" in data else None
            prompts = [json.dumps(_prompt(model, dataset, data.iloc[i]), ensure_ascii=False) for i in range(len(data))]
        except Exception as err:  # the records are extra: never fail the evaluation for them
            print(f"evals_vlmeval: no {IMAGES_COLUMN}/{PROMPT_COLUMN} columns for {dataset.dataset_name}: "
                  f"{type(err).__name__}: {err}", file=sys.stderr)
        else:
            if images is not None:
                data[IMAGES_COLUMN] = images
            data[PROMPT_COLUMN] = prompts
        return upstream(model, work_dir, model_name, dataset, *args, **kwargs)

    return infer_data_job


def _image_hashes(cell: Any) -> list[str]:
    """sha256 of each image in a row's ``image`` cell (one base64 string, or a list of them)."""
    images = cell if isinstance(cell, list) else [cell]
    return [hashlib.sha256(base64.b64decode(str(image))).hexdigest() for image in images]


def _prompt(model: Any, dataset: Any, line: Any) -> list[dict[str, Any]]:
    """The chat messages the client sends for ``line`` (``OpenAIWrapper.prepare_inputs``), images by sha256."""
    name = dataset.dataset_name
    if hasattr(model, "use_custom_prompt") and model.use_custom_prompt(name):
        struct = model.build_prompt(line, dataset=name)
    else:
        struct = dataset.build_prompt(line)
    system = [item["value"] for item in struct if item.get("role") == "system"]
    items = [item for item in struct if item.get("role") != "system"]
    if getattr(model, "system_prompt", None):
        system.insert(0, model.system_prompt)
    messages: list[dict[str, Any]] = [{"role": "system", "content": "\n".join(system)}] if system else []
    if any(item["type"] == "image" for item in items):
        content = [_part(item) for item in items]
    else:
        content = [{"type": "text", "text": "\n".join(str(item["value"]) for item in items)}]
    return [*messages, {"role": "user", "content": content}]


def _part(item: dict[str, Any]) -> dict[str, str]:
    if item["type"] == "image":
        with open(item["value"], "rb") as handle:
            return {"type": "image", "sha256": hashlib.sha256(handle.read()).hexdigest()}
    return {"type": "text", "text": str(item["value"])}


# ---- per-sample hits -------------------------------------------------------------------------------------------

Hits = Callable[[Any, str, dict[str, Any], Any], "tuple[list[Any], list[float], float]"]
"""(dataset class, eval_file, judge kwargs, what evaluate returned) -> (indices, hits, total VLMEvalKit reported)."""


def _wrap_evaluate(cls: type, hits: Hits) -> None:
    static = inspect.getattr_static(cls, "evaluate")
    is_classmethod = isinstance(static, classmethod)
    upstream = static.__func__ if is_classmethod else static

    def evaluate(owner: Any, eval_file: str, **judge_kwargs: Any) -> Any:
        kwargs = dict(judge_kwargs)
        result = upstream(owner, eval_file, **judge_kwargs)
        _write_hits(eval_file, lambda: hits(owner, eval_file, kwargs, result))
        return result

    cls.evaluate = classmethod(evaluate) if is_classmethod else evaluate


def _write_hits(eval_file: str, compute: Callable[[], tuple[list[Any], list[float], float]]) -> None:
    import pandas as pd  # noqa: PLC0415
    from vlmeval.smp import dump  # noqa: PLC0415

    target = os.path.splitext(eval_file)[0] + HIT_SUFFIX
    try:
        indices, hits, reported = compute()
    except Exception as err:  # a missing column or file must not fail VLMEvalKit's own evaluation
        print(f"evals_vlmeval: no per-sample hits for {eval_file}: {type(err).__name__}: {err}", file=sys.stderr)
        return
    if abs(sum(hits) - reported) > 1e-6 * max(1.0, abs(reported)):
        print(f"evals_vlmeval: per-sample hits of {eval_file} add up to {sum(hits)}, VLMEvalKit reported "
              f"{reported}: {target} not written", file=sys.stderr)
        return
    dump(pd.DataFrame({"index": indices, "hit": hits}), target)


def _ocrbench_hits(owner: Any, eval_file: str, kwargs: dict[str, Any], result: Any) -> tuple[list[Any], list[float],
                                                                                          float]:
    """``OCRBench.evaluate``'s rule, row by row: any gold answer inside the prediction (HMER without spaces)."""
    from vlmeval.smp import load  # noqa: PLC0415

    data = load(eval_file)
    hits: list[float] = []
    for i in range(len(data)):
        line = data.iloc[i]
        predict = str(line["prediction"])
        answers = eval(line["answer"])
        if line["category"] == "Handwritten Mathematical Expression Recognition":
            predict = predict.strip().replace("\n", " ").replace(" ", "")
            hit = any(a.strip().replace("\n", " ").replace(" ", "") in predict for a in answers)
        else:
            predict = predict.lower().strip().replace("\n", " ")
            hit = any(a.lower().strip().replace("\n", " ") in predict for a in answers)
        hits.append(float(hit))
    return list(data["index"]), hits, float(result["Final Score"]["sum"])


def _vqa_hits(owner: Any, eval_file: str, kwargs: dict[str, Any], result: Any) -> tuple[list[Any], list[float],
                                                                                      float]:
    """``ImageVQADataset.evaluate``: the dataset's ``process_line`` method, then ``hit_calculate``."""
    from functools import partial  # noqa: PLC0415

    from vlmeval.dataset.utils.vqa_eval import hit_calculate, process_line  # noqa: PLC0415
    from vlmeval.smp import listinstr, load  # noqa: PLC0415

    data = load(eval_file)
    data["prediction"] = [str(x) for x in data["prediction"]]
    data["answer"] = [str(x) for x in data["answer"]]
    name = owner.dataset_name
    methods = ((["TextVQA"], "vqa_score"), (["ChartQA"], "relaxed_accuracy"), (["OCRVQA", "GQA"], "accuracy"),
               (["DocVQA", "InfoVQA"], "anls"))
    method = next((m for names, m in methods if listinstr(names, name)), "vqa_score")
    score = partial(process_line, method=method)
    hits = [float(h) for h in hit_calculate([score(data.iloc[i]) for i in range(len(data))], name)]
    overall = float(result["Overall"].iloc[0])
    return list(data["index"]), hits, overall / 100 * len(hits)


def _judged_hits(module: str) -> Hits:
    """MathVista / OCR_Reasoning: the judge's extraction (``res``) checked by the dataset's own ``post_check``."""

    def hits(owner: Any, eval_file: str, kwargs: dict[str, Any], result: Any) -> tuple[list[Any], list[float],
                                                                                     float]:
        import importlib  # noqa: PLC0415

        from vlmeval.smp import get_intermediate_file_path, load  # noqa: PLC0415

        post_check = importlib.import_module(f"vlmeval.dataset.utils.{module}").post_check
        judge = kwargs["model"]
        if module == "mathvista":
            storage = eval_file.replace(f".{eval_file.rsplit('.', maxsplit=1)[-1]}", f"_{judge}.xlsx")
        else:
            storage = get_intermediate_file_path(eval_file, f"_{judge}")
        data = load(storage)
        hits = [float(bool(post_check(data.iloc[i], prefetch=False))) for i in range(len(data))]
        label = "Task&Skill" if module == "mathvista" else "Task"
        overall = result[result[label] == "Overall"]
        return list(data["index"]), hits, float(overall["hit"].iloc[0])

    return hits
