//! Label atlases (CerebrA, AAL, or any label volume with a name table), their left/right
//! pairing, and placement onto another grid.
//!
//! The study scored relevance per AAL region with left and right merged (62 groups); see
//! [`Atlas::pair_groups`]. Placement onto the model's grid is by world coordinates by default
//! ([`Placement::World`]); the original study's stretch is kept as the named option
//! [`Placement::Zoom`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use ndarray::Array3;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::volume::{Affine, Grid, read_volume};

/// Which side of the brain a region lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Hemisphere {
    /// Left hemisphere.
    Left,
    /// Right hemisphere.
    Right,
}

/// One labelled region of an atlas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// The label value in the atlas volume.
    pub label: i32,
    /// The full name, side included where the atlas has one (e.g. `Hippocampus_L`,
    /// `Hippocampus (left)`).
    pub name: String,
    /// The name shared by both sides of a left/right pair (e.g. `Hippocampus`); for unpaired
    /// regions the full name.
    pub pair_name: String,
    /// The side, for paired regions.
    pub hemisphere: Option<Hemisphere>,
}

impl Region {
    /// A region whose side and pair name are read from its name with [`split_hemisphere`].
    pub fn from_name(label: i32, name: &str) -> Region {
        let (pair_name, hemisphere) = split_hemisphere(name);
        Region { label, name: name.to_string(), pair_name, hemisphere }
    }
}

/// A label volume on a world grid plus the table of its regions.
#[derive(Debug, Clone, PartialEq)]
pub struct Atlas {
    /// A short name (`CerebrA`, `AAL`).
    pub name: String,
    /// Label values indexed `[i, j, k]`; 0 is background.
    pub labels: Array3<i32>,
    /// Voxel-to-world transform of `labels`.
    pub affine: Affine,
    /// Regions, sorted by label.
    pub regions: Vec<Region>,
}

/// How an atlas is put onto another grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// By world coordinates through both affines, nearest neighbour (correct; default).
    #[default]
    World,
    /// The original study's stretch of the atlas array onto the target shape
    /// (`scipy.ndimage.zoom(order=0)` semantics), ignoring both affines (paper-faithful).
    Zoom,
}

/// Reads the side of a region from its name: a `_L` / `_R` suffix (AAL), a ` (left)` /
/// ` (right)` suffix (this crate's CerebrA names) or a `Left-` / `Right-` prefix (FreeSurfer).
/// Returns the name without the side marker and the side; names without a marker (e.g.
/// `Vermis_3`) come back unchanged with `None`.
pub fn split_hemisphere(name: &str) -> (String, Option<Hemisphere>) {
    let n = name.trim();
    let rules: [(&str, Hemisphere, bool); 6] = [
        ("_L", Hemisphere::Left, true),
        ("_R", Hemisphere::Right, true),
        (" (left)", Hemisphere::Left, true),
        (" (right)", Hemisphere::Right, true),
        ("Left-", Hemisphere::Left, false),
        ("Right-", Hemisphere::Right, false),
    ];
    for (marker, side, is_suffix) in rules {
        let stripped = if is_suffix { n.strip_suffix(marker) } else { n.strip_prefix(marker) };
        if let Some(rest) = stripped
            && !rest.is_empty()
        {
            return (rest.to_string(), Some(side));
        }
    }
    (n.to_string(), None)
}

/// Checks a region table against a label volume; returns the sorted table or a message saying
/// what is wrong (the callers add the file or key).
fn validate_regions(labels: &Array3<i32>, mut regions: Vec<Region>) -> std::result::Result<Vec<Region>, String> {
    regions.sort_by_key(|r| r.label);
    for w in regions.windows(2) {
        if w[0].label == w[1].label {
            return Err(format!(
                "label value {} is listed twice in the region table (`{}` and `{}`)",
                w[0].label, w[0].name, w[1].name
            ));
        }
    }
    if let Some(r) = regions.iter().find(|r| r.label == 0) {
        return Err(format!("label value 0 is background and cannot name a region (`{}`)", r.name));
    }
    let known: BTreeSet<i32> = regions.iter().map(|r| r.label).collect();
    let present = labels
        .as_slice_memory_order()
        .map(|s| s.par_iter().fold(BTreeSet::new, collect_label).reduce(BTreeSet::new, merge_sets))
        .unwrap_or_else(|| labels.iter().fold(BTreeSet::new(), collect_label));
    let unknown: Vec<i32> = present.into_iter().filter(|l| *l != 0 && !known.contains(l)).collect();
    if !unknown.is_empty() {
        const SHOWN: usize = 20;
        let mut list = unknown.iter().take(SHOWN).map(|l| l.to_string()).collect::<Vec<_>>().join(", ");
        if unknown.len() > SHOWN {
            list.push_str(&format!(" and {} more", unknown.len() - SHOWN));
        }
        return Err(format!(
            "{} label value(s) occur in the volume but not in the region table: {list} (the table and the volume do not belong together)",
            unknown.len()
        ));
    }
    Ok(regions)
}

