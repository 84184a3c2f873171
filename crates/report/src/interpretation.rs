//! The tables of an interpretation run (`relevance/`, see [`RelevanceLayout`]): one row type per
//! table, collected while the maps are computed and written once at the end.
//!
//! | table | row |
//! |---|---|
//! | `scans.csv` | [`ScanRow`]: split, PTID, Image.ID, label, P(AD), predicted and explained class |
//! | `scan_regions.csv` | the scan's identifying columns, then [`crate::regions::region_scores`] |
//! | `ground_truth.csv` | [`GroundTruthRow`]: a map's [`GroundTruthScores`] (synthetic cohorts) |
//! | `lrp_conservation.csv` | [`ConservationRow`]: LRP's relevance sum against the logit |
//! | `index.csv` | [`IndexRow`]: one mean map (method, group, scans, file) |
//! | `timing.csv` | seconds per method and model |

use std::collections::BTreeMap;

use adni_data::atlas::Atlas;
use adni_data::fsutil::write_csv_atomically;
use adni_data::run_layout::RelevanceLayout;
use ndarray::ArrayView3;
use polars::prelude::{Column, DataFrame};

use crate::ground_truth::{CHANCE_COLUMN, GroundTruthScores};
use crate::tables::{column_str, read_csv};
use crate::{ReportError, Result};

/// The class names of the tables (label 1 is AD).
pub fn class_name(class: usize) -> &'static str {
    if class == 1 { "AD" } else { "CN" }
}

/// Which scan a row is about.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanId {
    /// The split whose model explained the scan (`holdout`, `fold1`, …).
    pub split: String,
    /// Patient id.
    pub ptid: String,
    /// Image id.
    pub image_id: i64,
    /// True class (1 = AD).
    pub label: usize,
}

/// A row of `scans.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanRow {
    /// The scan.
    pub scan: ScanId,
    /// The model's probability of AD.
    pub p_ad: f64,
    /// The predicted class.
    pub predicted: usize,
    /// The class whose logit the maps explain.
    pub target: usize,
}

/// A row of `ground_truth.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruthRow {
    /// Method name.
    pub method: &'static str,
    /// `trained` or `random` (the random-weights baseline).
    pub model: &'static str,
    /// Patient id.
    pub ptid: String,
    /// Image id.
    pub image_id: i64,
    /// The map's scores.
    pub scores: GroundTruthScores,
}

/// A row of `lrp_conservation.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConservationRow {
    /// Split of the model.
    pub split: String,
    /// Image id.
    pub image_id: i64,
    /// `trained` or `random`.
    pub model: &'static str,
    /// The explained logit.
    pub logit: f32,
    /// The sum of the input relevance.
    pub relevance_sum: f32,
}

/// A row of `index.csv`: one mean map.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// Method name.
    pub method: String,
    /// `AD`, `CN` or `all`.
    pub group: String,
    /// Scans averaged.
    pub n_scans: usize,
    /// The map, relative to the relevance folder ([`RelevanceLayout::mean_map_name`]).
    pub file: String,
}

/// Reads `index.csv`.
pub fn read_index(layout: &RelevanceLayout) -> Result<Vec<IndexRow>> {
    let path = layout.index();
    let df = read_csv(&path)?;
    let table = "index.csv";
    let (method, group, file) =
        (column_str(&df, table, "method")?, column_str(&df, table, "group")?, column_str(&df, table, "file")?);
    let n_scans = column_str(&df, table, "n_scans")?;
    let mut rows = Vec::with_capacity(method.len());
    for (i, (((method, group), file), n)) in method.into_iter().zip(group).zip(file).zip(n_scans).enumerate() {
        let n_scans = n.trim().parse().map_err(|_| {
            ReportError::column(table, "n_scans", format!("row {}: `{n}` is not a count of scans", i + 2))
        })?;
        rows.push(IndexRow { method, group, n_scans, file });
    }
    Ok(rows)
}

