//! Writing a synthetic cohort: images (truncated ones for the known-corrupt visits) and atrophy
//! maps, the ADNI table, the ground-truth tables, the atlas, the template brain mask
//! (`brain_mask.nii.gz`), the known-corrupt list (`known_corrupt.txt`), the resolved config and,
//! last, the manifest. Every file is written atomically.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::error::{DataError, Result};
use crate::fsutil::{write_bytes_atomically, write_csv_atomically};
use crate::layout::image_relpath_str;
use crate::table::{FieldStrength, write_adni_table};
use crate::volume::{ByteOrder, write_array, write_labels};

use super::SynthConfig;
use super::anatomy::Anatomy;
use super::cohort::{PatientPlan, ScanPlan};
use super::render::{Prepared, Rendered, planted, side_name};

/// The metadata table's file name.
pub const TABLE_FILE: &str = "ADNI_synth_1.5T.csv";
/// The folder holding the images in the ADNI layout.
pub const IMAGES_DIR: &str = "images";
/// The manifest, written last: a folder without it holds an incomplete generation.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The known-corrupt visits, one `PTID/Visit` a line (sorted; empty when there are none).
pub const KNOWN_CORRUPT_FILE: &str = "known_corrupt.txt";
/// The template brain mask (uint8 0/1 on the template grid).
pub const BRAIN_MASK_FILE: &str = "brain_mask.nii.gz";
/// Bytes of the uncompressed NIfTI kept in a corrupt image: the 348-byte header and 4096 more
/// (the extension flag and the start of the voxel data), far fewer than the header announces.
pub const CORRUPT_KEPT_BYTES: usize = 348 + 4096;
const CONFIG_FILE: &str = "synth_config.json";
/// The folder of the ground truth (atrophy maps, tables, atlas).
pub const GROUND_TRUTH_DIR: &str = "ground_truth";
/// The ground truth's per-scan table, inside [`GROUND_TRUTH_DIR`].
pub const SCANS_FILE: &str = "scans.csv";
/// The atlas used (labels), inside [`GROUND_TRUTH_DIR`].
pub const ATLAS_FILE: &str = "atlas.nii.gz";
/// The atlas's label table (`label,name,pair_name,hemisphere`), inside [`GROUND_TRUTH_DIR`].
pub const ATLAS_LABELS_FILE: &str = "atlas_labels.csv";

/// A file of the output, relative to the output folder (always `/`-separated), and its size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) struct WrittenFile {
    pub path: String,
    pub bytes: u64,
}

/// The files written so far.
pub(crate) struct FileList {
    root: PathBuf,
    files: Vec<WrittenFile>,
}

impl FileList {
    pub fn new(root: &Path) -> FileList {
        FileList { root: root.to_path_buf(), files: Vec::new() }
    }

    pub fn push(&mut self, f: WrittenFile) {
        self.files.push(f);
    }

    fn record(&mut self, rel: &str) -> Result<()> {
        let f = record(&self.root, rel)?;
        self.files.push(f);
        Ok(())
    }
}

fn record(root: &Path, rel: &str) -> Result<WrittenFile> {
    let path = root.join(rel);
    let bytes = fs::metadata(&path).map_err(|e| DataError::io(&path, e))?.len();
    Ok(WrittenFile { path: rel.to_string(), bytes })
}

fn invalid_out(out_dir: &Path, message: String) -> DataError {
    DataError::Invalid { key: "out_dir".into(), message: format!("{}: {message}", out_dir.display()) }
}

/// Names the generator writes at the top of the output folder, plus the TOML configs the CLI
/// puts there: the runner's resolved config (`cargo xtask synth` writes it after generating;
/// it stays behind when a regeneration is interrupted, so it must not make the folder look
/// foreign) and an older `synth_config.toml`.
const OWN_NAMES: [&str; 9] = [
    MANIFEST_FILE,
    CONFIG_FILE,
    TABLE_FILE,
    KNOWN_CORRUPT_FILE,
    BRAIN_MASK_FILE,
    IMAGES_DIR,
    GROUND_TRUTH_DIR,
    crate::run_layout::RESOLVED_CONFIG_FILE,
    "synth_config.toml",
];

