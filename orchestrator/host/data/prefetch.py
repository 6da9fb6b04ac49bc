"""``evals prefetch``: everything some tasks need, fetched once on a connected machine, carried to one without.

Each task's image fetches its own data (``core_evals_<harness> fetch_data``) into ``DIR/cache``, exactly where
and how the harness will look for it; ``--images`` adds ``docker save`` archives, ``--image_format enroot|apptainer``
squashfs/SIF files made by those tools from the local Docker daemon. ``manifest.json`` records
the sha256 of every file; ``evals prefetch --verify DIR`` checks them; ``evals run --offline --data DIR``
mounts ``DIR/cache`` as the cache. The directory is written under a temporary name and renamed at the end, so
it is complete or absent.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from orchestrator import __version__
from orchestrator.host.backends.container import Launcher, LaunchSpec, Mount, Output
from orchestrator.host.catalog import HarnessImage
from orchestrator.host.data.cache import data_access
from orchestrator.host.data.prefetched import scan
from orchestrator.schema.container import RUN_CONFIG_PATH
from orchestrator.schema.errors import HarnessError, InputError
from orchestrator.schema.manifest import (
    CACHE_SUBDIR,
    IMAGES_SUBDIR,
    MANIFEST_NAME,
    PrefetchedImage,
    PrefetchedTask,
    PrefetchManifest,
)

Saver = Callable[[str, Path], str]
"""Saves an image into a file, returns its id (docker save)."""
IdOf = Callable[[str], str]

IMAGE_FORMATS = ("docker-archive", "enroot", "apptainer")
"""What ``--image_format`` accepts: a ``docker save`` archive, an enroot squashfs, an apptainer SIF."""
_SUFFIX = {"docker-archive": ".tar", "enroot": ".sqsh", "apptainer": ".sif"}
_TOOLS = {"enroot": ("enroot",), "apptainer": ("apptainer", "singularity")}


def image_tool(image_format: str) -> str | None:
    """The command that writes ``image_format`` from the local Docker daemon (None for docker-archive).

    A missing tool is bad input, found before anything is fetched."""
    if image_format not in IMAGE_FORMATS:
        raise InputError(f"unknown image format {image_format!r}", hint=f"one of: {', '.join(IMAGE_FORMATS)}")
    if image_format == "docker-archive":
        return None
    for name in _TOOLS[image_format]:
        found = shutil.which(name)
        if found:
            return found
    where = {"enroot": "https://github.com/NVIDIA/enroot", "apptainer": "https://apptainer.org"}[image_format]
    raise InputError(f"--image_format {image_format} needs the {' or '.join(_TOOLS[image_format])} command on this "
                     f"machine, and it is not on PATH",
                     hint=f"install it ({where}), or carry --image_format docker-archive and convert on the cluster")


def image_command(image_format: str, tool: str, image: str, path: Path) -> list[str]:
    """The documented conversion from the local Docker daemon: ``enroot import -o F dockerd://IMAGE``,
    ``apptainer build F docker-daemon://IMAGE``."""
    if image_format == "enroot":
        return [tool, "import", "--output", str(path), f"dockerd://{image}"]
    return [tool, "build", str(path), f"docker-daemon://{image}"]


def convert_image(command: list[str], *, output: Output) -> None:
    """Run a conversion, its output passed on; a failure is a harness error naming the command's exit code."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as child:
        assert child.stdout is not None
        for line in child.stdout:
            output(line)
    if child.returncode != 0:
        raise HarnessError(f"{Path(command[0]).name} {command[1]} failed with exit code {child.returncode}",
                           exit_code=child.returncode, hint="see its output above")


def image_file(image: str, image_format: str) -> str:
    """Where an image goes in the directory: ``images/<name>_<tag><suffix>``."""
    return f"{IMAGES_SUBDIR}/{image.replace('/', '_').replace(':', '_')}{_SUFFIX[image_format]}"


@dataclass(frozen=True)
class PrefetchItem:
    """One task to prefetch: its image and how to ask for it."""

    image: HarnessImage
    eval_type: str
    run_config: Path | None = None
    overrides: str | None = None

    @property
    def task(self) -> str:
        """The task id (checked against the image's framework: an unknown task is bad input)."""
        return self.image.framework.find_task(self.eval_type).type


def _target(directory: Path) -> Path:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"{directory} already exists and is not empty",
                         hint="prefetch into a new directory (it is written whole or not at all)")
    parent = directory.resolve().parent
    with contextlib.suppress(OSError):
        parent.mkdir(parents=True, exist_ok=True)
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise InputError(f"cannot create {directory}: {parent} is not a writable directory",
                         hint="pick a directory you can write to")
    return directory.resolve()


