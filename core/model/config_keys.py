"""Config keys known to change nothing a cache holds or its size, each with its reason.

`core.model.hf_config` accounts for every key of a config.json: a family's parser reads it, or it is
listed here. A key in neither place refuses the config, naming the key (an allowlist: a new spelling of a
per-layer schedule cannot pass silently). A key goes here only when, in every family that uses it, it
changes values (numerics, training, tokens, serving defaults) and never which tensors are cached, how
many, or their shapes. Keys that some family reads (a layout) may also be here when they are harmless
wherever they are *not* read; a parser that reads a key takes precedence.
"""

from __future__ import annotations

_TOKENS = "a token id or token text: changes which tokens, not what is cached"
_INIT = "initialisation of weights for training"
_DROPOUT = "dropout, a training-time regulariser; off at inference"
_NORM = "a normalisation's epsilon or kind: changes values, not shapes"
_ACT = "an activation function: changes values, not shapes"
_ROPE = "RoPE's base or scaling: changes the rotation's values, not the cached shapes"
_ROUTER = "a router or load-balancing setting for training or routing values; the expert count is read elsewhere"
_META = "bookkeeping of the file or the library that wrote it"
_SERVE = "a default for generation or serving, not a property of the cache"
_SCALE = "a scalar multiplier or soft cap applied to values"
_MM = "how media tokens enter the text (the vision/audio encoder's business): the cache per token is unchanged"