/// Makes `out_dir` ready: created if absent. A folder that holds a previous generation (a
/// manifest or a generator config) or only the generator's own names (what an interrupted
/// generation leaves: say the runner's `resolved_config.toml` and part of `images/`) is cleared
/// of the generator's files, the manifest first (a `synth_config.toml` and any other file stay;
/// the resolved config goes, as it describes the cohort being replaced); any other non-empty
/// folder is refused, naming what to move away, so that nothing of the user's is deleted.
pub(crate) fn prepare_out_dir(out_dir: &Path) -> Result<()> {
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(invalid_out(out_dir, "exists and is not a folder, expected a folder for the cohort".into()));
    }
    fs::create_dir_all(out_dir).map_err(|e| DataError::io(out_dir, e))?;
    let mut foreign = Vec::new();
    let mut temporary = Vec::new();
    for entry in fs::read_dir(out_dir).map_err(|e| DataError::io(out_dir, e))? {
        let entry = entry.map_err(|e| DataError::io(out_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") {
            temporary.push(entry.path());
        } else if name == crate::lock::LOCK_FILE {
            // The generating process's own lock (`crate::lock`), not a foreign file.
        } else if !OWN_NAMES.contains(&name.as_str()) {
            foreign.push(name);
        }
    }
    let previous = out_dir.join(MANIFEST_FILE).exists() || out_dir.join(CONFIG_FILE).exists();
    if !foreign.is_empty() && !previous {
        foreign.sort();
        return Err(invalid_out(
            out_dir,
            format!(
                "is not empty ({}) and holds no synthetic cohort (no {MANIFEST_FILE} or {CONFIG_FILE}), expected an \
                 empty or new folder; move or delete {} (nothing here is deleted for you), or set [synth] out_dir \
                 to another folder",
                foreign.join(", "),
                if foreign.len() == 1 { "that entry" } else { "those entries" }
            ),
        ));
    }
    let own_files = [
        MANIFEST_FILE,
        TABLE_FILE,
        CONFIG_FILE,
        KNOWN_CORRUPT_FILE,
        BRAIN_MASK_FILE,
        crate::run_layout::RESOLVED_CONFIG_FILE,
    ];
    for f in own_files.map(|n| out_dir.join(n)).into_iter().chain(temporary) {
        if f.is_file() {
            fs::remove_file(&f).map_err(|e| DataError::io(&f, e))?;
        }
    }
    for d in [IMAGES_DIR, GROUND_TRUTH_DIR] {
        let d = out_dir.join(d);
        if d.is_dir() {
            fs::remove_dir_all(&d).map_err(|e| DataError::io(&d, e))?;
        }
    }
    Ok(())
}

/// Writes the resolved config as JSON (the CLI writes its TOML beside it).
pub(crate) fn write_config(out_dir: &Path, cfg: &SynthConfig, files: &mut FileList) -> Result<()> {
    let path = out_dir.join(CONFIG_FILE);
    let mut bytes = serde_json::to_vec_pretty(cfg)
        .map_err(|e| DataError::Invalid { key: "config".into(), message: format!("cannot serialise: {e}") })?;
    bytes.push(b'\n');
    write_bytes_atomically(&path, &bytes)?;
    files.record(CONFIG_FILE)
}

fn image_rel(scan: &ScanPlan) -> String {
    format!("{IMAGES_DIR}/{}", image_relpath_str(&scan.record))
}

fn atrophy_rel(scan: &ScanPlan) -> String {
    format!("{GROUND_TRUTH_DIR}/atrophy/{}_atrophy.nii.gz", scan.record.image_id)
}

/// Writes the template brain mask as uint8 0/1 on the template grid.
pub(crate) fn write_brain_mask(out_dir: &Path, anatomy: &Anatomy, files: &mut FileList) -> Result<()> {
    let mask = anatomy.brain_mask.mapv(|m| u8::from(m > 0.5));
    write_array(&out_dir.join(BRAIN_MASK_FILE), &mask, &anatomy.t1.affine, ByteOrder::Little)?;
    files.record(BRAIN_MASK_FILE)
}

/// Writes the known-corrupt list, one `PTID/Visit` a line.
pub(crate) fn write_known_corrupt(out_dir: &Path, entries: &[String], files: &mut FileList) -> Result<()> {
    let text: String = entries.iter().map(|e| format!("{e}\n")).collect();
    write_bytes_atomically(&out_dir.join(KNOWN_CORRUPT_FILE), text.as_bytes())?;
    files.record(KNOWN_CORRUPT_FILE)
}

