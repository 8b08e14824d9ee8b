"""The Memory planner's inputs: the config a user uploads, pastes or brings in a link, and the controls that
make up the planner's state (models, context, dtypes, GPUs, parallelism, vLLM's settings)."""

import json

import streamlit as st

from app_pages import workshop_ui as ws
from app_pages.layout import table
from app_pages.resources import preset
from core.accounting import vllm_hybrid
from core.accounting.planner import auto_kv_dtype
from core.accounting.totals import LAYOUTS
from core.accounting.whatif import mla_layouts
from core.lab import quantlab
from core.model.dtypes import CACHE_DTYPES, LEGEND_WIDTH, WEIGHT_DTYPES, weights_label
from core.model.gpus import GPUS
from core.model.hf_config import from_hf_config, load_config_text
from core.model.presets import preset_names
from core.model.specs import MLASpec, ModelSpec
from core.view import glossary
from core.view.frames import CONTEXTS, dtype_legend
from core.view.text import plain, truncate
from core.view.theme import token_label
from core.view.urlcodec import MAX_LINK_CONFIG_CHARS, decode_config, encode_config
from core.view.urlstate import CUSTOM, MAX_TYPED_CONTEXT, PREFIX_CACHING, PlannerState
from core.workshop.ratelimit import RateLimiter

P = "planner."
AUTO_HELP = "auto: the model's dtype (float32 checkpoints downcast to bf16), as vLLM's kv_cache_dtype auto"
TP_HELP = (
    "Splits every layer over TP GPUs: query heads, projections and experts are divided. GQA key/value "
    "heads are divided too until there are fewer than TP of them, then each GPU keeps one copy. MLA's "
    "latent (and DSA's indexer key, V4's entries) is one vector shared by all heads: every TP GPU stores "
    "it whole."
)
PP_HELP = (
    "Splits the layers into PP stages on different GPUs (as vLLM's get_pp_indices does): each GPU stores "
    "only its stage's layers, weights and cache; the stage with the least room decides for all."
)
DPA_HELP = (
    "DeepSeek-style serving: the GPUs form DP groups that each serve their own requests with a whole "
    "copy of the attention and dense weights; routed experts are dealt out over all GPUs (expert "
    "parallelism). Without it, GPUs beyond TP x PP are whole replicas."
)
RELEASE_HELP = (
    "The vLLM release whose rules the plan follows, each read from that release's code: how hybrid models' "
    "state pages are aligned and counted, and how the log lines are printed ('GPU KV cache size' counts whole "
    "blocks per group up to 0.20.0, concurrency x max_model_len from 0.20.1)."
)
PC_LABELS = {"default": "release default", "on": "on", "off": "off"}
PC_HELP = (
    "vLLM's --enable-prefix-caching. For hybrid models (Qwen3-Next, Qwen3.5, Nemotron-H) it changes the pool: "
    "with it, state is checkpointed per block ('align' mode: 2 state blocks per request and group, 'all' mode: "
    "one per block). Off by default for hybrids until 0.25, on from 0.26."
)
MTP_HELP = (
    "Speculative tokens drafted by the model's own MTP layers (--speculative-config with method mtp): each adds "
    "a row to the convolution state and a state block per request and group; the draft's attention layers join "
    "the pool. Hybrid models with MTP layers only."
)
BLOCK_HELP = "Tokens per cache block: 16 is vLLM's default; FlashMLA needs 64, CUTLASS MLA 128."
BATCHED_HELP = (
    "vLLM's max_num_batched_tokens. 0: vllm serve's default for the GPU, 8,192 on GPUs of 70 GiB or more but "
    "the A100, else 2,048. A sliding-window layer must keep room for a window plus the tokens in flight."
)
MML_HELP = (
    "The longest request vLLM serves. 0: what it derives from the config (the smallest of its length keys, "
    "times a linear or dynamic RoPE factor); a larger value stops vLLM at start-up unless the next switch is on. "
    "vLLM also refuses to start when the cache cannot hold one request this long."
)
MNS_HELP = (
    "How many requests vLLM's scheduler runs at once per engine. 0: vllm serve's default, 1,024 on GPUs of "
    "70 GiB or more (not the A100), else 256."
)
LONG_HELP = (
    "vLLM's environment switch that lets max_model_len exceed what the config allows (with a warning: "
    "positions past the trained length give wrong outputs unless RoPE scaling covers them)."
)
LAYOUT_HELP = (
    "latent: DeepSeek's absorbed cache (c_KV + rope key); materialised: per-head K and V, as HF's code "
    "caches them (the MHA of equal heads); fp8_ds_mla: vLLM's fp8 layout (an fp8 latent with an fp32 scale per "
    "128 values, a bf16 rope key)"
)


