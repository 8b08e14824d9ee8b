"""The command line `python -m core.report` (core/report.py).

Proves that the CLI prints one JSON object with the documented keys and integer numbers (checked against
the accounting for Llama-3.1-70B), that every preset runs in text and JSON mode, that bad input (unknown
preset, bad --context/--batch/--kv-dtype, malformed, oversized or missing config files, a directory)
exits non-zero with a one-line message on stderr and no traceback, and that the CLI never imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.accounting import totals as acc
from core.model.presets import load_preset, preset_names
from core.report import main, report

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.report", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(stderr: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    assert len(lines[0]) > len("error: ") + 5


REQUIRED_KEYS = {
    "model",
    "attention",
    "layers",
    "context",
    "batch",
    "kv_dtype",
    "kv_cache_bytes",
    "kv_cache_bytes_by_layer_type",
    "params_total",
    "params_active",
    "decode_attention_flops_per_token",
    "decode_flops_per_token",
}


def test_json_for_llama_3_1_70b():
    r = cli("llama-3.1-70b", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    out = json.loads(r.stdout)  # the whole of stdout is one JSON value
    assert isinstance(out, dict)
    assert REQUIRED_KEYS <= out.keys()
    spec = load_preset("llama-3.1-70b")
    assert out["model"] == "llama-3.1-70b"
    assert out["attention"] == "GQA"
    assert out["layers"] == 80
    assert (out["context"], out["batch"], out["kv_dtype"]) == (4096, 1, "bf16")
    assert type(out["kv_cache_bytes"]) is int
    assert out["kv_cache_bytes"] == 4096 * 327_680
    assert out["kv_cache_bytes_by_layer_type"] == {"GQA": 4096 * 327_680}
    pc = acc.param_count(spec)
    assert (out["params_total"], out["params_active"]) == (pc.total, pc.active)
    cost = acc.decode_cost(spec, 4096)
    assert out["decode_attention_flops_per_token"] == cost.attention_core_flops
    assert out["decode_flops_per_token"] == cost.model_flops
    for key in ("params_total", "params_active", "decode_attention_flops_per_token", "decode_flops_per_token"):
        assert type(out[key]) is int, key


def test_options_change_the_numbers():
    r = cli("deepseek-v3", "--json", "--context", "1000", "--batch", "3", "--kv-dtype", "fp32")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["context"], out["batch"], out["kv_dtype"]) == (1000, 3, "fp32")
    assert out["kv_cache_bytes"] == 3 * 1000 * 61 * (512 + 64) * 4
    r = cli("deepseek-v3", "--json", "--context", "10", "--layout", "materialised")
    assert json.loads(r.stdout)["kv_cache_bytes"] == 10 * 4_997_120


def test_text_mode_names_binary_units():
    r = cli("deepseek-v4-pro", "--context", "1048576")
    assert r.returncode == 0, r.stderr
    assert "deepseek-v4-pro" in r.stdout
    assert "9.62 GiB" in r.stdout
    assert "30 CSA" in r.stdout and "31 HCA" in r.stdout


def test_list_prints_the_presets():
    r = cli("--list")
    assert r.returncode == 0
    assert r.stdout.split() == preset_names()


def test_a_config_file_path_works(tmp_path):
    cfg = json.loads((ROOT / "assets" / "configs" / "mistral-7b.json").read_text())
    path = tmp_path / "my-model" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    r = cli(str(path), "--json", "--context", "8000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "my-model"
    assert out["kv_cache_bytes"] == 4096 * 131_072  # the window caps the cache


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_in_text_and_json(name, capsys):
    assert main([name]) == 0
    text = capsys.readouterr()
    assert name in text.out and "KV cache" in text.out and text.err == ""
    assert main([name, "--json", "--context", "131072"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert REQUIRED_KEYS <= out.keys()
    assert out["model"] == name
    assert sum(out["kv_cache_bytes_by_layer_type"].values()) == out["kv_cache_bytes"] > 0
    assert out == json.loads(json.dumps(report(load_preset(name), 131072)))


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "malformed": ("{ this is not json", "not valid JSON"),
        "list": ("[1, 2, 3]", "JSON object"),
        "missing": ('{"model_type": "llama"}', "hidden_size"),
        "absurd": (json.dumps({"hidden_size": 64, "num_hidden_layers": 1e12}), "num_hidden_layers"),
    }
    out = {}
    for name, (text, _) in files.items():
        p = tmp_path / f"{name}.json"
        p.write_text(text)
        out[name] = p
    big = tmp_path / "big.json"
    big.write_text('{"pad": "' + "x" * (2 << 20) + '"}')
    out["big"] = big
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    out["binary"] = binary
    return out


@pytest.mark.parametrize("kind", ["malformed", "list", "missing", "absurd", "big", "binary"])
def test_bad_config_file_exits_with_one_line(tmp_path, kind):
    r = cli(str(_bad_files(tmp_path)[kind]), "--json")
    assert r.returncode != 0
    assert r.stdout == ""
    assert_one_line_error(r.stderr)


@pytest.mark.parametrize(
    "args, words",
    [
        (["no-such-model"], "no-such-model"),
        (["llama-3.1-8b", "--context", "abc"], "context"),
        (["llama-3.1-8b", "--context", "0"], "context"),
        (["llama-3.1-8b", "--context", "-5"], "context"),
        (["llama-3.1-8b", "--context", "99999999999999999999"], "context"),
        (["llama-3.1-8b", "--batch", "0"], "batch"),
        (["llama-3.1-8b", "--kv-dtype", "fp12"], "kv-dtype"),
        (["llama-3.1-8b", "--layout", "paged"], "layout"),
        (["llama-3.1-8b", "--no-such-flag"], "no-such-flag"),
        ([], "preset"),
        (["/no/such/dir/config.json"], "no such file"),
    ],
)
def test_bad_arguments_exit_with_one_line(args, words):
    r = cli(*args)
    assert r.returncode != 0
    assert r.stdout == ""
    assert_one_line_error(r.stderr)
    assert words in r.stderr


def test_a_directory_is_refused(tmp_path):
    r = cli(str(tmp_path))
    assert r.returncode != 0
    assert_one_line_error(r.stderr)


def test_main_returns_2_on_bad_input(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_the_cli_never_imports_torch():
    code = (
        "import sys, core.report\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "assert core.report.main(['deepseek-v4-pro', '--json']) == 0\n"
        "assert core.report.main(['gemma-3-27b']) == 0\n"
        "assert 'torch' not in sys.modules, 'run'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_torch_check_can_fail():
    """Guards the test above: the same check does notice torch when it is imported."""
    code = "import sys, core.layers.attention\nassert 'torch' not in sys.modules\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0


# ----------------------------------------------------------------------------- the memory plan


def plan_of(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["plan"]


PLAN_KEYS = {
    "kv_budget_bytes_per_gpu", "weights_bytes_per_gpu", "num_blocks", "kv_cache_tokens", "max_concurrency",
    "max_context", "fits",
}  # fmt: skip


def test_no_planner_flag_no_plan(capsys):
    assert main(["llama-3.1-8b", "--json"]) == 0
    assert "plan" not in json.loads(capsys.readouterr().out)


def test_cli_reproduces_vllm_pr_20665(capsys):
    p = plan_of(
        capsys, "deepseek-v2-lite", "--tp", "2", "--pp", "2", "--kv-budget-gib", "12.1334", "--context", "1024",
        "--max-model-len", "1024",
    )  # fmt: skip
    assert PLAN_KEYS <= set(p)
    assert (p["num_blocks"], p["kv_cache_tokens"], f"{p['max_concurrency']:.2f}") == (50_487, 807_792, "788.86")
    assert (p["gpus"], p["tp"], p["pp"], p["dp"]) == (4, 2, 2, 1)
    assert p["pool_max_context"] == 50_486 * 16  # the null block is not usable
    assert p["max_context"] == p["max_model_len"] == 1024  # the log's max_model_len caps every request


def test_cli_reproduces_the_llama_8b_log(capsys):
    p = plan_of(capsys, "llama-3.1-8b", "--kv-budget-gib", "3.8125", "--context", "20000")
    assert (p["num_blocks"], p["kv_cache_tokens"], f"{p['max_concurrency']:.2f}") == (1952, 31_232, "1.56")


def test_cli_deepseek_v3_tp8_and_dp_attention(capsys):
    common = ("deepseek-v3", "--gpu", "H200", "--gpus", "8", "--context", "131072", "--weights", "native")
    tp = plan_of(capsys, *common)
    dp = plan_of(capsys, *common, "--dp-attention")
    assert (tp["tp"], dp["tp"], dp["dp"], dp["ep"]) == (8, 1, 8, 8)
    assert f"{tp['max_concurrency']:.2f}" == "4.55" and f"{dp['max_concurrency']:.2f}" == "22.73"
    assert tp["fits"] and tp["exact"] and f"{tp['pooled_concurrency']:.2f}" == "37.15"
    assert dp["weights_bytes_per_gpu"] > tp["weights_bytes_per_gpu"]  # attention replicated on every GPU
    assert main(["deepseek-v3", "--gpu", "h200", "--gpus", "8", "--context", "131072"]) == 0
    out = capsys.readouterr().out
    assert "4.55x" in out and "37.15x" in out


def test_cli_block_size_and_batched_tokens(capsys):
    p64 = plan_of(capsys, "llama-3.1-8b", "--kv-budget-gib", "10", "--block-size", "64")
    p16 = plan_of(capsys, "llama-3.1-8b", "--kv-budget-gib", "10")
    assert p64["block_size"] == 64 and p64["num_blocks"] == p16["num_blocks"] // 4
    w1 = plan_of(
        capsys, "gemma-3-27b", "--kv-budget-gib", "40", "--context", "131072", "--max-num-batched-tokens", "1024"
    )
    w8 = plan_of(capsys, "gemma-3-27b", "--kv-budget-gib", "40", "--context", "131072")
    assert w1["max_concurrency"] > w8["max_concurrency"]  # a smaller in-flight window per sliding group


def test_cli_estimates_say_so(capsys):
    p = plan_of(capsys, "kimi-linear-48b-a3b", "--gpu", "H200", "--gpus", "4")
    assert not p["exact"] and p["num_blocks"] is None and p["kv_cache_tokens"] is None
    assert p["notes"][0].startswith("Estimate:")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--gpu", "H200", "--gpus", "6", "--tp", "4"], "does not divide 6 GPU"),
        (["--gpu", "H200", "--pp", "100"], "larger than the 80 layers"),
        (["--gpu", "H200", "--tp", "3"], "does not divide the query heads"),
        (["--gpu", "nope"], "unknown GPU"),
        (["--tp", "2"], "a plan needs"),
        (["--gpu", "H200", "--utilization", "1.5"], "--utilization"),
        (["--gpu", "H200", "--block-size", "0"], "block size"),
        (["--kv-budget-gib", "-1"], "--kv-budget-gib"),
    ],
)
def test_bad_plan_flags_exit_2_with_one_line(args, words):
    r = cli("llama-3.1-70b", *args)
    assert r.returncode == 2
    assert_one_line_error(r.stderr)
    assert words in r.stderr


def test_kv_only_config_plans_with_a_given_budget(tmp_path, capsys):
    cfg = json.loads((ROOT / "assets/configs/llama-3.1-8b.json").read_text())
    del cfg["vocab_size"], cfg["intermediate_size"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert plan_of(capsys, str(path), "--kv-budget-gib", "3.8125", "--context", "20000")["num_blocks"] == 1952
    r = cli(str(path), "--gpu", "H200")
    assert r.returncode == 2 and "parameters" in r.stderr


def test_llama_cpp_cache_types(capsys):
    assert main(["llama-3.1-70b", "--kv-dtype", "q8_0", "--json", "--context", "1000"]) == 0
    q8 = json.loads(capsys.readouterr().out)["kv_cache_bytes"]
    assert q8 == 1000 * 80 * 2 * 8 * (128 // 32) * 34  # blocks of 32 int8 + an fp16 scale
    assert main(["llama-3.1-70b", "--kv-dtype", "q4_0", "--json", "--context", "1000"]) == 0
    assert json.loads(capsys.readouterr().out)["kv_cache_bytes"] == q8 * 18 // 34


def test_cli_without_tp_takes_the_widest_that_splits(capsys):
    p = plan_of(capsys, "gpt2", "--gpu", "H200", "--gpus", "8")
    assert (p["tp"], p["dp"], p["parallelism"]) == (4, 2, "TP4 x DP2 replicas")
    r = cli("gpt2", "--gpu", "H200", "--gpus", "8", "--tp", "8")
    assert r.returncode == 2 and "does not divide the query heads (12)" in r.stderr


def test_a_plan_flag_at_its_default_still_asks_for_a_plan_and_unknown_memory_is_null(capsys):
    """--weights native or --block-size 16 are plan flags too; with only a KV budget the GPU's memory is not
    known, and the JSON says null rather than a made-up size."""
    p = plan_of(capsys, "llama-3.1-8b", "--kv-budget-gib", "3.8125", "--block-size", "16", "--weights", "native")
    assert p["gpu_memory_bytes"] is None and p["num_blocks"] == 1952
    r = cli("llama-3.1-8b", "--weights", "native")
    assert r.returncode == 2 and "a plan needs" in r.stderr


# ----------------------------------------------------------------------------- engines: the lines each one logs


def plan_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["plan"]


def test_sglang_plans_print_its_pool_line_from_the_memory_left_for_it(capsys):
    """vllm#21348's SGLang log (Qwen3-235B-A22B-FP8, `--tp 4 --mem-fraction-static 0.93`): "KV Cache is allocated.
    #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB" (tests/test_sglang.py). Given the rest memory that
    pool came from (367,404.5 tokens of 48,128 B), the CLI prints SGLang's lines; from a GPU name it is an
    estimate and says so."""
    rest = f"{367_404.5 * 48_128 / 2**30:.9f}"
    p = plan_json(
        capsys, "qwen3-235b-a22b", "--engine", "sglang", "--tp", "4", "--mem-fraction-static", "0.93",
        "--kv-budget-gib", rest, "--context", "32768",
    )  # fmt: skip
    assert p["engine"] == "sglang" and p["exact"] and p["cell_bytes"] == 48_128
    assert p["log_lines"] == [
        "KV Cache is allocated. #tokens: 367404, K size: 8.23 GB, V size: 8.23 GB",
        "max_total_num_tokens=367404",
    ]
    assert p["max_concurrency"] == round(367_404 / 32_768, 4)
    paged = plan_json(
        capsys, "qwen3-235b-a22b", "--engine", "sglang", "--tp", "4", "--mem-fraction-static", "0.93",
        "--kv-budget-gib", rest, "--page-size", "64",
    )  # fmt: skip
    assert paged["max_total_num_tokens"] == 367_404 // 64 * 64
    est = plan_json(capsys, "llama-3.1-70b", "--engine", "sglang", "--tp", "8", "--gpu", "H200",
                    "--mem-fraction-static", "0.9")  # fmt: skip
    assert not est["exact"] and est["notes"][0].startswith("Estimate:")


def test_vllm_plans_name_their_engine_and_print_its_log_lines(capsys):
    """vLLM PR 20665 (DeepSeek-V2-Lite, 4 GPUs as TP2 x PP2, 12.1334 GiB of KV memory per GPU, 1,024-token
    requests) logged 'GPU KV cache size: 807,792 tokens' and 'Maximum concurrency for 1,024 tokens per request:
    788.86x': plan.log_lines are those lines, with the engine and the release the planner follows."""
    p = plan_json(
        capsys, "deepseek-v2-lite", "--gpus", "4", "--tp", "2", "--pp", "2", "--kv-budget-gib", "12.1334",
        "--context", "1024", "--max-model-len", "1024",
    )  # fmt: skip
    assert (p["engine"], p["engine_version"]) == ("vllm", "0.33.0")
    assert p["log_lines"] == [
        "Available KV cache memory: 12.13 GiB",
        "GPU KV cache size: 807,792 tokens",
        "Maximum concurrency for 1,024 tokens per request: 788.86x",
    ]
    assert p["num_blocks"] == 50_487  # the existing keys stay


def test_vllm_log_lines_are_for_max_model_len_requests(capsys):
    """vLLM logs the concurrency of requests of max_model_len tokens, whatever --context asks."""
    p = plan_json(capsys, "llama-3.1-8b", "--gpu", "H100 SXM", "--context", "4096")
    assert p["log_lines"][-1].startswith(f"Maximum concurrency for {p['max_model_len']:,} tokens per request: ")
    assert p["max_model_len"] == 131_072 and p["max_concurrency"] > float(p["log_lines"][-1].split()[-1][:-1])


def test_llama_cpp_plans_print_the_lines_llama_cpp_logs(capsys):
    """llama-server -c 8192 -np 1 on a Llama-3-8B GGUF (32 layers, 8 kv heads of 128, the shape of the
    Llama-3.1-8B preset) logs 'llama_kv_cache: size = 1024.00 MiB (  8192 cells,  32 layers,  1/1 seqs), K (f16):
    512.00 MiB, V (f16):  512.00 MiB' (tests/test_llamacpp.py); the CLI prints it under plan.log_lines."""
    p = plan_json(capsys, "llama-3.1-8b", "--engine", "llama.cpp", "--ctx-size", "8192", "--parallel", "1")
    assert p["engine"] == "llama.cpp" and p["total_bytes"] == 1024 * 2**20
    assert p["log_lines"] == [
        "llama_kv_cache: size = 1024.00 MiB (  8192 cells,  32 layers,  1/1 seqs), K (f16):  512.00 MiB, "
        "V (f16):  512.00 MiB"
    ]


def test_llama_cpp_sliding_window_cache_adds_the_micro_batch_and_pads(capsys):
    """gpt-oss-120b at 131,072 cells with -ub 2048: the sliding layers keep pad256(128 + 2048) = 2,304 cells."""
    p = plan_json(
        capsys, "gpt-oss-120b", "--engine", "llama.cpp", "--ctx-size", "131072", "--ubatch-size", "2048",
        "--parallel", "1",
    )  # fmt: skip
    assert p["swa_kv_cache"]["cells"] == 2304 and p["kv_cache"]["cells"] == 131_072
    assert "llama_kv_cache_iswa: creating     SWA KV cache, size = 2304 cells" in p["log_lines"]
    q = plan_json(
        capsys, "gpt-oss-120b", "--engine", "llama.cpp", "--ctx-size", "131072", "--cache-type-k", "q8_0",
        "--cache-type-v", "q8_0",
    )  # fmt: skip
    assert q["kv_cache"]["k_bytes"] * 32 == p["kv_cache"]["k_bytes"] * 17  # 34 bytes per 32 values, not 64


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["llama-3.1-8b", "--engine", "sglang", "--gpu", "H200"], "needs --mem-fraction-static"),
        (["llama-3.1-8b", "--gpu", "H200", "--page-size", "4"], "--page-size: SGLang's flag; add --engine sglang"),
        (["qwen3-next-80b-a3b", "--engine", "sglang", "--gpu", "H200", "--mem-fraction-static", "0.9"], "Gated"),
        (["llama-3.1-8b", "--engine", "sglang", "--mem-fraction-static", "0.9"], "needs --gpu NAME or"),
        (
            [
                "llama-3.1-8b",
                "--engine",
                "sglang",
                "--mem-fraction-static",
                "0.9",
                "--kv-budget-gib",
                "1",
                "--kv-dtype",
                "int4",
            ],
            "SGLang's --kv-cache-dtype has no int4",
        ),  # fmt: skip
        (["llama-3.1-8b", "--ctx-size", "8192", "--gpu", "H200"], "--ctx-size: llama.cpp's flag; add --engine"),
        (["llama-3.1-8b", "--engine", "llama.cpp"], "needs --ctx-size"),
        (["deepseek-v3", "--engine", "llama.cpp", "--ctx-size", "4096"], "MLA layers are not covered"),
        (["llama-3.1-8b", "--engine", "llama.cpp", "--ctx-size", "0"], "n_ctx must be a whole number"),
        (
            [
                "llama-3.1-8b",
                "--engine",
                "llama.cpp",
                "--ctx-size",
                "64",
                "--cache-type-v",
                "q4_0",
                "--flash-attn",
                "off",
            ],
            "needs flash attention",
        ),  # fmt: skip
    ],
)
def test_engine_refusals_are_one_line(capsys, args, said):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err


def test_no_enable_prefix_caching_alone_asks_for_a_plan(capsys):
    p = plan_of(capsys, "qwen3.5-27b", "--kv-budget-gib", "20", "--no-enable-prefix-caching")
    assert p["hybrid"]["prefix_caching"] is False and p["hybrid"]["mamba_cache_mode"] == "none"