/// Replaces the NIfTI file at `path` (a `.nii.gz`) by a corrupt one: a valid gzip stream of the
/// first [`CORRUPT_KEPT_BYTES`] bytes of its uncompressed content (less, for a tiny file), so
/// that the header announces more voxel data than the file holds and reading it fails.
fn corrupt_in_place(path: &Path) -> Result<()> {
    let compressed = fs::read(path).map_err(|e| DataError::io(path, e))?;
    let mut head = Vec::with_capacity(CORRUPT_KEPT_BYTES + 1);
    flate2::read::MultiGzDecoder::new(compressed.as_slice())
        .take(CORRUPT_KEPT_BYTES as u64 + 1)
        .read_to_end(&mut head)
        .map_err(|e| DataError::io(path, e))?;
    // Always cut: a file no longer than the kept bytes loses its second half.
    let keep = if head.len() > CORRUPT_KEPT_BYTES { CORRUPT_KEPT_BYTES } else { head.len() / 2 };
    head.truncate(keep);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&head).map_err(|e| DataError::io(path, e))?;
    let bytes = gz.finish().map_err(|e| DataError::io(path, e))?;
    write_bytes_atomically(path, &bytes)
}

/// Writes one scan's image and atrophy map; the image of a corrupt scan is written in full,
/// then truncated (see [`corrupt_in_place`]). Its atrophy map is written as for any scan.
pub(crate) fn write_scan(out_dir: &Path, anatomy: &Anatomy, scan: &ScanPlan, r: &Rendered) -> Result<Vec<WrittenFile>> {
    let affine = anatomy.t1.affine;
    let mut out = Vec::with_capacity(2);
    for (rel, data, is_image) in [(image_rel(scan), &r.image, true), (atrophy_rel(scan), &r.atrophy, false)] {
        let path = out_dir.join(&rel);
        // Little-endian on every machine, so that the bytes do not depend on the platform.
        write_array(&path, data, &affine, ByteOrder::Little)?;
        if is_image && scan.corrupt {
            corrupt_in_place(&path)?;
        }
        out.push(record(out_dir, &rel)?);
    }
    Ok(out)
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Writes the ADNI table, the ground-truth tables and the atlas.
pub(crate) fn write_tables(
    out_dir: &Path,
    cfg: &SynthConfig,
    prep: &Prepared,
    anatomy: &Anatomy,
    patients: &[PatientPlan],
    files: &mut FileList,
) -> Result<()> {
    let rows: Vec<(&PatientPlan, &super::cohort::VisitPlan, &ScanPlan)> = patients
        .iter()
        .flat_map(|p| p.visits.iter().flat_map(move |v| v.scans.iter().map(move |s| (p, v, s))))
        .collect();

    let records: Vec<_> = rows.iter().map(|(_, _, s)| s.record.clone()).collect();
    write_adni_table(&out_dir.join(TABLE_FILE), &records, FieldStrength::T15)?;
    files.record(TABLE_FILE)?;

    // Per scan.
    let mut scans = ScanColumns::default();
    let mut regions = RegionColumns::default();
    for &(p, v, s) in &rows {
        let pl = planted(cfg, prep, p, v);
        let id = s.record.image_id;
        scans.image_id.push(id);
        scans.ptid.push(p.ptid.clone());
        scans.viscode.push(s.record.viscode.clone());
        scans.visit.push(s.record.visit.clone());
        scans.dx.push(s.record.dx.as_str().to_string());
        scans.group.push(p.group.as_str().to_string());
        scans.converter.push(yes_no(p.converter).to_string());
        scans.duplicate.push(yes_no(s.duplicate).to_string());
        scans.years.push(round6(v.years));
        scans.severity.push(round6(v.severity));
        scans.ageing.push(round6(v.ageing));
        let peak = pl.tissue_loss.iter().copied().fold(0.0, f64::max);
        scans.peak_loss.push(round6(peak));
        let widening = if pl.widening_mm.is_empty() {
            0.0
        } else {
            pl.widening_mm.iter().sum::<f64>() / pl.widening_mm.len() as f64
        };
        scans.widening.push(round6(widening));
        scans.diffuse.push(round6(pl.diffuse_loss));
        scans.written.push(yes_no(s.written).to_string());
        scans.corrupt.push(yes_no(s.corrupt).to_string());
        scans.image_path.push(if s.written { image_rel(s) } else { String::new() });
        scans.atrophy_path.push(if s.written { atrophy_rel(s) } else { String::new() });
        for (t, target) in prep.atrophy.iter().enumerate() {
            regions.push(id, &target.region, "tissue_loss", pl.tissue_loss[t], -pl.contraction_mm[t]);
        }
        for (t, target) in prep.ventricles.iter().enumerate() {
            regions.push(id, &target.region, "widening", 0.0, pl.widening_mm[t]);
        }
    }
    let gt = |name: &str| format!("{GROUND_TRUTH_DIR}/{name}");
    let mut df = scans.frame()?;
    write_csv_atomically(&out_dir.join(gt(SCANS_FILE)), &mut df)?;
    files.record(&gt(SCANS_FILE))?;
    let mut df = regions.frame()?;
    write_csv_atomically(&out_dir.join(gt("regions.csv")), &mut df)?;
    files.record(&gt("regions.csv"))?;

    // The atlas used.
    write_labels(&out_dir.join(gt(ATLAS_FILE)), &anatomy.atlas.labels, &anatomy.atlas.affine)?;
    files.record(&gt(ATLAS_FILE))?;
    let r = &anatomy.atlas.regions;
    let mut df = DataFrame::new(
        r.len(),
        vec![
            Column::new("label".into(), r.iter().map(|x| x.label).collect::<Vec<i32>>()),
            Column::new("name".into(), r.iter().map(|x| x.name.clone()).collect::<Vec<String>>()),
            Column::new("pair_name".into(), r.iter().map(|x| x.pair_name.clone()).collect::<Vec<String>>()),
            Column::new(
                "hemisphere".into(),
                r.iter().map(|x| side_name(x.hemisphere).to_string()).collect::<Vec<String>>(),
            ),
        ],
    )?;
    write_csv_atomically(&out_dir.join(gt(ATLAS_LABELS_FILE)), &mut df)?;
    files.record(&gt(ATLAS_LABELS_FILE))
}

#[derive(Default)]
struct ScanColumns {
    image_id: Vec<i64>,
    ptid: Vec<String>,
    viscode: Vec<String>,
    visit: Vec<String>,
    dx: Vec<String>,
    group: Vec<String>,
    converter: Vec<String>,
    duplicate: Vec<String>,
    years: Vec<f64>,
    severity: Vec<f64>,
    ageing: Vec<f64>,
    peak_loss: Vec<f64>,
    widening: Vec<f64>,
    diffuse: Vec<f64>,
    written: Vec<String>,
    corrupt: Vec<String>,
    image_path: Vec<String>,
    atrophy_path: Vec<String>,
}

impl ScanColumns {
    fn frame(self) -> Result<DataFrame> {
        let n = self.image_id.len();
        let s = |name: &str, v: Vec<String>| Column::new(name.into(), v);
        let f = |name: &str, v: Vec<f64>| Column::new(name.into(), v);
        Ok(DataFrame::new(
            n,
            vec![
                Column::new("Image.ID".into(), self.image_id),
                s("PTID", self.ptid),
                s("VISCODE", self.viscode),
                s("Visit", self.visit),
                s("DX", self.dx),
                s("group", self.group),
                s("converter", self.converter),
                s("duplicate", self.duplicate),
                f("years", self.years),
                f("severity", self.severity),
                f("ageing", self.ageing),
                f("peak_tissue_loss", self.peak_loss),
                f("ventricle_widening_mm", self.widening),
                f("diffuse_loss", self.diffuse),
                s("image_written", self.written),
                s("corrupt", self.corrupt),
                s("image_path", self.image_path),
                s("atrophy_path", self.atrophy_path),
            ],
        )?)
    }
}

#[derive(Default)]
struct RegionColumns {
    image_id: Vec<i64>,
    region: Vec<String>,
    hemisphere: Vec<String>,
    label: Vec<i32>,
    effect: Vec<String>,
    tissue_loss: Vec<f64>,
    shift_mm: Vec<f64>,
}

impl RegionColumns {
    fn push(&mut self, id: i64, region: &crate::atlas::Region, effect: &str, loss: f64, shift: f64) {
        self.image_id.push(id);
        self.region.push(region.pair_name.clone());
        self.hemisphere.push(side_name(region.hemisphere).to_string());
        self.label.push(region.label);
        self.effect.push(effect.to_string());
        self.tissue_loss.push(round6(loss));
        self.shift_mm.push(round6(shift));
    }

    fn frame(self) -> Result<DataFrame> {
        let n = self.image_id.len();
        Ok(DataFrame::new(
            n,
            vec![
                Column::new("Image.ID".into(), self.image_id),
                Column::new("region".into(), self.region),
                Column::new("hemisphere".into(), self.hemisphere),
                Column::new("label".into(), self.label),
                Column::new("effect".into(), self.effect),
                Column::new("tissue_loss".into(), self.tissue_loss),
                Column::new("shift_mm".into(), self.shift_mm),
            ],
        )?)
    }
}

/// Version of the output layout; bumped whenever the generator writes other files.
pub const FORMAT_VERSION: u32 = 2;

/// True when `out_dir` holds a complete cohort of this generator version made with exactly
/// `cfg`: the manifest exists with the current format version, the stored config equals `cfg`
/// byte for byte, and every file the manifest lists exists with its recorded size.
pub fn is_complete(out_dir: &Path, cfg: &SynthConfig) -> bool {
    #[derive(serde::Deserialize)]
    struct Listed {
        path: String,
        bytes: u64,
    }
    #[derive(serde::Deserialize)]
    struct Stored {
        format_version: u32,
        files: Vec<Listed>,
    }
    let Ok(text) = std::fs::read_to_string(out_dir.join(MANIFEST_FILE)) else { return false };
    let Ok(m) = serde_json::from_str::<Stored>(&text) else { return false };
    if m.format_version != FORMAT_VERSION {
        return false;
    }
    let Ok(mut expected) = serde_json::to_vec_pretty(cfg) else { return false };
    expected.push(b'\n');
    if std::fs::read(out_dir.join(CONFIG_FILE)).ok().as_deref() != Some(expected.as_slice()) {
        return false;
    }
    m.files.iter().all(|f| std::fs::metadata(out_dir.join(&f.path)).map(|md| md.len() == f.bytes).unwrap_or(false))
}

#[derive(Serialize)]
struct Manifest<'a> {
    generator: &'static str,
    format_version: u32,
    seed: u64,
    atlas: &'a str,
    grid_shape: [usize; 3],
    scans: usize,
    images_written: usize,
    /// The known-corrupt visits (`PTID/Visit`), as in `known_corrupt.txt`.
    known_corrupt: &'a [String],
    /// The template brain mask file.
    brain_mask: &'static str,
    files: &'a [WrittenFile],
}