def layout_help(specs: dict[str, ModelSpec]) -> str:
    """The layout box's help with each layout's bytes per token per layer for every picked model with MLA."""
    lines = []
    for m, spec in specs.items():
        mla = [a for a in spec.attention if isinstance(a, MLASpec)]
        if mla:
            costs = ", ".join(
                f"{c.layout if c.layout == 'fp8_ds_mla' else f'{c.layout} ({c.kv_dtype})'} {c.bytes:,} B"
                for c in mla_layouts(mla[0])
            )
            lines.append(f"{plain(m)}, per token per layer: {costs}")
    return LAYOUT_HELP + (". " + "; ".join(lines) if lines else "")


LEGEND_HELP = (
    ". Every cache dtype side by side, with its bits, block and scales: 'Cache dtypes compared', below the controls."
)


def dtype_legend_expander(auto: dict[str, str]) -> None:
    """Every option of the cache dtype box in one table, priced by the accounting's own bytes per vector."""
    with st.expander("Cache dtypes compared"):
        table(dtype_legend(auto))
        st.caption(
            f"Bytes and bits of one stored vector of {LEGEND_WIDTH} values (one key head of most models here), "
            "from the same table the cache's bytes are computed with: a format with a scale per block adds its "
            "scale bytes once per block, TurboQuant's norm once per vector, so a wider vector (an MLA latent) "
            "spreads the norm thinner. The Quantized caches page measures "
            f"{', '.join(quantlab.shared_with_planner().values())} on real keys and values under the same names."
        )


HUB_HELP = (
    "The server fetches the repo's config.json from the Hub (or the mirror its operator set), nothing else; "
    "without a route it says so and the rest of the page works. The command line's --hub also plans the "
    "weights from the checkpoint's own size."
)
HUB_FETCHES = RateLimiter(20, 3600)  # fetches of names not seen before, per visitor and hour


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Fetching the config from the Hub...")
def _hub_config(repo: str) -> str:
    """The repo's config.json as text (core.model.hub.fetch into a throwaway folder: the server keeps no
    stranger's files); ValueError and HubUnavailable propagate, and are not cached."""
    import tempfile

    from core.model import hub

    with tempfile.TemporaryDirectory() as d:
        return json.dumps(hub.fetch(repo, cache_dir=d).config)


def hub_config_text(repo: str) -> tuple[str, str]:
    """(config text, source) for a Hub repo id, or ("", "") after saying why not: a bad name, too many fetches,
    no route to the Hub."""
    from core.model import hub

    ss = st.session_state
    try:
        repo = hub.validate(repo)
    except ValueError as e:
        st.error(plain(e, 300))
        return "", ""
    if ss.get(P + "hub_last") != repo:  # a name fetched before is read from the cache: only new ones count
        wait = HUB_FETCHES.take(*ws.visitor())
        if wait:
            st.warning(f"Too many Hub fetches from here: try again in {wait / 60:.0f} min.")
            return "", ""
        ss[P + "hub_last"] = repo
    failed = ss.get(P + "hub_failed")
    if failed is None or failed[0] != repo:  # a failure is not cached by _hub_config: remember it, so a rerun
        try:  # of the page does not go back to the network (up to its timeout) for the same name
            return _hub_config(repo), f"{repo} on the Hub"
        except (hub.HubUnavailable, ValueError) as e:
            failed = ss[P + "hub_failed"] = (repo, isinstance(e, hub.HubUnavailable), str(e))
    (st.warning if failed[1] else st.error)(plain(failed[2], 300))
    return "", ""


