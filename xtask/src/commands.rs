//! What every command shares: the folder lock, finding and loading a config, the cohort of a
//! config and the progress bar. The data commands are in `data_cmd.rs`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use adni_data::cohort::{Cohort, build_cohort};
use adni_data::table::read_adni_table;

use crate::config::{ProjectConfig, resolve, workspace_root};

/// Locks a results folder for this process (see [`adni_data::lock`]): a second run writing into
/// the same folder, a folder above or one inside it stops here with a message naming the holder.
pub fn lock_folder(dir: &Path) -> Result<adni_data::lock::FolderLock> {
    let command = std::env::args().map(|a| if a.contains(' ') { format!("{a:?}") } else { a }).collect::<Vec<_>>();
    Ok(adni_data::lock::FolderLock::acquire(dir, &command.join(" "))?)
}

/// Finds a config given on the command line: as given (relative to the current folder), else
/// relative to the project root, else in the project's `configs/` folder, where the `.toml`
/// may be left out: `--config configs/cv5.toml`, `--config cv5.toml` and `--config cv5` all work
/// from any folder. When nothing is found, the error lists the configs that exist.
pub fn find_config(path: &Path) -> Result<PathBuf> {
    find_config_in(&workspace_root(), path)
}

/// [`find_config`] against a given project root.
pub fn find_config_in(root: &Path, path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        bail!(
            "--config {} is a folder, expected a config file (TOML)\n{}",
            path.display(),
            configs_listing(root, path).1
        );
    }
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let mut candidates = Vec::new();
    if path.is_relative() {
        candidates.push(root.join(path));
        candidates.push(root.join("configs").join(path));
        if path.extension().is_none() {
            candidates.push(root.join("configs").join(path).with_extension("toml"));
        }
    }
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let configs = root.join("configs");
    let (hint, listing) = configs_listing(root, path);
    bail!(
        "config file {} not found (also looked in {} and {}){hint}\n{listing}",
        path.display(),
        root.display(),
        configs.display()
    )
}

/// The "did you mean" hint for `given` and the line listing the `.toml` configs in
/// `<root>/configs`.
fn configs_listing(root: &Path, given: &Path) -> (String, String) {
    let configs = root.join("configs");
    let mut names: Vec<String> = std::fs::read_dir(&configs)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let given = given.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let hint = crate::config::closest(&given, names.iter().map(String::as_str))
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default();
    let listing = if names.is_empty() {
        format!("{} holds no .toml configs", configs.display())
    } else {
        format!("the configs in {} are: {}", configs.display(), names.join(", "))
    };
    (hint, listing)
}

pub(crate) fn load_config(path: &Path) -> Result<ProjectConfig> {
    ProjectConfig::load(&find_config(path)?)
}

/// Loads the config's table and builds the filtered cohort.
pub(crate) fn load_cohort(cfg: &ProjectConfig) -> Result<Cohort> {
    let table_path = resolve(&cfg.data.table);
    if !table_path.exists() {
        bail!(
            "metadata table {} not found; generate the default cohort with `cargo xtask prepare` \
             (or `cargo xtask synth --config …`), or set [data] table to your ADNI CSV",
            table_path.display()
        );
    }
    let table = read_adni_table(&table_path)?;
    let images = resolve(&cfg.data.images);
    if cfg.data.check_files && !images.is_dir() {
        bail!(
            "image folder {} not found; set [data] images (or --images) to the folder that holds <PTID>/<Visit>/…, \
             or switch the missing-file filter off (check_files = false / --no-file-check) to inspect the table alone",
            images.display()
        );
    }
    Ok(build_cohort(&table, &images, &cfg.data.filter()?)?)
}

/// A progress bar with ETA for `total` items.
pub fn progress_bar(total: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({elapsed} elapsed, ETA {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// Loads a config named on the command line (see [`find_config`]); for the other command modules.
pub fn load_config_file(path: &Path) -> Result<ProjectConfig> {
    load_config(path)
}

/// The cohort of a config: its table filtered against its image folder; for the other command
/// modules.
pub fn cohort_of(cfg: &ProjectConfig) -> Result<Cohort> {
    let cohort = load_cohort(cfg)?;
    check_not_empty(cfg, &cohort)?;
    Ok(cohort)
}

/// Splitting, training and explaining need scans; say so before the split arithmetic does.
pub(crate) fn check_not_empty(cfg: &ProjectConfig, cohort: &Cohort) -> Result<()> {
    if cohort.scans.is_empty() {
        bail!(
            "the cohort is empty: no row of {} passes the filters (known-corrupt scans, missing files, \
             diagnoses {:?}); `cargo xtask cohort` shows what each filter removed",
            resolve(&cfg.data.table).display(),
            cfg.data.diagnoses.iter().map(|d| d.as_str()).collect::<Vec<_>>()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("configs")).unwrap();
        for n in ["cv5.toml", "quick.toml", "reproduce.toml"] {
            std::fs::write(d.path().join("configs").join(n), "").unwrap();
        }
        d
    }

    #[test]
    fn a_bare_config_name_is_found_in_configs_with_or_without_toml() {
        let d = project();
        let want = d.path().join("configs/cv5.toml");
        assert_eq!(find_config_in(d.path(), Path::new("cv5.toml")).unwrap(), want);
        assert_eq!(find_config_in(d.path(), Path::new("cv5")).unwrap(), want);
        assert_eq!(find_config_in(d.path(), Path::new("configs/cv5.toml")).unwrap(), want);
    }

    #[test]
    fn a_folder_given_as_the_config_is_named_a_folder_and_the_configs_are_listed() {
        let d = project();
        let e = find_config_in(d.path(), &d.path().join("configs")).unwrap_err().to_string();
        assert!(e.contains("configs is a folder, expected a config file (TOML)"), "{e}");
        assert!(e.contains("cv5.toml, quick.toml, reproduce.toml"), "{e}");
    }

    #[test]
    fn a_missing_config_lists_the_configs_that_exist_and_suggests_the_closest() {
        let d = project();
        let e = find_config_in(d.path(), Path::new("cv4.toml")).unwrap_err().to_string();
        assert!(e.contains("config file cv4.toml not found"), "{e}");
        assert!(e.contains("did you mean `cv5.toml`?"), "{e}");
        assert!(e.contains("cv5.toml, quick.toml, reproduce.toml"), "{e}");
    }
}