/// Everything an interpretation run tabulates, collected scan by scan.
#[derive(Debug, Default)]
pub struct InterpretationTables {
    scans: Vec<ScanRow>,
    regions: Vec<DataFrame>,
    ground_truth: Vec<GroundTruthRow>,
    conservation: Vec<ConservationRow>,
    index: Vec<IndexRow>,
    /// (method, model) → (maps, seconds).
    timing: BTreeMap<(usize, String), (String, usize, f64)>,
}

impl InterpretationTables {
    /// Empty tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// A scan's prediction.
    pub fn push_scan(&mut self, row: ScanRow) {
        self.scans.push(row);
    }

    /// The region scores of one scan's map of `method`.
    pub fn push_regions(&mut self, map: ArrayView3<f32>, atlas: &Atlas, method: &str, scan: &ScanId) -> Result<()> {
        let mut df = crate::regions::region_scores(map, atlas, true)?;
        let n = df.height();
        let front = DataFrame::new(
            n,
            vec![
                Column::new("method".into(), vec![method; n]),
                Column::new("split".into(), vec![scan.split.as_str(); n]),
                Column::new("PTID".into(), vec![scan.ptid.as_str(); n]),
                Column::new("Image.ID".into(), vec![scan.image_id; n]),
                Column::new("label".into(), vec![class_name(scan.label); n]),
            ],
        )?;
        df = front.hstack(df.columns())?;
        self.regions.push(df);
        Ok(())
    }

    /// A map's ground-truth scores.
    pub fn push_ground_truth(&mut self, row: GroundTruthRow) {
        self.ground_truth.push(row);
    }

    /// LRP's conservation on one scan.
    pub fn push_conservation(&mut self, row: ConservationRow) {
        self.conservation.push(row);
    }

    /// A mean map written to the folder.
    pub fn push_index(&mut self, row: IndexRow) {
        self.index.push(row);
    }

    /// `seconds` spent on one map of method `method` (its position in the run's method list
    /// `order`, which orders the timing table) and `model` (`trained` or `random`).
    pub fn add_time(&mut self, order: usize, method: &'static str, model: &'static str, seconds: f64) {
        let e = self.timing.entry((order, model.to_string())).or_insert((method.to_string(), 0, 0.0));
        e.1 += 1;
        e.2 += seconds;
    }