def _fetch_spec(item: PrefetchItem, cache: Path, *, name: str, network: str) -> LaunchSpec:
    access = data_access(cache_dir=cache, prefetched_cache=None, offline=False)
    access.prepare()
    args = ["fetch_data", "--eval_type", item.eval_type]
    mounts = [access.mount]
    if item.run_config is not None:
        args += ["--run_config", RUN_CONFIG_PATH]
        mounts.append(Mount(source=item.run_config.resolve(), target=RUN_CONFIG_PATH, read_only=True))
    if item.overrides:
        args += ["--overrides", item.overrides]
    return LaunchSpec(image=item.image.image, args=args, name=name, user=f"{os.getuid()}:{os.getgid()}",
                      network_host=network == "host" or (network == "auto" and access.loopback),
                      mounts=mounts, environment=access.environment, secret_envs=access.secret_envs,
                      labels={"evals.prefetch": name})


class _LastLine:
    """Passes output on and keeps its last line (a data step's one-line reason)."""

    def __init__(self, output: Output) -> None:
        self._output = output
        self._tail = b""

    def __call__(self, chunk: bytes) -> None:
        self._output(chunk)
        self._tail = (self._tail + chunk)[-4096:]

    @property
    def line(self) -> str:
        lines = [line for line in self._tail.decode("utf-8", "replace").splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


def prefetch(items: list[PrefetchItem], directory: Path, *, launcher: Launcher, output: Output,
             save: Saver | None, id_of: IdOf, network: str = "auto",
             report: Callable[[str], None] = print, image_formats: tuple[str, ...] = ()) -> PrefetchManifest:
    """Fetch every item's data (and its image in each of ``image_formats``: ``save`` writes docker archives)
    into ``directory``; returns the manifest."""
    tasks = [(item, item.task) for item in items]  # unknown tasks fail here, before anything is written
    tools = {fmt: image_tool(fmt) for fmt in dict.fromkeys(image_formats)}  # so do missing conversion tools
    if "docker-archive" in tools and save is None:
        raise InputError("docker-archive images need a Docker engine to save them from")
    target = _target(directory)
    partial = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        (partial / CACHE_SUBDIR).mkdir(parents=True)
        fetched = []
        for index, (item, task) in enumerate(tasks):
            report(f"prefetch {index + 1}/{len(tasks)}: {item.image.harness}.{task} with {item.image.image}")
            spec = _fetch_spec(item, (partial / CACHE_SUBDIR), name=f"evals-prefetch-{os.getpid()}-{index}",
                               network=network)
            tail = _LastLine(output)
            code = launcher.run(spec, output=tail)
            if code == 2:
                reason = tail.line.split(": error: ", 1)[-1]
                raise InputError(f"cannot prefetch {item.image.harness}.{task}: {reason}")
            if code != 0:
                raise HarnessError(f"fetching the data of {item.image.harness}.{task} failed (exit code {code})",
                                   exit_code=code, hint="see the output above")
            fetched.append(PrefetchedTask(harness=item.image.harness, task=task, image=item.image.image,
                                          image_id=id_of(item.image.image)))
        images = []
        if tools:
            (partial / IMAGES_SUBDIR).mkdir()
        for image_format, tool in tools.items():
            for name in dict.fromkeys(item.image.image for item in items):
                file = image_file(name, image_format)
                report(f"writing image {name} as {image_format} -> {file}")
                if tool is None:
                    assert save is not None
                    saved = save(name, partial / file)
                else:
                    convert_image(image_command(image_format, tool, name, partial / file), output=output)
                    saved = id_of(name)
                images.append(PrefetchedImage(image=name, image_id=saved, file=file, format=image_format))
        report("hashing files")
        files, links = scan(partial)
        manifest = PrefetchManifest(created_at=datetime.now(UTC), evals_version=__version__,
                                    hf_endpoint=os.environ.get("HF_ENDPOINT") or "https://huggingface.co",
                                    tasks=fetched, images=images, files=files, links=links)
        (partial / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        if target.exists():
            target.rmdir()
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest
