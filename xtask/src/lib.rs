//! The runner's library: one module per command, each with a stage function that the thin
//! `main.rs` calls after mapping its arguments. Tests, benchmarks and fuzz targets reach the
//! stages (and the config parser) through this crate.

/// Prints a line to standard output; a closed pipe (`… | head`) ends the output quietly instead
/// of panicking. For every command module (defined before them).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

pub mod baselines_cmd;
pub mod bench_cmd;
pub mod commands;
pub mod config;
pub mod data_cmd;
pub mod fetch;
pub mod inputs;
pub mod interpret_cmd;
pub mod relevance_config;
pub mod report_cmd;
pub mod reproduce_cmd;
pub mod sanity_cmd;
pub mod slurm_cmd;
pub mod sweep_cmd;
pub mod train_cmd;