HARMLESS: dict[str, str] = {
    # bookkeeping of the file
    "_name_or_path": _META,
    "architectures": _META,
    "auto_map": _META,
    "transformers_version": _META,
    "_attn_implementation_autoset": _META,
    "_commit_hash": _META,
    "model_type": _META,
    # what transformers' PretrainedConfig writes into every file it saves in full
    "output_hidden_states": _META,
    "output_attentions": _META,
    "return_dict": _META,
    "torchscript": _META,
    "chunk_size_feed_forward": "feed-forward chunking to save activation memory in training: compute, not the cache",
    "is_encoder_decoder": "false for every decoder this engine reads; an encoder-decoder has other fields it refuses",
    "id2label": "labels of a classification head, unused by the decoder",
    "label2id": "labels of a classification head, unused by the decoder",
    "problem_type": "a classification head's loss, unused by the decoder",
    "tokenizer_class": _TOKENS,
    "prefix": _TOKENS,
    "sep_token_id": _TOKENS,
    "decoder_start_token_id": _TOKENS,
    "use_bfloat16": "a training-era dtype flag; the weights' dtype is read from torch_dtype / dtype",
    "tf_legacy_loss": _META,
    "pruned_heads": _META,
    "tie_encoder_decoder": _META,
    "cross_attention_hidden_size": "null for a decoder-only model",
    "add_cross_attention": "false for a decoder-only model",
    "finetuning_task": _META,
    "max_length": _SERVE,
    "min_length": _SERVE,
    "do_sample": _SERVE,
    "early_stopping": _SERVE,
    "num_beams": _SERVE,
    "num_beam_groups": _SERVE,
    "diversity_penalty": _SERVE,
    "temperature": _SERVE,
    "top_k": _SERVE,
    "top_p": _SERVE,
    "typical_p": _SERVE,
    "repetition_penalty": _SERVE,
    "length_penalty": _SERVE,
    "no_repeat_ngram_size": _SERVE,
    "encoder_no_repeat_ngram_size": _SERVE,
    "bad_words_ids": _SERVE,
    "num_return_sequences": _SERVE,
    "output_scores": _SERVE,
    "return_dict_in_generate": _SERVE,
    "forced_bos_token_id": _SERVE,
    "forced_eos_token_id": _SERVE,
    "remove_invalid_values": _SERVE,
    "exponential_decay_length_penalty": _SERVE,
    "suppress_tokens": _SERVE,
    "begin_suppress_tokens": _SERVE,
    # token ids and media tokens
    "bos_token_id": _TOKENS,
    "eos_token_id": _TOKENS,
    "pad_token_id": _TOKENS,
    "image_token_id": _TOKENS,
    "image_token_index": _TOKENS,
    "video_token_id": _TOKENS,
    "audio_token_id": _TOKENS,
    "boi_token_id": _TOKENS,
    "boi_token_index": _TOKENS,
    "eoi_token_id": _TOKENS,
    "eoi_token_index": _TOKENS,
    "boa_token_id": _TOKENS,
    "eoa_token_id": _TOKENS,
    "eoa_token_index": _TOKENS,
    "vision_start_token_id": _TOKENS,
    "vision_end_token_id": _TOKENS,
    "mm_tokens_per_image": _MM,
    "vision_soft_tokens_per_image": _MM,
    # training only
    "initializer_range": _INIT,
    "attention_dropout": _DROPOUT,
    "hidden_dropout": _DROPOUT,
    "attn_pdrop": _DROPOUT,
    "embd_pdrop": _DROPOUT,
    "resid_pdrop": _DROPOUT,
    "summary_first_dropout": _DROPOUT,
    "output_router_logits": _ROUTER,
    "router_aux_loss_coef": _ROUTER,
    "aux_loss_alpha": _ROUTER,
    "seq_aux": _ROUTER,
    "pretraining_tp": "the tensor-parallel degree used in pretraining (a numerics switch in HF's Llama), not a shape",
    "rescale_prenorm_residual": _INIT,
    # routing values (the expert counts and sizes are read by the MoE parsers)
    "norm_topk_prob": _ROUTER,
    "n_group": _ROUTER,
    "topk_group": _ROUTER,
    "num_expert_group": _ROUTER,
    "topk_method": _ROUTER,
    "scoring_func": _ROUTER,
    "routed_scaling_factor": _ROUTER,
    "use_grouped_topk": _ROUTER,
    "moe_renormalize": _ROUTER,
    "moe_router_activation_func": _ROUTER,
    "num_hash_layers": "DeepSeek V4's first layers route by a hash of the token id: routing, not a shape",
    "ep_size": "the expert-parallel degree the release was trained with; the serving layout is the user's choice",
    # numerics
    "rms_norm_eps": _NORM,
    "layer_norm_epsilon": _NORM,
    "layernorm_epsilon": _NORM,
    "norm_eps": _NORM,
    "use_qk_norm": "RMS norms on queries and keys: values, not shapes (a few parameters)",
    "hidden_act": _ACT,
    "hidden_activation": _ACT,
    "activation_function": _ACT,
    "mlp_hidden_act": _ACT,
    "swiglu_limit": "a clamp inside the SwiGLU: values only",
    "rope_theta": _ROPE,
    "rope_scaling": _ROPE,
    "rope_parameters": _ROPE,
    "compress_rope_theta": _ROPE,
    "no_rope_layers": "turns RoPE off on some layers (SmolLM3, Llama-4): the keys are cached in the same shape",
    "no_rope_layer_interval": "turns RoPE off on every n-th layer: the keys are cached in the same shape",
    "rope_interleave": "whether RoPE rotates interleaved or split channel pairs: values only",
    "indexer_rope_interleave": "whether the indexer's RoPE rotates interleaved or split pairs: values only",
    "moe_router_dtype": "the precision the router computes in: " + _ROUTER,
    "partial_rotary_factor": "RoPE on a fraction of each head's channels: the head width and cache are unchanged",
    "initial_context_length": "gpt-oss: the context YaRN scales from: " + _ROPE,
    "query_pre_attn_scalar": _SCALE,
    "attn_logit_softcapping": _SCALE,
    "final_logit_softcapping": _SCALE,
    "attention_value_scale": _SCALE,
    "scale_attn_weights": _SCALE,
    "scale_attn_by_inverse_layer_idx": _SCALE,
    "reorder_and_upcast_attn": "computes attention scores in fp32: numerics only",
    "residual_in_fp32": "keeps the residual stream in fp32 during the forward pass: activations, not the cache",
    "hc_eps": "an epsilon of DeepSeek V4's hyper-connection mixers (their parameters come from hc_mult)",
    "hc_sinkhorn_iters": "Sinkhorn iterations of DeepSeek V4's hyper-connection mixers: values only",
    "time_step_min": "Mamba's dt initialisation range: " + _INIT,
    "time_step_max": "Mamba's dt initialisation range: " + _INIT,
    "time_step_floor": "Mamba's dt initialisation floor: " + _INIT,
    "time_step_limit": "a clamp on Mamba's dt: values only",
    "time_step_rank": "Nemotron-H: unused by its Mamba-2 mixer (dt is one value per head)",
    "use_mamba_kernels": "picks fused or reference Mamba kernels: the same state either way",
    # serving defaults and context limits (the context is the user's choice)
    "use_cache": _SERVE,
    "cache_implementation": _SERVE,
    "num_logits_to_keep": _SERVE,
    "task_specific_params": _SERVE,
    "max_position_embeddings": "the longest context the model was trained for; the context is the user's choice",
    "model_max_length": "the longest context the model was trained for; the context is the user's choice",
    "n_ctx": "GPT-2's longest context (learned positions come from n_positions)",
    # heads that are not the decoder
    "summary_type": "GPT-2's sequence-classification head, unused by the decoder",
    "summary_use_proj": "GPT-2's sequence-classification head, unused by the decoder",
    "summary_proj_to_labels": "GPT-2's sequence-classification head, unused by the decoder",
    "summary_activation": "GPT-2's sequence-classification head, unused by the decoder",
    # multi-token prediction (the count is read for the note; the modules are not counted)
    "mtp_use_dedicated_embeddings": "weights of multi-token-prediction modules, which default serving does not run",
}