def custom_config(link_token: str) -> tuple[ModelSpec | None, str]:
    """The user's own config.json (upload > paste > a Hub repo id > link), parsed; errors are shown, never raised.
    Returns the spec and the token that carries it in the link ('' when too long)."""
    with st.expander("Your own config.json", expanded=bool(link_token)):
        up = st.file_uploader("Upload a config.json (up to 1 MiB)", type=["json"], key=P + "upload")
        pasted = st.text_area("...or paste its text", key=P + "paste", height=120)
        repo = st.text_input(
            "...or name a model on the Hugging Face Hub (org/name)", key=P + "hub", max_chars=200,
            placeholder="Qwen/Qwen3-8B", help=HUB_HELP,
        ).strip()  # fmt: skip
        text, source = "", ""
        if up is not None:
            text, source = up.getvalue(), truncate(up.name, 80)
        elif pasted.strip():
            text, source = pasted, "the pasted config"
        elif repo:
            text, source = hub_config_text(repo)
            if not source:
                return None, ""
        elif link_token:
            try:
                text, source = decode_config(link_token), "the config in the link"
            except ValueError as e:
                st.error(f"{plain(e, 400)}.")
        if not source:
            return None, ""
        try:  # decoding, size, depth, JSON: every problem is one sentence naming the source
            cfg = load_config_text(text, source)
            name = repo if source == f"{repo} on the Hub" else cfg.get("_name_or_path") or cfg.get("model_type")
            spec = from_hf_config(cfg, name=str(name or "your model"))
        except ValueError as e:
            msg = str(e)
            msg = msg if msg.startswith(source) else f"{source}: {msg}"
            st.error(plain(msg[:1].upper() + msg[1:], 400))
            return None, ""
        st.success(
            f"Read {plain(source)}: {plain(spec.model_type, 60)}, {spec.n_layers} layers, "
            f"attention {plain(spec.design)}."
        )
        token = encode_config(json.dumps(cfg, separators=(",", ":")))
        if len(token) > MAX_LINK_CONFIG_CHARS:
            st.info(f"This config is {len(token):,} characters encoded, too long for a link: share the file too.")
            token = ""
        return spec, token


def sync_slider() -> None:
    st.session_state[P + "context"] = st.session_state[P + "context_log"]


def sync_number() -> None:
    st.session_state[P + "context_log"] = min(CONTEXTS, key=lambda n: abs(n - st.session_state[P + "context"]))