fn collect_label(mut set: BTreeSet<i32>, v: &i32) -> BTreeSet<i32> {
    set.insert(*v);
    set
}

fn merge_sets(mut a: BTreeSet<i32>, b: BTreeSet<i32>) -> BTreeSet<i32> {
    a.extend(b);
    a
}

impl Atlas {
    /// Builds an atlas, checking that every non-zero label value in `labels` has a region,
    /// that no label value is listed twice and that 0 (background) names no region. The
    /// regions are sorted by label. Errors list the offending label values.
    pub fn new(name: impl Into<String>, labels: Array3<i32>, affine: Affine, regions: Vec<Region>) -> Result<Atlas> {
        let name = name.into();
        let regions = validate_regions(&labels, regions)
            .map_err(|m| DataError::Invalid { key: "labels".into(), message: format!("atlas `{name}`: {m}") })?;
        Ok(Atlas { name, labels, affine, regions })
    }

    /// Builds an atlas from files, errors naming the label volume `nii` and the table.
    fn from_files(name: &str, nii: &Path, table: &Path, regions: Vec<Region>) -> Result<Atlas> {
        let (labels, affine) = read_label_volume(nii)?;
        let regions = validate_regions(&labels, regions).map_err(|m| DataError::Atlas {
            path: nii.to_path_buf(),
            message: format!("{m} (table {})", table.display()),
        })?;
        Ok(Atlas { name: name.to_string(), labels, affine, regions })
    }

    /// The grid the labels lie on.
    pub fn grid(&self) -> Grid {
        let s = self.labels.shape();
        Grid { shape: [s[0], s[1], s[2]], affine: self.affine }
    }

    /// The region with this label value, if any.
    pub fn region(&self, label: i32) -> Option<&Region> {
        self.regions.binary_search_by_key(&label, |r| r.label).ok().map(|i| &self.regions[i])
    }

