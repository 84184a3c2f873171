//! Sharded interpretation (`interpret --shard i/n`, then `interpret --merge-shards n`): a
//! deterministic partition of the test scans into `n` contiguous blocks, each explained into
//! `relevance/shards/<i>-of-<n>/` (laid out as a relevance folder of its own), and the merge
//! that writes what one unsharded run writes.
//!
//! - Tables (`scans.csv`, `scan_regions.csv`, `ground_truth.csv`, `lrp_conservation.csv`): the
//!   shards' rows joined in shard order, byte-identical to an unsharded run's (contiguous blocks
//!   keep the scans' order; every row depends on its scan only).
//! - Mean maps and the background: the shards' means weighted by their scan counts, in f64;
//!   equal to an unsharded run's within float rounding (each shard's mean was rounded to f32).
//! - `timing.csv`: the shards' maps and seconds added up.
//! - Per-scan maps (`save_scan_maps`) are written by the shards straight into `maps/scans/`, one
//!   file per scan, so no two shards write the same file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};

use adni_data::fsutil::write_bytes_atomically;
use adni_data::run_layout::RelevanceLayout;
use adni_data::volume::{OutputType, Volume, read_volume};
use report::interpretation::{IndexRow, concat_tables, merge_timing, read_index, write_index};

use super::run::{marker_completion, remove_relevance_outputs};
use crate::inputs::Completion;
use crate::relevance_config::Method;

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1 ≤ index ≤ count.
    pub index: usize,
    /// The number of shards.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    /// `i/n` with 1 ≤ i ≤ n.
    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        match parsed {
            Some((index, count)) if index >= 1 && index <= count => Ok(Shard { index, count }),
            _ => Err(format!("`{s}`: expected i/n with 1 ≤ i ≤ n, e.g. 2/8 (the second of eight shards)")),
        }
    }
}

impl Shard {
    /// The jobs of this shard among `len`: a contiguous block, the first `len % count` shards one
    /// longer, so that the blocks in shard order are the jobs in order.
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        let (base, extra) = (len / self.count, len % self.count);
        let start = (self.index - 1) * base + (self.index - 1).min(extra);
        let size = base + usize::from(self.index - 1 < extra);
        start..start + size
    }
}

/// A complete shard: its folder, its `complete.json` (read once) and the scans that marker records.
struct CompleteShard {
    layout: RelevanceLayout,
    marker: serde_json::Value,
    scans: usize,
}

/// The shards, in order; every one must be complete with the same methods and `inputs` (and
/// hold every scan's map when `save_scan_maps`).
fn complete_shards(
    out: &RelevanceLayout,
    count: usize,
    methods: &[Method],
    inputs: &serde_json::Value,
    save_scan_maps: bool,
) -> Result<Vec<CompleteShard>> {
    let names: Vec<&str> = methods.iter().map(|m| m.name()).collect();
    let mut shards = Vec::with_capacity(count);
    let mut missing = Vec::new();
    let mut stale = Vec::new();
    for index in 1..=count {
        let layout = out.shard(index, count);
        let Some(marker) = crate::inputs::read_marker(&layout.complete())? else {
            missing.push(format!("{index}/{count}"));
            continue;
        };
        match marker_completion(&marker, methods, inputs, save_scan_maps) {
            Completion::Complete { scans } => shards.push(CompleteShard { layout, marker, scans }),
            Completion::Stale { differing } => {
                stale.push(format!("{index}/{count} (differing: {})", differing.join(", ")));
            }
        }
    }
    if !missing.is_empty() {
        bail!(
            "shards {} of {} are not complete (for methods {}): run `cargo xtask interpret --shard i/{count}` for them \
             first",
            missing.join(", "),
            out.shards_dir().display(),
            names.join(", ")
        );
    }
    if !stale.is_empty() {
        bail!(
            "shards {} of {} were computed from other inputs than this merge's (the models, splits or [relevance] \
             settings it reads): run `cargo xtask interpret --shard i/{count}` for them again, with the merge's \
             settings",
            stale.join("; "),
            out.shards_dir().display()
        );
    }
    Ok(shards)
}