def controls(custom: ModelSpec | None, token: str) -> PlannerState:
    ss = st.session_state
    options = preset_names() + ([CUSTOM] if custom else [])
    if custom and CUSTOM not in ss[P + "models"] and not ss.get(P + "custom_added") and len(ss[P + "models"]) < 4:
        ss[P + "models"] = [*ss[P + "models"], CUSTOM]  # a newly read config joins the comparison once
        ss[P + "custom_added"] = True
    if not custom:
        ss[P + "custom_added"] = False  # a config read again later joins again
    ss[P + "models"] = [m for m in ss[P + "models"] if m in options]

    def label(m: str) -> str:
        return f"your config: {custom.name}" if m == CUSTOM and custom else m

    st.multiselect("Models (up to four)", options, key=P + "models", max_selections=4, format_func=label)
    a, b, c = st.columns([3, 1, 1])
    a.select_slider(
        "Context (tokens, log scale)",
        CONTEXTS,
        key=P + "context_log",
        format_func=token_label,
        on_change=sync_slider,
        help=glossary.tip("context"),
    )
    b.number_input("Exact context (tokens)", 1, MAX_TYPED_CONTEXT, key=P + "context", on_change=sync_number)
    c.number_input("Concurrent requests", 1, 65_536, key=P + "batch", help=glossary.tip("concurrency"))
    c1, c2, c3 = st.columns(3)
    kv = ss[P + "kv_dtype"]
    c1.selectbox(
        "Cache dtype",
        ["auto", *CACHE_DTYPES],
        key=P + "kv_dtype",
        help=(AUTO_HELP if kv == "auto" else CACHE_DTYPES[kv].description) + LEGEND_HELP,
    )
    released = {
        label(m): weights_label("native", (custom if m == CUSTOM else preset(m)).native_weights)
        for m in ss[P + "models"]
    }

    def weights(w: str) -> str:  # the URL keeps "native"; the label says what it is for the models picked
        if w != "native":
            return w
        return next(iter(released.values())) if len(set(released.values())) == 1 else "released (each model's own)"

    c2.selectbox(
        "Weights",
        ["native", *WEIGHT_DTYPES],
        key=P + "weight_dtype",
        format_func=weights,
        help="native: as released, from each config: " + "; ".join(f"{plain(m)}: {w}" for m, w in released.items()),
    )
    picked = {label(m): custom if m == CUSTOM else preset(m) for m in ss[P + "models"]}
    c3.selectbox("MLA cache layout", list(LAYOUTS), key=P + "layout", help=layout_help(picked))
    g1, g2, g3, g4 = st.columns(4)
    gpu = g1.selectbox("GPU", [*GPUS, "custom"], key=P + "gpu", help=glossary.tip("GPU"))
    g2.number_input("GPUs", 1, 1024, key=P + "n_gpus")
    g3.slider("Memory the engine may use (%)", 5, 100, key=P + "utilization")
    g4.number_input(
        "Reserved per GPU (GiB)", 0.0, 1000.0, step=0.5, key=P + "reserved_gib",
        help="activations, CUDA graphs, buffers: vLLM measures this at start-up by profiling",
    )  # fmt: skip
    if gpu in GPUS:
        st.caption(
            f"{gpu}: {GPUS[gpu].describe_memory()}. The plan starts from the datasheet figure; vLLM starts from the "
            "reported one and subtracts, besides the weights, its non-torch memory (NCCL, CUDA graphs) and the "
            "activation peak of a profiling run: several GiB together, which *Reserved per GPU* stands for."
        )
    if gpu == "custom":
        h1, h2, _ = st.columns([1, 1, 2])
        h1.number_input("Memory per GPU (GB, decimal)", 1.0, 10_000.0, key=P + "memory_gb")
        h2.number_input("Bandwidth per GPU (TB/s)", 0.01, 1000.0, key=P + "bandwidth_tb_s")
    p1, p2, p3 = st.columns(3)
    p1.number_input("Tensor parallel (TP, 0: every GPU of a stage)", 0, 1024, key=P + "tp", help=TP_HELP)
    p2.number_input("Pipeline parallel (PP)", 1, 64, key=P + "pp", help=PP_HELP)
    p3.toggle("DP attention, experts over all GPUs", key=P + "dp_attention", help=DPA_HELP)
    v1, v2, v3 = st.columns(3)
    v1.selectbox("Block size (tokens)", [16, 32, 64, 128], key=P + "block_size", help=BLOCK_HELP)
    v2.number_input(
        "max_num_batched_tokens (0: vLLM's default)", 0, 1 << 20, key=P + "batched_tokens", help=BATCHED_HELP
    )
    v3.number_input(
        "KV memory per GPU (GiB, 0: from the memory)", 0.0, 100_000.0, step=1.0, key=P + "kv_budget_gib",
        help="vLLM logs it as 'Available KV cache memory'; set it to reproduce a log",
    )  # fmt: skip
    w1, w2, w3 = st.columns(3)
    w1.number_input("max_model_len (0: the config's)", 0, 1 << 30, key=P + "max_model_len", help=MML_HELP)
    w2.number_input("max_num_seqs (0: vLLM's default)", 0, 1 << 20, key=P + "max_num_seqs", help=MNS_HELP)
    w3.toggle("VLLM_ALLOW_LONG_MAX_MODEL_LEN", key=P + "allow_long", help=LONG_HELP)
    x1, x2, x3 = st.columns(3)
    x1.selectbox("vLLM release", list(vllm_hybrid.VERSIONS), key=P + "vllm_version", help=RELEASE_HELP)
    x2.selectbox(
        "Prefix caching", list(PREFIX_CACHING), key=P + "prefix_caching", format_func=PC_LABELS.get, help=PC_HELP
    )
    x3.number_input("MTP draft tokens (hybrids)", 0, 16, key=P + "mtp_tokens", help=MTP_HELP)
    dtype_legend_expander({m: auto_kv_dtype(spec) for m, spec in picked.items()})
    values = {f: ss[P + f] for f in PlannerState.__dataclass_fields__ if f not in ("notices", "config")}
    values["models"] = tuple(values["models"])
    return PlannerState(**values, config=token if CUSTOM in values["models"] else "")