    /// The study's left/right merge: one entry per pair name, in the order of the first label
    /// of each group, holding the labels of both sides (one label for unpaired regions).
    /// AAL gives 62 groups (54 pairs and 8 vermis regions), CerebrA 51.
    pub fn pair_groups(&self) -> Vec<(String, Vec<i32>)> {
        let mut groups: Vec<(String, Vec<i32>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for r in &self.regions {
            match index.get(r.pair_name.as_str()) {
                Some(&i) => groups[i].1.push(r.label),
                None => {
                    index.insert(r.pair_name.as_str(), groups.len());
                    groups.push((r.pair_name.clone(), vec![r.label]));
                }
            }
        }
        groups
    }

    /// Number of voxels of every region of the table (0 for a region absent from the volume),
    /// by label value.
    pub fn region_volumes(&self) -> BTreeMap<i32, usize> {
        let mut counts: BTreeMap<i32, usize> = self.regions.iter().map(|r| (r.label, 0)).collect();
        let mut all: HashMap<i32, usize> = HashMap::new();
        for &v in self.labels.iter() {
            if v != 0 {
                *all.entry(v).or_insert(0) += 1;
            }
        }
        for (label, n) in all {
            if let Some(c) = counts.get_mut(&label) {
                *c = n;
            }
        }
        counts
    }

    /// The atlas put onto `target` (shape and affine), nearest neighbour; the region table is
    /// kept as it is.
    ///
    /// [`Placement::World`]: each target voxel is mapped to world coordinates by
    /// `target.affine`, then into the atlas by the inverse of the atlas affine, and rounded to
    /// the nearest voxel (`⌊x + ½⌋`); positions outside the atlas get 0.
    /// [`Placement::Zoom`]: the original study's stretch, ignoring both affines, with
    /// `scipy.ndimage.zoom(order=0, grid_mode=False)` semantics: output index `o` reads input
    /// index `⌊o·(n_in − 1)/(n_out − 1) + ½⌋` along each axis.
    pub fn resample_to(&self, target: &Grid, placement: Placement) -> Result<Atlas> {
        if target.is_empty() {
            return Err(DataError::Invalid {
                key: "target grid".into(),
                message: format!("grid shape {:?} has no voxels", target.shape),
            });
        }
        let labels = match placement {
            Placement::World => self.place_by_world(target)?,
            Placement::Zoom => self.place_by_zoom(target.shape)?,
        };
        Ok(Atlas { name: self.name.clone(), labels, affine: target.affine, regions: self.regions.clone() })
    }

    fn place_by_world(&self, target: &Grid) -> Result<Array3<i32>> {
        let inv = self.affine.inverse().ok_or_else(|| DataError::Invalid {
            key: "atlas affine".into(),
            message: format!("atlas `{}` has a singular affine {:?}", self.name, self.affine.0),
        })?;
        // target voxel -> atlas voxel, one affine
        let m = inv.compose(&target.affine).0;
        let src = self.labels.as_standard_layout();
        let [sx, sy, sz] = [src.shape()[0], src.shape()[1], src.shape()[2]];
        let src = src.as_slice().ok_or_else(|| internal("atlas labels are not contiguous"))?;
        let [nx, ny, nz] = target.shape;
        let mut out = vec![0i32; nx * ny * nz];
        let nearest = |x: f64, n: usize| -> Option<usize> {
            let r = (x + 0.5).floor();
            (r >= 0.0 && r < n as f64).then_some(r as usize)
        };
        out.par_chunks_mut(ny * nz).enumerate().for_each(|(i, slab)| {
            let fi = i as f64;
            for j in 0..ny {
                let fj = j as f64;
                let base = [
                    m[0][0] * fi + m[0][1] * fj + m[0][3],
                    m[1][0] * fi + m[1][1] * fj + m[1][3],
                    m[2][0] * fi + m[2][1] * fj + m[2][3],
                ];
                for k in 0..nz {
                    let fk = k as f64;
                    let p = [base[0] + m[0][2] * fk, base[1] + m[1][2] * fk, base[2] + m[2][2] * fk];
                    if let (Some(a), Some(b), Some(c)) = (nearest(p[0], sx), nearest(p[1], sy), nearest(p[2], sz)) {
                        slab[j * nz + k] = src[(a * sy + b) * sz + c];
                    }
                }
            }
        });
        Array3::from_shape_vec((nx, ny, nz), out).map_err(|e| internal(&e.to_string()))
    }

    fn place_by_zoom(&self, shape: [usize; 3]) -> Result<Array3<i32>> {
        let src = self.labels.as_standard_layout();
        let s = [src.shape()[0], src.shape()[1], src.shape()[2]];
        if s.contains(&0) {
            return Err(DataError::Invalid {
                key: "atlas labels".into(),
                message: format!("atlas `{}` has an empty label volume {s:?}", self.name),
            });
        }
        let maps: Vec<Vec<usize>> = (0..3).map(|a| zoom_index_map(s[a], shape[a])).collect();
        let src = src.as_slice().ok_or_else(|| internal("atlas labels are not contiguous"))?;
        let [nx, ny, nz] = shape;
        let mut out = vec![0i32; nx * ny * nz];
        out.par_chunks_mut(ny * nz).enumerate().for_each(|(i, slab)| {
            let a = maps[0][i];
            for (j, &b) in maps[1].iter().enumerate() {
                for (k, &c) in maps[2].iter().enumerate() {
                    slab[j * nz + k] = src[(a * s[1] + b) * s[2] + c];
                }
            }
        });
        Array3::from_shape_vec((nx, ny, nz), out).map_err(|e| internal(&e.to_string()))
    }
}

fn internal(message: &str) -> DataError {
    DataError::Invalid { key: "atlas".into(), message: message.to_string() }
}

/// The input index each output index reads under `scipy.ndimage.zoom(order=0,
/// grid_mode=False)`: `⌊o·(n_in − 1)/(n_out − 1) + ½⌋`, with the ratio computed first as scipy
/// does. A single output voxel reads input 0.
pub fn zoom_index_map(n_in: usize, n_out: usize) -> Vec<usize> {
    let ratio = if n_out > 1 { (n_in as f64 - 1.0) / (n_out as f64 - 1.0) } else { 0.0 };
    (0..n_out).map(|o| ((o as f64 * ratio + 0.5).floor() as usize).min(n_in.saturating_sub(1))).collect()
}

/// Dice coefficient `2|A∩B| / (|A| + |B|)` of every non-zero label value found in `a` or `b`
/// (two label volumes of the same shape), by label value.
pub fn dice_per_label(a: &Array3<i32>, b: &Array3<i32>) -> Result<BTreeMap<i32, f64>> {
    if a.shape() != b.shape() {
        return Err(DataError::Invalid {
            key: "labels".into(),
            message: format!("label volumes differ in shape: {:?} and {:?}", a.shape(), b.shape()),
        });
    }
    // label -> (count in a, count in b, count in both)
    let mut counts: HashMap<i32, [usize; 3]> = HashMap::new();
    for (&x, &y) in a.iter().zip(b.iter()) {
        if x != 0 {
            counts.entry(x).or_default()[0] += 1;
        }
        if y != 0 {
            counts.entry(y).or_default()[1] += 1;
        }
        if x != 0 && x == y {
            counts.entry(x).or_default()[2] += 1;
        }
    }
    Ok(counts.into_iter().map(|(l, [na, nb, both])| (l, 2.0 * both as f64 / (na + nb) as f64)).collect())
}

/// Reads a label volume (any NIfTI datatype; a float volume must hold whole numbers).
pub fn read_label_volume(nii: &Path) -> Result<(Array3<i32>, Affine)> {
    let (vol, _, _) = read_volume(nii)?;
    if let Some((idx, &v)) = vol.data.indexed_iter().find(|(_, v)| (**v - v.round()).abs() > 1e-3) {
        return Err(DataError::Atlas {
            path: nii.to_path_buf(),
            message: format!("voxel {idx:?} holds {v}, expected a whole-number label value"),
        });
    }
    let labels = vol.data.mapv(|v| v.round() as i32);
    Ok((labels, vol.affine))
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Atlas {
        path: path.to_path_buf(),
        message: format!("not UTF-8 text (byte {}): expected a label table", e.utf8_error().valid_up_to()),
    })?;
    Ok(text.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(text))
}