/// Merges the `count` complete shards of `out` into `out` itself; returns the number of scans.
/// Every shard must hold `methods` and have been computed from `inputs` (the merge's own
/// [`super::run::map_inputs`]), with every scan's map saved when `save_scan_maps`.
pub(super) fn merge_shards(
    out: &RelevanceLayout,
    count: usize,
    methods: &[Method],
    inputs: &serde_json::Value,
    save_scan_maps: bool,
) -> Result<usize> {
    if count == 0 {
        bail!("--merge-shards 0: expected the number of shards the scans were split into (N of --shard i/N), ≥ 1");
    }
    let complete = complete_shards(out, count, methods, inputs, save_scan_maps)?;
    let shards: Vec<&RelevanceLayout> = complete.iter().map(|s| &s.layout).collect();
    // A new merge: the old marker no longer describes the folder, nor do the earlier tables and
    // mean maps (the per-scan maps are the shards' own, written there).
    remove_relevance_outputs(out, false)?;

    // Mean maps in an unsharded run's order (method, then group), weighted by scans.
    let mut groups: BTreeMap<(Method, String), Vec<(PathBuf, usize)>> = BTreeMap::new();
    for &shard in &shards {
        for row in read_index(shard)? {
            let method: Method =
                row.method.parse().map_err(|e: String| anyhow::anyhow!("{}: {e}", shard.index().display()))?;
            groups.entry((method, row.group.clone())).or_default().push((shard.dir().join(&row.file), row.n_scans));
        }
    }
    let mut index = Vec::new();
    for ((method, group), parts) in &groups {
        let file = RelevanceLayout::mean_map_name(method.name(), group);
        let (mean, n) = weighted_mean(parts)?;
        write_volume_f32(&out.dir().join(&file), mean)?;
        index.push(IndexRow { method: method.name().to_string(), group: group.clone(), n_scans: n, file });
    }
    let scans_per_shard: Vec<(PathBuf, usize)> = complete.iter().map(|s| (s.layout.background(), s.scans)).collect();
    let (background, scans) = weighted_mean(&scans_per_shard)?;
    write_volume_f32(&out.background(), background)?;

    let paths = |f: fn(&RelevanceLayout) -> PathBuf| shards.iter().copied().map(f).collect::<Vec<_>>();
    concat_tables(&paths(RelevanceLayout::scans), &out.scans())?;
    concat_tables(&paths(RelevanceLayout::scan_regions), &out.scan_regions())?;
    concat_tables(&paths(RelevanceLayout::ground_truth), &out.ground_truth())?;
    concat_tables(&paths(RelevanceLayout::lrp_conservation), &out.lrp_conservation())?;
    merge_timing(&paths(RelevanceLayout::timing), out)?;
    write_index(out, index)?;
    let config = std::fs::read(shards[0].resolved_config())
        .with_context(|| format!("cannot read {}", shards[0].resolved_config().display()))?;
    write_bytes_atomically(&out.resolved_config(), &config)?;
    let mut marker = complete[0].marker.clone();
    marker["scans"] = serde_json::json!(scans);
    marker["merged_shards"] = serde_json::json!(count);
    // Every scan's map is there only if every shard saved its scans' maps.
    let saved = complete.iter().all(|s| s.marker["save_scan_maps"] == serde_json::Value::Bool(true));
    marker["save_scan_maps"] = serde_json::json!(saved);
    if let Some(m) = marker.as_object_mut() {
        m.remove("shard");
    }
    write_bytes_atomically(&out.complete(), serde_json::to_string_pretty(&marker)?.as_bytes())?;
    Ok(scans)
}

