#!/usr/bin/env python3
"""Regenerates projections/data/claude-pricing.json: the Claude rows of LiteLLM's
model_prices_and_context_window.json (MIT), the per-model price table ccusage prices from.

LiteLLM drops a model's row some time after Anthropic retires it, but an archive keeps the
sessions that used it, so the table is the union of the Claude rows of several pinned
LiteLLM releases, given in rising priority: a release's row replaces a row of the releases
before it whole. The releases are
read from the `litellm` wheels on PyPI (each ships the table as
litellm/model_prices_and_context_window_backup.json); only the standard library is used.

    python3 scripts/update-pricing.py               # the pinned releases below
    python3 scripts/update-pricing.py 1.82.0 1.95.0  # others, lowest priority first

1.95.0 comes last, so that its rows win: its prices are the ones ccusage 20.0.24's own
embedded table agrees with (the usage tests compare the two), where newer releases drop
fields Anthropic still bills (1.110.2 has neither Sonnet 4.5's long-context prices nor
Opus 4.6's fast-mode multiplier). 1.110.2 gives the models released since (Claude Code
2.1.329's default, claude-opus-5-5, among them), which that ccusage does not price; 1.82.0
and 1.60.0 the models retired before 1.95.0 (Claude 3 Sonnet and Claude 2 only in 1.60.0).
"""

import io
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

PINNED = ["1.60.0", "1.82.0", "1.110.2", "1.95.0"]
TABLE = "litellm/model_prices_and_context_window_backup.json"
OUT = pathlib.Path(__file__).resolve().parent.parent / "projections" / "data" / "claude-pricing.json"
# The fields cclog prices with, named as LiteLLM names them.
FIELDS = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_creation_input_token_cost",
    "cache_read_input_token_cost",
    "input_cost_per_token_above_200k_tokens",
    "output_cost_per_token_above_200k_tokens",
    "cache_creation_input_token_cost_above_200k_tokens",
    "cache_read_input_token_cost_above_200k_tokens",
]


def table_of(version, scratch):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(scratch), f"litellm=={version}"],
        check=True,
    )
    wheel = next(scratch.glob(f"litellm-{version}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        return json.load(io.TextIOWrapper(archive.open(TABLE), encoding="utf-8"))


def claude_rows(table):
    """Anthropic's own rows (not Bedrock's or Vertex's, which are priced per region)."""
    rows = {}
    for model, row in table.items():
        if not isinstance(row, dict) or row.get("litellm_provider") != "anthropic":
            continue
        if "claude" not in model or "/" in model or not isinstance(row.get("input_cost_per_token"), (int, float)):
            continue
        kept = {field: row[field] for field in FIELDS if isinstance(row.get(field), (int, float))}
        fast = (row.get("provider_specific_entry") or {}).get("fast")
        if isinstance(fast, (int, float)):
            kept["fast_multiplier"] = fast
        rows[model] = kept
    return rows


def main():
    versions = sys.argv[1:] or PINNED
    models = {}
    with tempfile.TemporaryDirectory() as scratch:
        for version in versions:
            models.update(claude_rows(table_of(version, pathlib.Path(scratch))))
    document = {
        "source": "LiteLLM model_prices_and_context_window.json (MIT), Claude rows of litellm "
        + " + ".join(versions)
        + ", a later release's row replacing an earlier one's; regenerate with scripts/update-pricing.py",
        "models": dict(sorted(models.items())),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{OUT}: {len(models)} models from litellm {', '.join(versions)}")


if __name__ == "__main__":
    main()