fn table_err(path: &Path, line: usize, message: impl std::fmt::Display) -> DataError {
    DataError::Atlas { path: path.to_path_buf(), message: format!("line {line}: {message}") }
}

/// Splits one CSV line into fields: commas separate, double quotes enclose fields that contain
/// commas, `""` inside quotes is a quote.
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', true) => in_quotes = false,
            ('"', false) if cur.trim().is_empty() => {
                cur.clear();
                in_quotes = true;
            }
            (',', false) => fields.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    if in_quotes {
        return Err("a quoted field is not closed on this line".into());
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_label(path: &Path, line: usize, column: &str, text: &str) -> Result<i32> {
    let t = text.trim();
    t.parse::<i32>()
        .map_err(|_| table_err(path, line, format!("column `{column}`: expected an integer label value, found `{t}`")))
}

/// Non-empty lines with their 1-based line numbers.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r'))).filter(|(_, l)| !l.trim().is_empty())
}

/// Reads the CerebrA label table (`Mindboggle ID,Label Name,RH Label,LH Labels,Notes,Dice
/// Kappa`): every row gives two regions, `<name> (right)` with the `RH Label` value and
/// `<name> (left)` with the `LH Labels` value, paired under `<name>`. Sorted by label.
pub fn read_cerebra_table(csv: &Path) -> Result<Vec<Region>> {
    let text = read_text(csv)?;
    let mut lines = numbered_lines(&text);
    let (header_line, header) = lines.next().ok_or_else(|| DataError::Atlas {
        path: csv.to_path_buf(),
        message: "the table is empty, expected a header `Mindboggle ID,Label Name,RH Label,LH Labels,…`".into(),
    })?;
    let header = split_csv_line(header).map_err(|m| table_err(csv, header_line, m))?;
    let find = |names: &[&str]| header.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)));
    let (Some(c_name), Some(c_rh), Some(c_lh)) =
        (find(&["Label Name"]), find(&["RH Label", "RH Labels"]), find(&["LH Label", "LH Labels"]))
    else {
        return Err(table_err(
            csv,
            header_line,
            format!("header {header:?} lacks a column; expected `Label Name`, `RH Label` and `LH Labels`"),
        ));
    };
    let mut regions = Vec::new();
    let mut seen: HashMap<i32, usize> = HashMap::new();
    for (n, line) in lines {
        let fields = split_csv_line(line).map_err(|m| table_err(csv, n, m))?;
        let needed = c_name.max(c_rh).max(c_lh) + 1;
        if fields.len() < needed {
            return Err(table_err(csv, n, format!("found {} field(s), expected at least {needed}", fields.len())));
        }
        let name = fields[c_name].trim();
        if name.is_empty() {
            return Err(table_err(csv, n, "column `Label Name` is empty"));
        }
        let rh = parse_label(csv, n, "RH Label", &fields[c_rh])?;
        let lh = parse_label(csv, n, "LH Labels", &fields[c_lh])?;
        for (label, side, word) in [(rh, Hemisphere::Right, "right"), (lh, Hemisphere::Left, "left")] {
            if label <= 0 {
                return Err(table_err(csv, n, format!("label value {label} is not positive")));
            }
            if let Some(prev) = seen.insert(label, n) {
                return Err(table_err(csv, n, format!("label value {label} was already given on line {prev}")));
            }
            regions.push(Region {
                label,
                name: format!("{name} ({word})"),
                pair_name: name.to_string(),
                hemisphere: Some(side),
            });
        }
    }
    regions.sort_by_key(|r| r.label);
    Ok(regions)
}

