"""Per-sample records: one line of ``samples.jsonl`` per (task, sample, repeat), written next to results.yml.

Every harness's per-sample output is parsed into these records by our own parsers (never by importing the
harness). ``evals compare`` and ``evals gate`` match two runs' records on ``(task, sample_id, repeat)``.

``sample_id`` is ``<the harness's document id>#<12 hex digits>``: the digits are the start of the sha256 of the
canonical *dataset document* (the row the harness read, before any prompt template, system message or model
touched it; images by their sha256). So the id is stable across runs, models and prompt changes, and a changed
dataset shows as a different id instead of a silent mismatch.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SAMPLES_FILE = "samples.jsonl"
"""The file name, in the output directory beside results.yml."""

SampleStatus = Literal["scored", "unscored", "error"]
"""``scored``: the harness scored an answer. ``unscored``: it could not extract or score one (its scores, if any, are
what the harness counted, usually 0). ``error``: the endpoint failed after the proxy's retries, or the harness
failed on that sample; never counted as a wrong answer."""

SAMPLE_STATUSES: tuple[SampleStatus, ...] = ("scored", "unscored", "error")

ID_DIGITS = 12


def canonical_json(value: Any) -> str:
    """One text per JSON value: sorted keys, no spaces, UTF-8 kept (what hashes are taken of)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def document_hash(document: Any) -> str:
    """The first :data:`ID_DIGITS` hex digits of the sha256 of the canonical JSON of a dataset document."""
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()[:ID_DIGITS]


def sample_id(doc_id: str | int, document: Any) -> str:
    """``<doc_id>#<document hash>``: see the module docstring."""
    return f"{doc_id}#{document_hash(document)}"


def prompt_key(prompt: Any) -> str:
    """The key that joins a sample to the adapter proxy's request records: the full sha256 of the canonical JSON of
    what the harness sent as the request's ``messages`` (chat, vlm) or ``prompt`` (completions), as it sent it."""
    return hashlib.sha256(canonical_json(prompt).encode("utf-8")).hexdigest()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageRef(_Strict):
    """An image in a prompt, by reference: never the image's bytes or base64."""

    type: Literal["image"] = Field(default="image", description="Always `image`.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the image file's bytes.")


class TextPart(_Strict):
    """A text part of a multimodal chat message."""

    type: Literal["text"] = Field(default="text", description="Always `text`.")
    text: str = Field(description="The text.")


class Message(_Strict):
    """One chat message as the harness sent it; images as sha256 references."""

    role: str = Field(description="system, user, assistant, ...")
    content: str | list[TextPart | ImageRef] = Field(description="Text, or parts of text and image references.")


class SampleRecord(_Strict):
    """One line of samples.jsonl."""

    task: str = Field(description="The task (as in results.yml `results.tasks`: a subtask of a group is its own).")
    sample_id: str = Field(min_length=1, description="`<doc id>#<hash of the dataset document>`: stable across runs "
                                                     "and models; a changed dataset changes it.")
    repeat: int = Field(default=0, ge=0, description="Which repeat of the sample (0 unless the task samples more "
                                                     "than one answer per input).")
    input: str | list[Message] = Field(description="The prompt text (completions) or chat messages (chat, vlm) the "
                                                   "harness sent; images as sha256 references.")
    target: Any = Field(default=None, description="The reference answer as the harness holds it (text, a choice "
                                                  "index, a list), or null when the task has none.")
    prediction: str | None = Field(default=None, description="The model's full output (null for an error).")
    scores: dict[str, float] = Field(default_factory=dict, description="Metric -> the harness's score of this "
                                                                       "sample, named as in results.yml.")
    status: SampleStatus = Field(description="scored, unscored or error.")
    error: str | None = Field(default=None, description="What failed, for status `error` (and why nothing could be "
                                                        "scored, for `unscored`, where the harness says).")
    request_ids: list[str] = Field(default_factory=list, description="Ids of the adapter proxy's request records "
                                                                     "for this sample, where they could be joined.")

    @property
    def key(self) -> tuple[str, str, int]:
        """What two runs' records are matched on."""
        return (self.task, self.sample_id, self.repeat)


def dump_line(record: SampleRecord) -> str:
    """One samples.jsonl line (with its newline), fields in model order, null fields left out."""
    return canonical_line(record.model_dump(mode="json", exclude_defaults=False, exclude_none=True)) + "\n"


def canonical_line(data: dict[str, Any]) -> str:
    """A JSON object on one line, keys in the order given, UTF-8 kept."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