    /// (method, model, maps, seconds) in table order.
    pub fn timings(&self) -> impl Iterator<Item = (&str, &str, usize, f64)> + '_ {
        self.timing.iter().map(|((_, model), (method, n, s))| (method.as_str(), model.as_str(), *n, *s))
    }

    /// Writes every non-empty table into the folder (each atomically); `index.csv`,
    /// `scans.csv` and `timing.csv` always.
    pub fn write(&self, layout: &RelevanceLayout) -> Result<()> {
        write_csv_atomically(&layout.index(), &mut self.index_frame()?)?;
        write_csv_atomically(&layout.scans(), &mut self.scans_frame()?)?;
        if let Some(mut regions) = self.regions_frame()? {
            write_csv_atomically(&layout.scan_regions(), &mut regions)?;
        }
        if !self.ground_truth.is_empty() {
            write_csv_atomically(&layout.ground_truth(), &mut self.ground_truth_frame()?)?;
        }
        if !self.conservation.is_empty() {
            write_csv_atomically(&layout.lrp_conservation(), &mut self.conservation_frame()?)?;
        }
        write_csv_atomically(&layout.timing(), &mut self.timing_frame()?)?;
        Ok(())
    }

    fn scans_frame(&self) -> Result<DataFrame> {
        let r = &self.scans;
        Ok(DataFrame::new(
            r.len(),
            vec![
                Column::new("split".into(), r.iter().map(|r| r.scan.split.as_str()).collect::<Vec<_>>()),
                Column::new("PTID".into(), r.iter().map(|r| r.scan.ptid.as_str()).collect::<Vec<_>>()),
                Column::new("Image.ID".into(), r.iter().map(|r| r.scan.image_id).collect::<Vec<_>>()),
                Column::new("label".into(), r.iter().map(|r| class_name(r.scan.label)).collect::<Vec<_>>()),
                Column::new("p_ad".into(), r.iter().map(|r| r.p_ad).collect::<Vec<_>>()),
                Column::new("predicted".into(), r.iter().map(|r| class_name(r.predicted)).collect::<Vec<_>>()),
                Column::new("target_class".into(), r.iter().map(|r| r.target as i64).collect::<Vec<_>>()),
            ],
        )?)
    }

    fn regions_frame(&self) -> Result<Option<DataFrame>> {
        let mut iter = self.regions.iter();
        let Some(first) = iter.next() else { return Ok(None) };
        let mut all = first.clone();
        for f in iter {
            all.vstack_mut(f)?;
        }
        Ok(Some(all))
    }

    fn ground_truth_frame(&self) -> Result<DataFrame> {
        let r = &self.ground_truth;
        Ok(DataFrame::new(
            r.len(),
            vec![
                Column::new("method".into(), r.iter().map(|r| r.method).collect::<Vec<_>>()),
                Column::new("model".into(), r.iter().map(|r| r.model).collect::<Vec<_>>()),
                Column::new("PTID".into(), r.iter().map(|r| r.ptid.as_str()).collect::<Vec<_>>()),
                Column::new("Image.ID".into(), r.iter().map(|r| r.image_id).collect::<Vec<_>>()),
                Column::new("mass_accuracy".into(), r.iter().map(|r| r.scores.mass_accuracy).collect::<Vec<_>>()),
                Column::new("rank_accuracy".into(), r.iter().map(|r| r.scores.rank_accuracy).collect::<Vec<_>>()),
                Column::new("pointing_hit".into(), r.iter().map(|r| r.scores.pointing_hit).collect::<Vec<_>>()),
                Column::new("pointing_share".into(), r.iter().map(|r| r.scores.pointing_share).collect::<Vec<_>>()),
                Column::new(CHANCE_COLUMN.into(), r.iter().map(|r| r.scores.chance).collect::<Vec<_>>()),
            ],
        )?)
    }

    fn conservation_frame(&self) -> Result<DataFrame> {
        let r = &self.conservation;
        Ok(DataFrame::new(
            r.len(),
            vec![
                Column::new("split".into(), r.iter().map(|r| r.split.as_str()).collect::<Vec<_>>()),
                Column::new("Image.ID".into(), r.iter().map(|r| r.image_id).collect::<Vec<_>>()),
                Column::new("model".into(), r.iter().map(|r| r.model).collect::<Vec<_>>()),
                Column::new("logit".into(), r.iter().map(|r| r.logit).collect::<Vec<_>>()),
                Column::new("relevance_sum".into(), r.iter().map(|r| r.relevance_sum).collect::<Vec<_>>()),
            ],
        )?)
    }

    fn index_frame(&self) -> Result<DataFrame> {
        let r = &self.index;
        Ok(DataFrame::new(
            r.len(),
            vec![
                Column::new("method".into(), r.iter().map(|r| r.method.as_str()).collect::<Vec<_>>()),
                Column::new("group".into(), r.iter().map(|r| r.group.as_str()).collect::<Vec<_>>()),
                Column::new("n_scans".into(), r.iter().map(|r| r.n_scans as i64).collect::<Vec<_>>()),
                Column::new("file".into(), r.iter().map(|r| r.file.as_str()).collect::<Vec<_>>()),
            ],
        )?)
    }

    fn timing_frame(&self) -> Result<DataFrame> {
        let rows: Vec<_> = self.timings().collect();
        Ok(DataFrame::new(
            rows.len(),
            vec![
                Column::new("method".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("model".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                Column::new("scans".into(), rows.iter().map(|r| r.2 as i64).collect::<Vec<_>>()),
                Column::new("seconds".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
                Column::new("seconds_per_scan".into(), rows.iter().map(|r| r.3 / r.2 as f64).collect::<Vec<_>>()),
            ],
        )?)
    }
}

/// Joins the same table of several shards into `out`, in the order given: the header once, then
/// every shard's rows as written (so the result is byte-identical to the table one run over all
/// the shards' scans writes). Shards without the table are skipped; `Ok(false)` (nothing written)
/// when none has it. Every header must be the first one.
pub fn concat_tables(parts: &[std::path::PathBuf], out: &std::path::Path) -> Result<bool> {
    let mut header: Option<String> = None;
    let mut body = String::new();
    for part in parts.iter().filter(|p| p.exists()) {
        let text = std::fs::read_to_string(part).map_err(|e| adni_data::DataError::io(part, e))?;
        let (head, rows) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        match &header {
            None => header = Some(head.to_string()),
            Some(h) if h != head => {
                return Err(ReportError::invalid(
                    "shards",
                    format!("{} has the header `{head}`, the first shard `{h}`", part.display()),
                ));
            }
            Some(_) => {}
        }
        body.push_str(rows);
    }
    let Some(header) = header else { return Ok(false) };
    adni_data::fsutil::write_bytes_atomically(out, format!("{header}\n{body}").as_bytes())?;
    Ok(true)
}

/// Adds up the timing tables of several shards (maps and seconds per method and model, in the
/// first shard's row order, rows only later shards have after them) and writes `timing.csv`.
/// A shard without rows (it was given no scan: more shards than scans) adds nothing; an error
/// names the shard's file.
pub fn merge_timing(parts: &[std::path::PathBuf], layout: &RelevanceLayout) -> Result<()> {
    use crate::error::ResultExt as _;
    let mut t = InterpretationTables::new();
    let mut order: Vec<(String, String)> = Vec::new();
    let mut sums: BTreeMap<(String, String), (usize, f64)> = BTreeMap::new();
    for part in parts {
        let context = || format!("merging the shards' timing tables: {}", part.display());
        let df = read_csv(part).with_context(context)?;
        // A header-only table types its columns as text; it holds nothing to add.
        if df.height() == 0 {
            continue;
        }
        let table = "timing.csv";
        let methods = column_str(&df, table, "method").with_context(context)?;
        let models = column_str(&df, table, "model").with_context(context)?;
        let scans = crate::tables::column_f64(&df, table, "scans").with_context(context)?;
        let seconds = crate::tables::column_f64(&df, table, "seconds").with_context(context)?;
        for (((method, model), n), s) in methods.into_iter().zip(models).zip(scans).zip(seconds) {
            let key = (method, model);
            if !sums.contains_key(&key) {
                order.push(key.clone());
            }
            let e = sums.entry(key).or_default();
            e.0 += n as usize;
            e.1 += s;
        }
    }
    for (i, key) in order.iter().enumerate() {
        let (n, s) = sums[key];
        t.timing.insert((i, key.1.clone()), (key.0.clone(), n, s));
    }
    write_csv_atomically(&layout.timing(), &mut t.timing_frame()?)?;
    Ok(())
}

/// Writes `index.csv` from its rows.
pub fn write_index(layout: &RelevanceLayout, rows: Vec<IndexRow>) -> Result<()> {
    let t = InterpretationTables { index: rows, ..Default::default() };
    write_csv_atomically(&layout.index(), &mut t.index_frame()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(image_id: i64, label: usize) -> ScanId {
        ScanId { split: "holdout".into(), ptid: format!("002_S_000{image_id}"), image_id, label }
    }

    #[test]
    fn the_tables_are_written_with_their_documented_columns_and_the_index_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RelevanceLayout::new(dir.path());
        let mut t = InterpretationTables::new();
        t.push_scan(ScanRow { scan: scan(1, 1), p_ad: 0.75, predicted: 1, target: 1 });
        t.push_scan(ScanRow { scan: scan(2, 0), p_ad: 0.5, predicted: 0, target: 1 });
        t.push_conservation(ConservationRow {
            split: "holdout".into(),
            image_id: 1,
            model: "trained",
            logit: 2.0,
            relevance_sum: 1.5,
        });
        t.push_index(IndexRow {
            method: "lrp".into(),
            group: "AD".into(),
            n_scans: 1,
            file: RelevanceLayout::mean_map_name("lrp", "AD"),
        });
        // Ordered by the method's position first, then the model.
        t.add_time(8, "lrp", "trained", 2.0);
        t.add_time(0, "sensitivity", "trained", 1.0);
        t.add_time(8, "lrp", "trained", 4.0);
        t.add_time(8, "lrp", "random", 1.0);
        t.write(&layout).unwrap();

        let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(layout.scans()),
            "split,PTID,Image.ID,label,p_ad,predicted,target_class\n\
             holdout,002_S_0001,1,AD,0.75,AD,1\nholdout,002_S_0002,2,CN,0.5,CN,1\n"
        );
        assert_eq!(
            read(layout.lrp_conservation()),
            "split,Image.ID,model,logit,relevance_sum\nholdout,1,trained,2.0,1.5\n"
        );
        assert_eq!(
            read(layout.timing()),
            "method,model,scans,seconds,seconds_per_scan\nsensitivity,trained,1,1.0,1.0\nlrp,random,1,1.0,1.0\n\
             lrp,trained,2,6.0,3.0\n"
        );
        assert!(!layout.ground_truth().exists() && !layout.scan_regions().exists(), "empty tables are not written");
        let index = read_index(&layout).unwrap();
        assert_eq!(
            index,
            [IndexRow { method: "lrp".into(), group: "AD".into(), n_scans: 1, file: "maps/lrp_AD.nii.gz".into() }]
        );
    }

    #[test]
    fn a_bad_scan_count_in_the_index_names_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let layout = RelevanceLayout::new(dir.path());
        std::fs::write(layout.index(), "method,group,n_scans,file\nlrp,AD,many,maps/lrp_AD.nii.gz\n").unwrap();
        let e = read_index(&layout).unwrap_err().to_string();
        assert!(e.contains("n_scans") && e.contains("row 2") && e.contains("`many`"), "{e}");
    }

    #[test]
    fn merging_timing_skips_shards_without_scans_and_names_a_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let header = "method,model,scans,seconds,seconds_per_scan\n";
        let full = dir.path().join("shard1.csv");
        std::fs::write(&full, format!("{header}lrp,trained,2,6.0,3.0\nlrp,random,2,2.0,1.0\n")).unwrap();
        // A shard given no scan (more shards than test scans) writes the header alone.
        let empty = dir.path().join("shard2.csv");
        std::fs::write(&empty, header).unwrap();
        let other = dir.path().join("shard3.csv");
        std::fs::write(&other, format!("{header}lrp,trained,1,3.0,3.0\n")).unwrap();
        let out = tempfile::tempdir().unwrap();
        let layout = RelevanceLayout::new(out.path());
        merge_timing(&[full.clone(), empty, other], &layout).unwrap();
        assert_eq!(
            std::fs::read_to_string(layout.timing()).unwrap(),
            format!("{header}lrp,trained,3,9.0,3.0\nlrp,random,2,2.0,1.0\n")
        );
        let bad = dir.path().join("shard4.csv");
        std::fs::write(&bad, format!("{header}lrp,trained,many,3.0,3.0\n")).unwrap();
        let e = merge_timing(&[full, bad.clone()], &layout).unwrap_err();
        assert!(e.to_string().contains(&bad.display().to_string()), "{e}");
        let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
        assert!(cause.contains("column `scans`") && cause.contains("expected numbers"), "{cause}");
    }
}
