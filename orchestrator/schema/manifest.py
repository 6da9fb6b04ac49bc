"""The manifest of a prefetched directory (``evals prefetch --to DIR``): what it holds and every file's sha256."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_NAME = "manifest.json"
CACHE_SUBDIR = "cache"
"""DIR/cache is the data cache (mounted at /cache by `evals run --offline --data DIR`)."""
IMAGES_SUBDIR = "images"
"""DIR/images holds the images when --images / --image_format was given (docker archives, .sqsh, .sif)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrefetchedTask(_Strict):
    """One task whose data the directory holds."""

    harness: str = Field(description="Harness name, e.g. lm-eval.")
    task: str = Field(description="The task (config.type).")
    image: str = Field(description="The image that fetched it.")
    image_id: str = Field(description="That image's id (sha256:...): the same image reads the cache the same way.")


class PrefetchedImage(_Strict):
    """An image saved into the directory."""

    image: str = Field(description="Image name and tag.")
    image_id: str = Field(description="Image id (sha256:...).")
    file: str = Field(description="Path of the archive, relative to the directory.")
    format: str = Field(description="docker-archive (`docker load -i FILE`), enroot (a squashfs for "
                                    "`srun --container-image FILE`) or apptainer (a SIF for `apptainer exec FILE`).")


class FileEntry(_Strict):
    """One file's size and digest."""

    size: int = Field(ge=0, description="Bytes.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex SHA-256 of the content.")


class PrefetchManifest(_Strict):
    """``manifest.json`` at the top of a prefetched directory."""

    format: int = Field(default=1, description="Manifest format version.")
    created_at: datetime = Field(description="When the prefetch finished (UTC).")
    evals_version: str = Field(description="The evals version that wrote it.")
    hf_endpoint: str = Field(description="The Hub the data came from.")
    tasks: list[PrefetchedTask] = Field(description="Tasks whose data is in cache/.")
    images: list[PrefetchedImage] = Field(default_factory=list, description="Images saved in images/.")
    files: dict[str, FileEntry] = Field(description="Every regular file under the directory but the manifest, by "
                                                    "relative path.")
    links: dict[str, str] = Field(default_factory=dict, description="Symbolic links (the Hub cache's snapshots) by "
                                                                    "relative path: their target as written.")