/// Writes the manifest (every file with its size, sorted by path, and the known-corrupt list),
/// last.
pub(crate) fn write_manifest(
    out_dir: &Path,
    cfg: &SynthConfig,
    anatomy: &Anatomy,
    files: &FileList,
    known_corrupt: &[String],
    scans: usize,
    images_written: usize,
) -> Result<()> {
    let mut list = files.files.clone();
    list.sort();
    let m = Manifest {
        generator: "adni-data synth",
        format_version: FORMAT_VERSION,
        seed: cfg.seed,
        atlas: &anatomy.atlas.name,
        grid_shape: anatomy.grid().shape,
        scans,
        images_written,
        known_corrupt,
        brain_mask: BRAIN_MASK_FILE,
        files: &list,
    };
    let mut bytes = serde_json::to_vec_pretty(&m)
        .map_err(|e| DataError::Invalid { key: "manifest".into(), message: format!("cannot serialise: {e}") })?;
    bytes.push(b'\n');
    write_bytes_atomically(&out_dir.join(MANIFEST_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry of `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn what_an_interrupted_regeneration_leaves_is_the_generators_own_and_is_cleared() {
        // The manifest and the generator's config are removed first, so a regeneration killed
        // while it clears or rewrites the images leaves the runner's resolved config beside
        // part of the images and ground truth.
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("quick");
        fs::create_dir_all(out.join("images/002_S_0001/Screening")).unwrap();
        fs::create_dir_all(out.join("ground_truth/atrophy")).unwrap();
        fs::write(out.join(crate::run_layout::RESOLVED_CONFIG_FILE), "[synth]\nseed = 1\n").unwrap();
        fs::write(out.join("images/002_S_0001/Screening/x_Warped.nii.gz"), b"partial").unwrap();
        fs::write(out.join("ground_truth/atrophy/7_atrophy.nii.gz"), b"partial").unwrap();
        fs::write(out.join(crate::lock::LOCK_FILE), "pid = 1\n").unwrap();
        prepare_out_dir(&out).unwrap();
        assert_eq!(entries(&out), [crate::lock::LOCK_FILE], "the generator's files are cleared, the lock kept");
    }

    #[test]
    fn a_folder_with_foreign_files_is_refused_and_the_message_says_what_to_move() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("mine");
        fs::create_dir_all(out.join("images")).unwrap();
        fs::write(out.join(crate::run_layout::RESOLVED_CONFIG_FILE), "").unwrap();
        fs::write(out.join("thesis.tex"), "mine").unwrap();
        let e = prepare_out_dir(&out).unwrap_err().to_string();
        assert!(e.contains("is not empty (thesis.tex)"), "{e}");
        assert!(e.contains("move or delete that entry") && e.contains("[synth] out_dir"), "{e}");
        assert_eq!(
            entries(&out),
            ["images", crate::run_layout::RESOLVED_CONFIG_FILE, "thesis.tex"],
            "nothing is deleted from a refused folder"
        );
    }
}
