"""core/model/hub.py and `--hub`: a model by its Hub repo id, fetched with huggingface_hub from a local
stand-in for the Hub on 127.0.0.1 (tests/hubserver.py) that serves real config and index files in the Hub's
URL layout. Proves: the weights come from the checkpoint's own size, only the repo's files are requested,
bad names are refused before any request, and no route is one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hubserver import HubServer
from safetensors.torch import save_file

from core.model import hub

DATA = Path(__file__).parent / "data" / "hub"
REPOS = {
    "fetchwiki/HuggingFaceTB-SmolLM3-3B": 6_150_197_248,
    "fetchwiki/deepcogito-cogito-v1-preview-qwen-14B": 29_531_895_808,
    "fetchwiki/mistralai-Devstral-Small-2507": 47_144_806_400,
}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The real repos and a single-file checkpoint whose experts are packed uint8 (int4 in pairs)."""
    root = tmp_path_factory.mktemp("hub")
    shutil.copytree(DATA / "fetchwiki", root / "fetchwiki")
    one = root / "kvlab-test" / "tiny-int4"
    one.mkdir(parents=True)
    shutil.copy(ROOT / "tests/data/configs/qwen--qwen3-0.6b.json", one / "config.json")
    save_file(
        {
            "model.layers.0.mlp.experts.0.weight_packed": torch.zeros(64, 32, dtype=torch.uint8),
            "model.layers.0.mlp.experts.0.weight_scale": torch.zeros(64, 4, dtype=torch.bfloat16),
            "model.embed_tokens.weight": torch.zeros(100, 16, dtype=torch.bfloat16),
        },
        one / "model.safetensors",
    )
    big = root / "kvlab-test" / "huge-config"
    big.mkdir()
    (big / "config.json").write_text(json.dumps({"pad": "x" * (hub.CONFIG_MAX_BYTES + 1)}))
    with HubServer(root) as server:
        yield server


