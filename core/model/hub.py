"""A model by its Hugging Face repo id: its config.json and the size of its checkpoint, fetched with the
`huggingface_hub` library (the Hub's own client) and nothing else.

- The name must be a repo id ("org/name": letters, digits, '-', '_', '.'; huggingface_hub's
  `validate_repo_id`) before any request; only the Hub's file URLs of that repo are ever fetched.
- `HF_ENDPOINT` (a mirror) and `HF_TOKEN` (gated repos) are honoured, read at each call; every request has
  a timeout (`KVLAB_HUB_TIMEOUT`, 10 s by default), and a file's size is checked by a HEAD request before
  it is downloaded: config.json at most 1 MiB, the safetensors index at most 32 MiB.
- Files are cached on disk (`KVLAB_HUB_CACHE`, else huggingface_hub's cache), so a second look is offline.
- The checkpoint's bytes come from `model.safetensors.index.json` (`metadata.total_size`: every tensor's
  bytes, quantized experts as stored), else from the safetensors headers of a single-file checkpoint, read
  by HTTP range requests (`HfApi.get_safetensors_metadata`): parameters per dtype times the dtype's bytes.
- Without a route to the Hub the fetch fails with `HubUnavailable`, one line; nothing else in the app needs
  the network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.model.hf_config import load_config_file

CONFIG_MAX_BYTES = 1 << 20
INDEX_MAX_BYTES = 32 << 20
REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# bytes per element of the safetensors dtypes (the format's spec); a dtype not listed is refused
DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I64": 8, "I32": 4,
    "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip


class HubUnavailable(RuntimeError):
    """The Hub (or its mirror) cannot be reached, or refuses: one line that says so."""


@dataclass(frozen=True)
class HubModel:
    repo_id: str
    config: dict[str, Any]
    checkpoint_bytes: int | None  # every tensor of the checkpoint, as stored; None: no safetensors found
    source: str  # where checkpoint_bytes comes from, in words


def validate(repo_id: str) -> str:
    """`repo_id` if it is a Hub repo id ("org/name"), else ValueError naming the rule."""
    from huggingface_hub.utils import validate_repo_id

    name = str(repo_id).strip()
    if not REPO_ID.fullmatch(name) or ".." in name or "--" in name or name.endswith((".git", ".")):
        raise ValueError(
            f"{name[:100]!r} is not a Hugging Face repo id: give org/name (letters, digits, '-', '_' and '.')."
        )
    validate_repo_id(name)
    return name


def _timeout() -> float:
    try:
        return min(max(float(os.environ.get("KVLAB_HUB_TIMEOUT", "10")), 0.1), 120.0)
    except ValueError:
        return 10.0


def _cache_dir() -> str | None:
    return os.environ.get("KVLAB_HUB_CACHE") or None


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def _where() -> str:
    return f"the Hub mirror at {_endpoint()}" if _endpoint() else "the Hugging Face Hub"


def _quiet() -> None:
    """No request but the repo's files: huggingface_hub's telemetry (its user agent names the AI agent it runs
    under, and to tell asks the endpoint for a registry of agents, /api/agent-harnesses) is turned off, and
    so is its colouring of warnings, which asks the same."""
    from huggingface_hub import constants

    constants.HF_HUB_DISABLE_TELEMETRY = True
    try:
        from huggingface_hub.utils._terminal import ANSI

        ANSI._enabled = False
    except (ImportError, AttributeError):  # another release of the library: nothing to turn off
        pass


def _download(repo_id: str, filename: str, cap: int, cache_dir: str | None = None) -> Path:
    """One file of the repo, after a HEAD request says it is at most `cap` bytes; from the disk cache when
    the Hub cannot be reached and the file was fetched before."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url

    _quiet()
    token = os.environ.get("HF_TOKEN") or None
    try:
        url = hf_hub_url(repo_id, filename, endpoint=_endpoint())
        meta = get_hf_file_metadata(url, token=token, timeout=_timeout(), endpoint=_endpoint())
        if meta.size is not None and meta.size > cap:
            raise ValueError(f"{repo_id}'s {filename} is {meta.size:,} bytes, over the {cap:,}-byte limit.")
        path = hf_hub_download(
            repo_id, filename, cache_dir=cache_dir or _cache_dir(), etag_timeout=_timeout(), token=token,
            endpoint=_endpoint(),
        )  # fmt: skip
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - every network or Hub failure is one line, typed below
        from huggingface_hub import errors

        if not isinstance(e, errors.HfHubHTTPError):  # no route: a copy fetched before will do
            try:
                path = hf_hub_download(repo_id, filename, cache_dir=cache_dir or _cache_dir(), local_files_only=True)
            except Exception:  # noqa: BLE001 - not in the cache either
                _raise_for(e, repo_id, filename)
        else:
            _raise_for(e, repo_id, filename)
    p = Path(path)
    if p.stat().st_size > cap:
        raise ValueError(f"{repo_id}'s {filename} is {p.stat().st_size:,} bytes, over the {cap:,}-byte limit.")
    return p