/// Reads an AAL label list (`<label><tab><name>` lines such as `1\tPrecentral_L`; a further
/// column, as in mricron's `aal.nii.txt`, is ignored). `_L` / `_R` suffixes give the side and
/// the pair name; other names (`Vermis_*`) are unpaired. Sorted by label.
pub fn read_aal_table(txt: &Path) -> Result<Vec<Region>> {
    let text = read_text(txt)?;
    let mut regions = Vec::new();
    let mut seen: HashMap<i32, usize> = HashMap::new();
    for (n, line) in numbered_lines(&text) {
        let mut tokens = line.split_whitespace();
        let (Some(label), Some(name)) = (tokens.next(), tokens.next()) else {
            return Err(table_err(txt, n, format!("expected `<label> <name>`, found `{}`", line.trim())));
        };
        let label = parse_label(txt, n, "label", label)?;
        if label <= 0 {
            return Err(table_err(txt, n, format!("label value {label} is not positive")));
        }
        if let Some(prev) = seen.insert(label, n) {
            return Err(table_err(txt, n, format!("label value {label} was already given on line {prev}")));
        }
        regions.push(Region::from_name(label, name));
    }
    if regions.is_empty() {
        return Err(DataError::Atlas { path: txt.to_path_buf(), message: "no `<label> <name>` lines found".into() });
    }
    regions.sort_by_key(|r| r.label);
    Ok(regions)
}

/// Reads a generic `label,name` CSV (an optional header line whose first field is `label`);
/// sides come from the names via [`split_hemisphere`]. Sorted by label.
pub fn read_label_table(csv: &Path) -> Result<Vec<Region>> {
    let text = read_text(csv)?;
    let mut regions = Vec::new();
    let mut seen: HashMap<i32, usize> = HashMap::new();
    for (idx, (n, line)) in numbered_lines(&text).enumerate() {
        let fields = split_csv_line(line).map_err(|m| table_err(csv, n, m))?;
        if idx == 0 && fields[0].trim().eq_ignore_ascii_case("label") {
            continue;
        }
        if fields.len() < 2 {
            return Err(table_err(csv, n, format!("expected `label,name`, found `{}`", line.trim())));
        }
        let label = parse_label(csv, n, "label", &fields[0])?;
        let name = fields[1].trim();
        if name.is_empty() {
            return Err(table_err(csv, n, "column `name` is empty"));
        }
        if label <= 0 {
            return Err(table_err(csv, n, format!("label value {label} is not positive")));
        }
        if let Some(prev) = seen.insert(label, n) {
            return Err(table_err(csv, n, format!("label value {label} was already given on line {prev}")));
        }
        regions.push(Region::from_name(label, name));
    }
    if regions.is_empty() {
        return Err(DataError::Atlas { path: csv.to_path_buf(), message: "no `label,name` lines found".into() });
    }
    regions.sort_by_key(|r| r.label);
    Ok(regions)
}