@pytest.fixture
def hub_env(served, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", served.url)
    monkeypatch.setenv("KVLAB_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    served.requests.clear()
    return served


@pytest.mark.parametrize("repo", REPOS)
def test_real_repos_give_their_index_total_size(hub_env, repo):
    m = hub.fetch(repo)
    assert m.checkpoint_bytes == REPOS[repo] and m.source == "the checkpoint's safetensors index (its total size)"
    assert m.config == json.loads((DATA / repo / "config.json").read_text())
    assert {p for _, p in hub_env.requests} <= {
        f"/{repo}/resolve/main/{f}" for f in ("config.json", "model.safetensors.index.json")
    }


def test_single_file_checkpoint_from_its_header_quantized_experts_as_stored(hub_env):
    """No index: the safetensors header, read with range requests, gives parameters per dtype; packed uint8
    experts count one byte each, bf16 two: 64 x 32 + (64 x 4 + 100 x 16) x 2 = 5,760 B."""
    m = hub.fetch("kvlab-test/tiny-int4")
    assert m.checkpoint_bytes == 64 * 32 + (64 * 4 + 100 * 16) * 2
    assert m.source == "the checkpoint's safetensors header"


def test_names_are_refused_before_any_request(hub_env):
    for bad in ("a/../b", "noslash", "org/name/extra", "http://evil.example/x", "-org/name", "org/na me", "o" * 200):
        with pytest.raises(ValueError, match="not a Hugging Face repo id"):
            hub.fetch(bad)
    assert hub_env.requests == []


def test_oversized_config_is_refused_from_its_head_request(hub_env):
    with pytest.raises(ValueError, match="over the 1,048,576-byte limit"):
        hub.fetch("kvlab-test/huge-config")
    assert all(method == "HEAD" for method, _ in hub_env.requests)


def test_missing_repo_and_no_route_are_one_line(hub_env, monkeypatch):
    with pytest.raises(hub.HubUnavailable, match="has no repo kvlab-test/nope"):
        hub.fetch("kvlab-test/nope")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(hub.HubUnavailable, match="^Offline: the Hub mirror at http://127.0.0.1:9 cannot be reached"):
        hub.fetch("org/name")


def test_a_repo_fetched_before_is_read_from_the_cache_offline(hub_env, monkeypatch):
    repo = "fetchwiki/HuggingFaceTB-SmolLM3-3B"
    assert hub.fetch(repo).checkpoint_bytes == REPOS[repo]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert hub.fetch(repo).checkpoint_bytes == REPOS[repo]


def cli(hub_env, *args: str) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ}
    return subprocess.run(
        [sys.executable, "-m", "core.report", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_cli_plans_with_the_checkpoints_weights_split_by_the_layout(hub_env):
    """Devstral-Small-2507 at TP2: the weights per GPU are the index's 47,144,806,400 B split as the config's
    parameters are (norms replicated: a few hundred KB over half); the JSON names where they came from."""
    out = cli(hub_env, "--hub", "fetchwiki/mistralai-Devstral-Small-2507", "--gpu", "H100 SXM", "--tp", "2", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["checkpoint"]["bytes"] == 47_144_806_400 and r["plan"]["weights_source"] == "checkpoint"
    per_gpu = r["plan"]["weights_bytes_per_gpu"]
    assert 47_144_806_400 // 2 <= per_gpu < 47_144_806_400 // 2 + 2**20
    one = json.loads(cli(hub_env, "--hub", "fetchwiki/HuggingFaceTB-SmolLM3-3B", "--gpu", "H100 SXM", "--json").stdout)
    assert abs(one["plan"]["weights_bytes_per_gpu"] - 6_150_197_248) <= 3  # TP1: the whole checkpoint


def test_cli_refusals(hub_env, monkeypatch):
    assert cli(hub_env, "--hub", "a/../b").returncode == 2
    assert cli(hub_env, "llama-3.1-8b", "--hub", "org/name").returncode == 2
    both = cli(hub_env, "--hub", "fetchwiki/HuggingFaceTB-SmolLM3-3B", "--gpu", "H100 SXM", "--weights", "fp8")
    assert both.returncode == 2 and "the checkpoint's own size is the weights" in both.stderr
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    out = cli(hub_env, "--hub", "org/name")
    assert out.returncode == 3 and out.stderr.count("\n") == 1 and out.stderr.startswith("error: Offline:")


# ----------------------------------------------------------------------------- the planner page's text box


def test_planner_page_reads_a_config_named_on_the_hub_and_works_offline(hub_env, monkeypatch):
    """The Memory planner's 'Your own config' box takes a repo id: the config is fetched from the (local)
    Hub and the model joins the comparison; a bad name is refused before any request; with no route the
    page says so in one line and still plans the presets."""
    from apptest import assert_clean, open_page, unescaped

    at = open_page("app_pages/planner.py")
    at.text_input(key="planner.hub").input("fetchwiki/HuggingFaceTB-SmolLM3-3B").run()
    assert_clean(at)
    assert any("Read fetchwiki/HuggingFaceTB-SmolLM3-3B on the Hub" in s.value for s in at.success)
    models = at.multiselect(key="planner.models")
    assert "@config" in models.value and "your config: fetchwiki/HuggingFaceTB-SmolLM3-3B" in models.options
    assert {p for _, p in hub_env.requests} <= {
        f"/fetchwiki/HuggingFaceTB-SmolLM3-3B/resolve/main/{f}" for f in ("config.json", "model.safetensors.index.json")
    }
    at.text_input(key="planner.hub").input("not a repo").run()
    assert any("not a Hugging Face repo id" in unescaped(e.value) for e in at.error)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    at.text_input(key="planner.hub").input("org/offline-model").run()
    assert any(unescaped(w.value).startswith("Offline: the Hub mirror at") for w in at.warning)
    assert at.dataframe  # the presets are still planned
    monkeypatch.setenv("HF_ENDPOINT", hub_env.url)  # the Hub is back, but the same name is not fetched again on a
    hub_env.requests.clear()  # rerun: the failure is remembered until the name changes
    at.run()
    assert hub_env.requests == [] and any(unescaped(w.value).startswith("Offline:") for w in at.warning)
