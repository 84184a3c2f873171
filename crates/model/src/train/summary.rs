//! The Markdown summary of a run (`summary.md`).

use std::fmt::Write as _;

use super::records::FoldResult;
use super::{KeepEpoch, RunSpec, TrainMode};
use crate::data::Augmentation;
use adni_data::run_tables::SummaryRow;

/// The augmentation in words, for the summaries.
fn augmentation_words(a: &Augmentation) -> String {
    match (a.flip_lr, a.max_shift) {
        (false, 0) => "no augmentation".into(),
        (true, 0) => "left–right mirroring (p ½)".into(),
        (false, s) => format!("shifts of up to {s} voxels"),
        (true, s) => format!("left–right mirroring (p ½) and shifts of up to {s} voxels"),
    }
}

fn fmt_num(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { "n/a".into() }
}

/// What the SD column is over: the folds with a defined value of each metric (a fold whose
/// model diverged, NaN, is left out of its metric's mean and SD and is not counted).
fn sd_sentence(folds: usize, rows: &[SummaryRow]) -> String {
    if folds == 1 {
        return "One model, so no SD over folds.".into();
    }
    let short: Vec<String> =
        rows.iter().filter(|r| r.folds < folds).map(|r| format!("{} over {}", r.metric, r.folds)).collect();
    if short.is_empty() {
        format!("SD: sample standard deviation over the {folds} folds.")
    } else {
        format!(
            "SD: sample standard deviation over the {folds} folds with a defined value ({}: the others had none).",
            short.join(", ")
        )
    }
}

pub(super) fn summary_markdown(
    spec: &RunSpec,
    results: &[FoldResult],
    rows: &[SummaryRow],
    pooled_n: usize,
    patients: usize,
) -> String {
    let t = &spec.train;
    let mut md = String::new();
    let run = spec.dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let _ = writeln!(md, "# Training summary: `{run}`\n");
    let mode = match t.mode {
        TrainMode::Kfold => {
            format!("{}-fold cross-validation over patients (stratified by diagnosis, seeded)", spec.splits.len())
        }
        TrainMode::Holdout => "hold-out split (test patients held out, the rest trains)".to_owned(),
    };
    let keep = match t.keep {
        KeepEpoch::Last => format!("the model after the last epoch ({}), as in the paper", t.epochs),
        KeepEpoch::Best => format!(
            "the epoch with the best validation {} on an inner patient-level validation split \
             ({:.0} % of each class's training patients; never the test set)",
            t.selection_metric.as_str(),
            100.0 * t.validation_fraction
        ),
    };
    let grid = spec.source.model_grid().shape;
    let _ = writeln!(md, "- Mode: {mode}.");
    let _ = writeln!(md, "- Kept model: {keep}.");
    let _ = writeln!(
        md,
        "- Training: {} epochs, batch {}, Adam lr {} (β {}, {}; ε {}; weight decay {}), dropout {} on the flatten, \
         cross-entropy, {}, seed {}; input grid {}×{}×{} (downsampling {}).",
        t.epochs,
        t.batch_size,
        t.learning_rate,
        t.adam_beta1,
        t.adam_beta2,
        t.adam_epsilon,
        t.weight_decay,
        spec.network.dropout,
        augmentation_words(&t.augmentation()),
        t.seed,
        grid[0],
        grid[1],
        grid[2],
        spec.source.spec.downsample
    );
    let _ = writeln!(
        md,
        "- Metrics are those of each fold's kept model on that fold's test scans. `roc_auc` is the ROC AUC of \
         P(AD) (Mann–Whitney, ties ½); `auc_argmax_paper` is the original study's \"AUC\" computed on argmax \
         labels, which equals the balanced accuracy.\n"
    );
    let level = 100.0 * t.confidence_level;
    let single = results.len() == 1;
    let first = if single { "the model's test scans" } else { "mean ± SD over folds" };
    let _ = writeln!(md, "| metric | {first} | pooled test scans | {level:.0} % CI (bootstrap) |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in rows {
        let sd = if r.sd.is_finite() { format!(" ± {:.3}", r.sd) } else { String::new() };
        let ci = if r.ci_low.is_finite() {
            // Resamples in which the metric is undefined (one class only) are left out: say so.
            let fewer = if r.ci_resamples < t.bootstrap_samples {
                format!(" ({} of {} resamples)", r.ci_resamples, t.bootstrap_samples)
            } else {
                String::new()
            };
            format!("{} – {}{fewer}", fmt_num(r.ci_low), fmt_num(r.ci_high))
        } else {
            "n/a".into()
        };
        let _ = writeln!(md, "| {} | {}{sd} | {} | {ci} |", r.metric, fmt_num(r.mean), fmt_num(r.pooled));
    }
    let _ = writeln!(
        md,
        "\n{} Pooled: the metric on all folds' test predictions \
         together ({pooled_n} scans of {patients} patients). CI: percentile bootstrap of the pooled metric, \
         {} resamples of **patients** (a patient's scans stay together), seed derived from {}; a resample in \
         which a metric is undefined (e.g. one class only) is left out of that metric's interval, whose count \
         of resamples is then given.\n",
        sd_sentence(results.len(), rows),
        t.bootstrap_samples,
        t.seed
    );
    let _ = writeln!(
        md,
        "| fold | kept epoch | train scans | test scans | accuracy | balanced accuracy | ROC AUC | sensitivity | specificity |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let m = &r.test;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.split,
            r.kept_epoch,
            r.scans[0],
            m.n,
            fmt_num(m.accuracy),
            fmt_num(m.balanced_accuracy),
            fmt_num(m.roc_auc),
            fmt_num(m.sensitivity),
            fmt_num(m.specificity)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(metric: &'static str, folds: usize) -> SummaryRow {
        SummaryRow {
            metric,
            mean: 0.5,
            sd: 0.1,
            folds,
            pooled: 0.5,
            ci_low: 0.4,
            ci_high: 0.6,
            ci_resamples: 10,
            ci_level: 0.95,
        }
    }

    #[test]
    fn sd_sentence_counts_the_folds_behind_each_metric() {
        assert_eq!(sd_sentence(1, &[row("accuracy", 1)]), "One model, so no SD over folds.");
        assert_eq!(
            sd_sentence(5, &[row("accuracy", 5), row("roc_auc", 5)]),
            "SD: sample standard deviation over the 5 folds."
        );
        let s = sd_sentence(5, &[row("accuracy", 5), row("roc_auc", 4)]);
        assert!(s.contains("with a defined value (roc_auc over 4"), "{s}");
    }
}
