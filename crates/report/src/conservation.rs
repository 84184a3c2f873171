//! LRP's conservation, summarised: how much of the explained logit reached the input.
//!
//! Reads the rows `interpret` writes to `lrp_conservation.csv` (per scan and model: the target's
//! `logit` and the `relevance_sum` of the signed LRP map). The ratio Σ relevance / logit is 1 for
//! a network without biases; the rest is what the biases (folded BatchNorm shifts included) and
//! the ε stabilisers absorbed.

use polars::prelude::DataFrame;

use crate::Result;
use crate::tables::{column_f64, column_str};

/// The conservation of one model's maps.
#[derive(Debug, Clone, PartialEq)]
pub struct Conservation {
    /// `trained` or `random`.
    pub model: String,
    /// Maps with a non-zero logit (the ratio is undefined at 0).
    pub n: usize,
    /// Mean of Σ relevance / logit.
    pub mean_ratio: f64,
    /// Smallest ratio.
    pub min_ratio: f64,
    /// Largest ratio.
    pub max_ratio: f64,
}

/// Per model (in order of first appearance), the ratio Σ relevance / logit over its maps.
pub fn summarise(df: &DataFrame) -> Result<Vec<Conservation>> {
    const TABLE: &str = "lrp_conservation.csv";
    let model = column_str(df, TABLE, "model")?;
    let logit = column_f64(df, TABLE, "logit")?;
    let total = column_f64(df, TABLE, "relevance_sum")?;
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    for ((m, l), t) in model.iter().zip(&logit).zip(&total) {
        if *l == 0.0 || !l.is_finite() || !t.is_finite() {
            continue;
        }
        let ratio = t / l;
        match out.iter_mut().find(|(name, _)| name == m) {
            Some((_, v)) => v.push(ratio),
            None => out.push((m.clone(), vec![ratio])),
        }
    }
    Ok(out
        .into_iter()
        .map(|(model, r)| Conservation {
            model,
            n: r.len(),
            mean_ratio: r.iter().sum::<f64>() / r.len() as f64,
            min_ratio: r.iter().copied().fold(f64::INFINITY, f64::min),
            max_ratio: r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use polars::prelude::{Column, DataFrame};

    use super::*;

    #[test]
    fn ratios_per_model_skip_zero_logits() {
        let df = DataFrame::new(
            4,
            vec![
                Column::new("model".into(), ["trained", "trained", "random", "trained"]),
                Column::new("logit".into(), [2.0f32, 4.0, 1.0, 0.0]),
                Column::new("relevance_sum".into(), [1.0f32, 4.0, -0.5, 3.0]),
            ],
        )
        .unwrap();
        let s = summarise(&df).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].model.as_str(), s[0].n), ("trained", 2));
        assert!((s[0].mean_ratio - 0.75).abs() < 1e-12);
        assert_eq!((s[0].min_ratio, s[0].max_ratio), (0.5, 1.0));
        assert_eq!((s[1].model.as_str(), s[1].n, s[1].mean_ratio), ("random", 1, -0.5));
        // A missing column is an error naming the table.
        let e = summarise(&df.drop("logit").unwrap()).unwrap_err().to_string();
        assert!(e.contains("lrp_conservation.csv") && e.contains("logit"), "{e}");
    }
}