/// Loads the CerebrA atlas: label volume `nii` (float32 holding whole numbers) and the
/// `CerebrA_LabelDetails.csv` table (see [`read_cerebra_table`]); 102 regions, 51 pairs.
pub fn load_cerebra(nii: &Path, csv: &Path) -> Result<Atlas> {
    let regions = read_cerebra_table(csv)?;
    Atlas::from_files("CerebrA", nii, csv, regions)
}

/// Loads the AAL atlas: label volume `nii` and the `AAL.txt` list (see [`read_aal_table`]);
/// 116 regions, 62 pair groups.
pub fn load_aal(nii: &Path, txt: &Path) -> Result<Atlas> {
    let regions = read_aal_table(txt)?;
    Atlas::from_files("AAL", nii, txt, regions)
}

/// Loads any label volume with a `label,name` CSV (see [`read_label_table`]).
pub fn load_label_atlas(name: &str, nii: &Path, csv: &Path) -> Result<Atlas> {
    let regions = read_label_table(csv)?;
    Atlas::from_files(name, nii, csv, regions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_hemisphere_reads_all_conventions() {
        assert_eq!(split_hemisphere("Precentral_L"), ("Precentral".into(), Some(Hemisphere::Left)));
        assert_eq!(split_hemisphere("Frontal_Sup_Orb_R"), ("Frontal_Sup_Orb".into(), Some(Hemisphere::Right)));
        assert_eq!(split_hemisphere("Vermis_1_2"), ("Vermis_1_2".into(), None));
        assert_eq!(split_hemisphere("Hippocampus (left)"), ("Hippocampus".into(), Some(Hemisphere::Left)));
        assert_eq!(split_hemisphere("Left-Amygdala"), ("Amygdala".into(), Some(Hemisphere::Left)));
        assert_eq!(split_hemisphere("_L"), ("_L".into(), None));
    }

    #[test]
    fn csv_fields_respect_quotes() {
        let f = split_csv_line(r#"16,Brainstem,11,62,"filled, then ""cleaned""",0.65"#).unwrap();
        assert_eq!(f, vec!["16", "Brainstem", "11", "62", r#"filled, then "cleaned""#, "0.65"]);
        assert!(split_csv_line(r#"1,"open"#).is_err());
    }

    #[test]
    fn zoom_index_map_matches_scipy_order0() {
        // scipy.ndimage.zoom(np.arange(5), 9/5, order=0) == [0 1 1 2 2 3 3 4 4]
        assert_eq!(zoom_index_map(5, 9), vec![0, 1, 1, 2, 2, 3, 3, 4, 4]);
        // shrinking: scipy.ndimage.zoom(np.arange(9), 5/9, order=0) == [0 2 4 6 8]
        assert_eq!(zoom_index_map(9, 5), vec![0, 2, 4, 6, 8]);
        assert_eq!(zoom_index_map(7, 7), (0..7).collect::<Vec<_>>());
        assert_eq!(zoom_index_map(4, 1), vec![0]);
    }

    #[test]
    fn dice_of_identical_is_one_and_of_disjoint_zero() {
        let a = Array3::from_shape_fn((4, 4, 4), |(i, _, _)| if i < 2 { 1 } else { 2 });
        let d = dice_per_label(&a, &a).unwrap();
        assert_eq!(d.values().copied().collect::<Vec<_>>(), vec![1.0, 1.0]);
        let b = a.mapv(|v| if v == 1 { 3 } else { v });
        let d = dice_per_label(&a, &b).unwrap();
        assert_eq!(d[&1], 0.0);
        assert_eq!(d[&3], 0.0);
        assert_eq!(d[&2], 1.0);
    }
}
