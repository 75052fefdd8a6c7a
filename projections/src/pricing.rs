//! What API usage costs, in US dollars, from list prices per million tokens. Claude Code's
//! transcripts record tokens, not money, so cost is derived here, the same way for every
//! session and branch. Cache writes are billed at 1.25× the input price and cache reads at
//! 0.1×, as Anthropic lists them. Models are matched by family and generation; an unknown
//! model is priced as the family it names, and a model naming none as Sonnet.

use crate::entry::Usage;

/// `(name fragment, input $/MTok, output $/MTok)`, most specific first.
const PRICES: &[(&str, f64, f64)] = &[
    ("opus-4-1", 15.0, 75.0),
    ("opus-4-0", 15.0, 75.0),
    ("opus-4-2", 15.0, 75.0),
    ("claude-opus-4-2025", 15.0, 75.0),
    ("3-opus", 15.0, 75.0),
    ("opus", 5.0, 25.0),
    ("3-5-haiku", 0.8, 4.0),
    ("3-haiku", 0.25, 1.25),
    ("haiku", 1.0, 5.0),
    ("sonnet", 3.0, 15.0),
];

/// Dollars for `usage` on `model`.
pub fn cost_usd(model: &str, usage: &Usage) -> f64 {
    let (input, output) = PRICES
        .iter()
        .find(|(fragment, _, _)| model.contains(fragment))
        .map_or((3.0, 15.0), |(_, input, output)| (*input, *output));
    let per_token = |price: f64, tokens: u64| price * tokens as f64 / 1_000_000.0;
    per_token(input, usage.input_tokens)
        + per_token(output, usage.output_tokens)
        + per_token(input * 1.25, usage.cache_creation_input_tokens)
        + per_token(input * 0.1, usage.cache_read_input_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_cache_rates() {
        let usage = Usage { input_tokens: 1_000_000, output_tokens: 1_000_000, ..Default::default() };
        assert_eq!(cost_usd("claude-sonnet-4-5-20250929", &usage), 18.0);
        assert_eq!(cost_usd("claude-opus-4-1-20250805", &usage), 90.0);
        assert_eq!(cost_usd("claude-opus-4-5", &usage), 30.0);
        let cached =
            Usage { cache_creation_input_tokens: 1_000_000, cache_read_input_tokens: 1_000_000, ..Default::default() };
        assert!((cost_usd("claude-3-5-sonnet", &cached) - (3.75 + 0.3)).abs() < 1e-9);
    }
}
