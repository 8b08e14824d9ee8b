"""KV Cache Lab engine: attention specs, config parsing, exact accounting and real layers.

Nothing in this package imports streamlit. The accounting path (specs, hf_config, accounting,
report) does not import torch either, so the CLI answers quickly; only the layers need torch.
"""

__version__ = "0.2.0"