/// Σ mean × n / Σ n over `parts` (volume, scans), in f64; the grids must agree.
fn weighted_mean(parts: &[(PathBuf, usize)]) -> Result<(Volume, usize)> {
    let mut sum: Option<(ndarray::Array3<f64>, adni_data::volume::Affine)> = None;
    let mut total = 0;
    for (path, n) in parts {
        let (vol, _, _) = read_volume(path)?;
        let (acc, _) = sum.get_or_insert_with(|| (ndarray::Array3::zeros(vol.data.dim()), vol.affine));
        if acc.dim() != vol.data.dim() {
            bail!("{}: grid {:?} differs from the other shards' {:?}", path.display(), vol.data.dim(), acc.dim());
        }
        ndarray::Zip::from(&mut *acc).and(&vol.data).for_each(|s, &v| *s += f64::from(v) * *n as f64);
        total += n;
    }
    let Some((acc, affine)) = sum else { bail!("no shard holds this map") };
    let n = total.max(1) as f64;
    Ok((Volume { data: acc.mapv(|s| (s / n) as f32), affine }, total))
}

fn write_volume_f32(path: &std::path::Path, vol: Volume) -> Result<()> {
    Ok(adni_data::volume::write_volume(path, &vol, OutputType::Float32)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_contiguous_blocks_that_cover_every_job_once() {
        for len in 0..20 {
            for count in 1..6 {
                let ranges: Vec<_> = (1..=count).map(|index| Shard { index, count }.range(len)).collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[count - 1].end, len);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start, "len {len}, count {count}");
                    assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
                }
            }
        }
        assert_eq!(Shard { index: 2, count: 3 }.range(10), 4..7);
    }

    #[test]
    fn merging_needs_every_shard_complete_for_the_merges_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = RelevanceLayout::new(dir.path());
        let inputs = serde_json::json!({"models": {"holdout": "abc"}, "relevance": {"target": "predicted"}});
        let e = merge_shards(&out, 0, &[Method::Lrp], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("--merge-shards 0: expected the number of shards"), "{e}");
        let write = |index: usize, marker: serde_json::Value| {
            std::fs::create_dir_all(out.shard(index, 2).dir()).unwrap();
            std::fs::write(out.shard(index, 2).complete(), marker.to_string()).unwrap();
        };
        write(2, serde_json::json!({"methods": ["lrp"], "scans": 3, "inputs": inputs}));
        let e = merge_shards(&out, 2, &[Method::Lrp], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("shards 1/2 of") && e.contains("--shard i/2"), "{e}");

        // Shard 1 of another model: refused, naming the shard and what differs.
        let other = serde_json::json!({"models": {"holdout": "def"}, "relevance": {"target": "predicted"}});
        write(1, serde_json::json!({"methods": ["lrp"], "scans": 3, "inputs": other}));
        let e = merge_shards(&out, 2, &[Method::Lrp], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("shards 1/2 (differing: models.holdout) of") && !e.contains("2/2"), "{e}");
        // A shard of an older version (no inputs recorded) is not complete either.
        write(1, serde_json::json!({"methods": ["lrp"], "scans": 3}));
        let e = merge_shards(&out, 2, &[Method::Lrp], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("1/2 (differing: inputs (none recorded"), "{e}");
        write(1, serde_json::json!({"methods": ["lrp"], "scans": 3, "inputs": inputs}));
        let e = merge_shards(&out, 2, &[Method::Occlusion], &inputs, false).unwrap_err().to_string();
        assert!(e.contains("1/2 (differing: methods (lacks occlusion)); 2/2"), "a shard without the method: {e}");
        let e = merge_shards(&out, 2, &[Method::Lrp], &inputs, true).unwrap_err().to_string();
        assert!(e.contains("1/2 (differing: save_scan_maps"), "per-scan maps asked for, none saved: {e}");
    }

    #[test]
    fn a_shard_is_i_of_n() {
        assert_eq!("2/8".parse::<Shard>(), Ok(Shard { index: 2, count: 8 }));
        for bad in ["0/3", "4/3", "2", "a/b", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("expected i/n with 1 ≤ i ≤ n"), "{bad}: {e}");
        }
    }
}