class _Missing(Exception):
    pass


def _raise_for(e: Exception, repo_id: str, filename: str):
    from huggingface_hub import errors

    if isinstance(e, errors.EntryNotFoundError | errors.RemoteEntryNotFoundError):
        raise _Missing(filename) from e
    if isinstance(e, errors.GatedRepoError):
        raise HubUnavailable(f"{repo_id} is gated: set HF_TOKEN to a token with access.") from e
    if isinstance(e, errors.RepositoryNotFoundError | errors.RevisionNotFoundError):
        raise HubUnavailable(f"{_where()} has no repo {repo_id} (or it is private: set HF_TOKEN).") from e
    if isinstance(e, errors.HfHubHTTPError):
        raise HubUnavailable(f"{_where()} refused {repo_id}/{filename}: {str(e).splitlines()[0][:200]}") from e
    raise HubUnavailable(f"Offline: {_where()} cannot be reached; use a preset or a config file instead.") from e


def _safetensors_bytes(repo_id: str) -> int:
    from huggingface_hub import HfApi

    _quiet()
    token = os.environ.get("HF_TOKEN") or None
    try:
        meta = HfApi(endpoint=_endpoint(), token=token).get_safetensors_metadata(repo_id, timeout=_timeout())
    except Exception as e:  # noqa: BLE001
        from huggingface_hub import errors

        if isinstance(e, errors.NotASafetensorsRepoError):
            raise _Missing("model.safetensors") from e
        _raise_for(e, repo_id, "model.safetensors")
    unknown = sorted(set(meta.parameter_count) - set(DTYPE_BYTES))
    if unknown:
        raise ValueError(f"{repo_id} stores tensors of dtype {', '.join(unknown)}, whose size this app does not know.")
    return sum(n * DTYPE_BYTES[d] for d, n in meta.parameter_count.items())


def fetch(repo_id: str, cache_dir: str | None = None) -> HubModel:
    """The repo's config.json and checkpoint size. ValueError for a bad name or an oversized file;
    HubUnavailable when the Hub cannot be reached or has no such repo. `cache_dir`: where the files go
    (default KVLAB_HUB_CACHE, else huggingface_hub's cache)."""
    repo_id = validate(repo_id)
    try:
        config_path = _download(repo_id, "config.json", CONFIG_MAX_BYTES, cache_dir)
    except _Missing:
        raise HubUnavailable(f"{repo_id} has no config.json on {_where()}.") from None
    config = load_config_file(config_path)
    try:
        index = json.loads(_download(repo_id, "model.safetensors.index.json", INDEX_MAX_BYTES, cache_dir).read_text())
        total = (index.get("metadata") or {}).get("total_size") if isinstance(index, dict) else None
        if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
            raise ValueError(f"{repo_id}'s safetensors index gives no total size.")
        return HubModel(repo_id, config, total, "the checkpoint's safetensors index (its total size)")
    except _Missing:
        pass
    try:
        total = _safetensors_bytes(repo_id)
    except _Missing:
        return HubModel(repo_id, config, None, "no safetensors checkpoint found")
    return HubModel(repo_id, config, total, "the checkpoint's safetensors header")
