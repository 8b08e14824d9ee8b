"""Run every config.json of the corpus (tests/data/configs) through the parser and record what happened.

    python -m scripts.config_corpus            # print the table (exact / refused and why)
    python -m scripts.config_corpus --write    # also rewrite tests/data/configs/outcomes.json

`tests/test_config_corpus.py` checks that every file still has its recorded outcome, so a parser change
that makes a config exact, or refuses one, shows up as a test failure until the outcomes are rewritten
(and the change is looked at). Over-refusal is measured here, not guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.accounting import totals as acc  # noqa: E402
from core.model.hf_config import from_hf_config, load_config_file  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "configs"
OUTCOMES = CORPUS / "outcomes.json"
CONTEXT = 32_768


def outcome(path: Path) -> dict:
    """{"outcome": "exact", "kv_bytes_32k": ..., "state_bytes": ...} or {"outcome": "refused", "reason": ...}."""
    try:
        spec = from_hf_config(load_config_file(path), name=path.stem)
    except ValueError as e:
        return {"outcome": "refused", "reason": str(e)}
    return {
        "outcome": "exact",
        "model_type": spec.model_type,
        "design": spec.design,
        "kv_bytes_32k": acc.kv_cache_bytes(spec, CONTEXT),
        "state_bytes": acc.state_bytes(spec),
    }


def why(reason: str) -> str:
    """A refusal's kind, for the summary table."""
    if "has no '" in reason:
        return "a required field is missing"
    if "neither reads nor knows" in reason:
        return "keys this engine does not read"
    return "a value this engine does not support"


def run() -> dict[str, dict]:
    return {p.name: outcome(p) for p in sorted(CORPUS.glob("*.json")) if p.name != OUTCOMES.name}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite tests/data/configs/outcomes.json")
    a = ap.parse_args(argv)
    results = run()
    for name, r in results.items():
        if r["outcome"] == "exact":
            print(f"exact    {name}: {r['design']}, {r['kv_bytes_32k']:,} B at {CONTEXT:,} tokens")
        else:
            print(f"refused  {name}: {r['reason'][:160]}")
    kinds = Counter("exact" if r["outcome"] == "exact" else f"refused: {why(r['reason'])}" for r in results.values())
    print(f"\n{len(results)} configs: " + ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    if a.write:
        OUTCOMES.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        print(f"wrote {OUTCOMES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
