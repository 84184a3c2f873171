//! The interactive viewer: NiiVue (vendored, [`NIIVUE_VERSION`]) with the template, the atlas
//! labels and one mean relevance map per method and group, in `<run>/report/viewer/`:
//!
//! | file | what |
//! |---|---|
//! | `index.html` | the viewer in a window of its own; `#method/group` picks the map |
//! | `viewer.json` | the index: atlas, grid, and per map its file, range and display scale |
//! | `data/anatomy.js` | the template and the atlas labels (NIfTI, gzip, base64) and the region names |
//! | `data/<method>_<group>.js` | one mean map (8-bit NIfTI, gzip, base64) |
//! | `niivue.umd.js`, `LICENSE-niivue.txt` | NiiVue's built file, unchanged, and its licences |
//! | `viewer.js` | the glue: loads the volumes, wires threshold, colour map and clicks |
//!
//! Pages opened from `file://` may load scripts but not `fetch()` files, so every volume travels
//! inside a script that hands it to the page; nothing is loaded from the network.

use std::path::{Path, PathBuf};

use adni_data::Affine;
use adni_data::atlas::Atlas;
use adni_data::fsutil::write_bytes_atomically;
use base64::Engine as _;
use ndarray::{Array3, ArrayView3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::nifti::{encode_grey, encode_labels, encode_map};
use super::{escape_html, page, script_json};
use crate::error::{ReportError, Result};

/// The vendored NiiVue release (npm `@niivue/niivue`), recorded with its sha256 in
/// `assets/niivue/VERSION`.
pub const NIIVUE_VERSION: &str = "0.69.0";
/// NiiVue's built file (`dist/niivue.umd.js`), unchanged.
const NIIVUE_JS: &str = include_str!("../../assets/niivue/niivue.umd.js");
const NIIVUE_LICENSE: &str = include_str!("../../assets/niivue/LICENSE");
const VIEWER_JS: &str = include_str!("../../assets/html/viewer.js");

/// The index file of a viewer folder.
pub const INDEX_FILE: &str = "viewer.json";
/// The viewer page of a viewer folder.
pub const PAGE_FILE: &str = "index.html";
/// Colour maps offered for the overlay (NiiVue's names), the first one the default.
pub const COLORMAPS: [&str; 7] = ["warm", "hot", "plasma", "viridis", "inferno", "red", "jet"];
/// The threshold a map opens with, as a share of its display maximum.
pub const DEFAULT_THRESHOLD: f64 = 0.25;
/// The percentile of a map's values shown at full colour (as in the static figures).
pub const DISPLAY_PERCENTILE: f64 = 99.9;

/// One mean relevance map to show.
#[derive(Debug, Clone)]
pub struct ViewerMap<'a> {
    /// The method's name (`occlusion`, `lrp`, …).
    pub method: String,
    /// The group of scans averaged (`AD`, `CN`, `all`).
    pub group: String,
    /// How many scans the mean is over, when known.
    pub scans: Option<usize>,
    /// The map on the template's grid.
    pub data: ArrayView3<'a, f32>,
}

/// The viewer's index (`viewer.json`), also embedded in every page that shows the viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewerIndex {
    /// The NiiVue version the folder was written with.
    pub niivue: String,
    /// The atlas whose regions a click names (`None`: no atlas).
    pub atlas: Option<String>,
    /// The model grid.
    pub grid: [usize; 3],
    /// Its voxel size in mm.
    pub voxel_mm: [f64; 3],
    /// The anatomy file, relative to the viewer folder.
    pub anatomy: String,
    /// One entry per map, in the order given.
    pub maps: Vec<ViewerEntry>,
    /// The colour maps offered, the default first.
    pub colormaps: Vec<String>,
    /// The threshold a map opens with, as a share of its display maximum.
    pub default_threshold: f64,
}

/// One map of a [`ViewerIndex`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewerEntry {
    /// `<method>_<group>`: the data file's stem and the key it registers.
    pub key: String,
    /// The method.
    pub method: String,
    /// The group.
    pub group: String,
    /// The data file, relative to the viewer folder.
    pub file: String,
    /// How many scans the mean is over, when known.
    pub scans: Option<usize>,
    /// Smallest value of the map.
    pub min: f64,
    /// Largest value of the map.
    pub max: f64,
    /// The value shown at full colour: the [`DISPLAY_PERCENTILE`]th percentile (0 for a map
    /// with nothing to show).
    pub display_max: f64,
    /// Stored steps between 0 and the largest magnitude (values are exact to half a step).
    pub levels: u32,
    /// Size of the data file in bytes.
    pub bytes: usize,
}

impl ViewerIndex {
    /// The entry of `method` and `group`.
    pub fn entry(&self, method: &str, group: &str) -> Option<&ViewerEntry> {
        self.maps.iter().find(|e| e.method == method && e.group == group)
    }

    /// The link to the viewer page showing `entry`, from the viewer folder's parent path
    /// `base` (e.g. `report/viewer/`).
    pub fn link(base: &str, entry: &ViewerEntry) -> String {
        format!("{base}{PAGE_FILE}#{}/{}", entry.method, entry.group)
    }
}

/// Writes the viewer into `dir` (see the module documentation): the template `background`
/// with its `affine`, the `atlas` on the same grid (region names on click), and `maps`. Data
/// files of maps no longer in `maps` are removed. Returns the index it wrote.
pub fn write_viewer(
    dir: &Path,
    background: ArrayView3<f32>,
    affine: &Affine,
    atlas: Option<&Atlas>,
    maps: &[ViewerMap<'_>],
) -> Result<ViewerIndex> {
    let shape = background.dim();
    for m in maps {
        if m.data.dim() != shape {
            return Err(ReportError::Shape(format!(
                "viewer: map {} {} has grid {:?}, the template {:?}",
                m.method,
                m.group,
                m.data.dim(),
                shape
            )));
        }
        for (what, s) in [("method", &m.method), ("group", &m.group)] {
            if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
                return Err(ReportError::invalid(what, format!("found `{s}`, expected letters, digits, `-` or `.`")));
            }
        }
    }
    if let Some(a) = atlas
        && a.labels.dim() != shape
    {
        return Err(ReportError::Shape(format!(
            "viewer: atlas {} has grid {:?}, the template {:?}",
            a.name,
            a.labels.dim(),
            shape
        )));
    }
    let data_dir = dir.join("data");
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    // The anatomy: template, labels as indices 1..n into the region names (0 = none).
    let template = encode_grey(background, affine, "adni-relevance template")?;
    let positive: Vec<f32> = background.iter().copied().filter(|v| *v > 0.0 && v.is_finite()).collect();
    let template_display_max =
        crate::figures::percentile(positive, 99.5).map(f64::from).filter(|v| *v > 0.0).unwrap_or(template.max.max(1.0));
    let (labels, regions) = match atlas {
        Some(a) => {
            if a.regions.len() >= u16::MAX as usize {
                return Err(ReportError::invalid("atlas", format!("{} has too many regions", a.name)));
            }
            let idx = label_indices(a);
            let mut names = vec![String::new()];
            names.extend(a.regions.iter().map(|r| r.name.clone()));
            (Some(encode_labels(idx.view(), affine, &format!("adni-relevance {} labels", a.name))?), names)
        }
        None => (None, vec![String::new()]),
    };
    let anatomy = serde_json::json!({
        "atlas": atlas.map(|a| a.name.clone()),
        "template": b64(&template.bytes),
        "template_display_max": template_display_max,
        "labels": labels.as_deref().map(b64),
        "regions": regions,
    });
    let anatomy_file = "data/anatomy.js";
    write_bytes_atomically(&dir.join(anatomy_file), data_script("anatomy", &anatomy).as_bytes())?;

    // One data file per map, encoded in parallel.
    let entries: Vec<ViewerEntry> = maps
        .par_iter()
        .map(|m| -> Result<ViewerEntry> {
            let key = format!("{}_{}", m.method, m.group);
            let e = encode_map(m.data, affine, &format!("adni-relevance {} {} mean", m.method, m.group))?;
            let display_max = crate::figures::overlay_max(m.data, DISPLAY_PERCENTILE).map_or(0.0, f64::from);
            let file = format!("data/{key}.js");
            let script = data_script(&key, &serde_json::json!({ "map": b64(&e.bytes) }));
            write_bytes_atomically(&dir.join(&file), script.as_bytes())?;
            Ok(ViewerEntry {
                key,
                method: m.method.clone(),
                group: m.group.clone(),
                file,
                scans: m.scans,
                min: e.min,
                max: e.max,
                display_max: if e.max > 0.0 { display_max.clamp(0.0, e.max) } else { 0.0 },
                levels: e.levels,
                bytes: script.len(),
            })
        })
        .collect::<Result<_>>()?;
    remove_stale(&data_dir, &entries)?;

    let vs = affine.voxel_sizes();
    let index = ViewerIndex {
        niivue: NIIVUE_VERSION.into(),
        atlas: atlas.map(|a| a.name.clone()),
        grid: [shape.0, shape.1, shape.2],
        voxel_mm: vs,
        anatomy: anatomy_file.into(),
        maps: entries,
        colormaps: COLORMAPS.iter().map(|s| s.to_string()).collect(),
        default_threshold: DEFAULT_THRESHOLD,
    };
    write_bytes_atomically(&dir.join("niivue.umd.js"), NIIVUE_JS.as_bytes())?;
    write_bytes_atomically(&dir.join("LICENSE-niivue.txt"), NIIVUE_LICENSE.as_bytes())?;
    write_bytes_atomically(&dir.join("viewer.js"), VIEWER_JS.as_bytes())?;
    let json = serde_json::to_string_pretty(&index)
        .map_err(|e| ReportError::invalid("viewer index", format!("not serialisable: {e}")))?;
    write_bytes_atomically(&dir.join(INDEX_FILE), json.as_bytes())?;
    write_bytes_atomically(&dir.join(PAGE_FILE), viewer_page(&index).as_bytes())?;
    Ok(index)
}

/// Reads `viewer.json` from a viewer folder; `None` when there is none.
pub fn read_viewer_index(dir: &Path) -> Result<Option<ViewerIndex>> {
    let path = dir.join(INDEX_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReportError::Data(adni_data::DataError::io(&path, e))),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ReportError::invalid(INDEX_FILE, format!("{}: {e}", path.display())))
}

/// The files of a viewer folder that pages need, relative to it (for checks that a run wrote
/// everything): the page, NiiVue, the glue, the anatomy and every map's data file.
pub fn viewer_files(index: &ViewerIndex) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        [PAGE_FILE, INDEX_FILE, "niivue.umd.js", "LICENSE-niivue.txt", "viewer.js"].map(PathBuf::from).to_vec();
    files.push(PathBuf::from(&index.anatomy));
    files.extend(index.maps.iter().map(|e| PathBuf::from(&e.file)));
    files
}

/// A data script: `ADNI_VIEWER_DATA("<key>", <json>);`.
fn data_script(key: &str, value: &serde_json::Value) -> String {
    format!("ADNI_VIEWER_DATA({}, {});\n", serde_json::Value::from(key), value)
}

/// Removes `data/*.js` files of maps that are not in `entries` (from an earlier run with other
/// methods), so the folder holds what the index says.
fn remove_stale(data_dir: &Path, entries: &[ViewerEntry]) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(data_dir) else { return Ok(()) };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".js") else { continue };
        if stem != "anatomy" && !entries.iter().any(|x| x.key == stem) {
            std::fs::remove_file(e.path()).map_err(|err| ReportError::Data(adni_data::DataError::io(e.path(), err)))?;
        }
    }
    Ok(())
}

/// The viewer's markup: controls, canvas, click panel, and the index for `viewer.js`. `base`
/// is the viewer folder seen from the page (`report/viewer/` from REPORT.html, empty from the
/// viewer's own page); `own_page` lets the URL's `#method/group` pick the map.
pub fn viewer_markup(index: &ViewerIndex, base: &str, own_page: bool) -> String {
    let atlas = index.atlas.as_deref().unwrap_or("no atlas");
    let full = if own_page {
        String::new()
    } else {
        format!(r#"<a class="nv-full" href="{}{PAGE_FILE}">full window</a>"#, escape_html(base))
    };
    format!(
        r#"<div class="nv-viewer" data-base="{base}"{hash}>
<script type="application/json" class="nv-index">{index_json}</script>
<div class="nv-controls">
<label>method <select class="nv-method"></select></label>
<label>group <select class="nv-group"></select></label>
<label>colour map <select class="nv-cmap"></select></label>
<label>threshold <input type="range" class="nv-threshold" min="0" max="1000" step="1" value="0"></label>
<span class="nv-threshold-value"></span>
<label>opacity <input type="range" class="nv-opacity" min="0" max="100" step="1" value="85"></label>
<label><input type="checkbox" class="nv-atlas"> show {atlas} regions</label>
{full}
</div>
<div class="nv-stage">
<div class="nv-canvas-box"><canvas></canvas></div>
<div class="nv-scale" hidden><span class="nv-scale-min"></span><span class="nv-scale-bar"></span><span class="nv-scale-max"></span></div>
<div class="nv-side">
<dl class="nv-info"><dt>click</dt><dd>a voxel in any view</dd></dl>
<p class="nv-status">loading the viewer…</p>
<p class="note">Coronal, sagittal and axial slices and a 3-D render (drag to turn it), in world
coordinates (mm). Click or drag in a slice to move the crosshair; the scroll wheel moves through
slices. Values are the mean map's, stored in {levels_note}.</p>
</div>
</div>
</div>"#,
        base = escape_html(base),
        hash = if own_page { " data-hash" } else { "" },
        index_json = script_json(index),
        atlas = escape_html(atlas),
        levels_note = "steps of 1/255 of the map's maximum (1/32767 for signed maps)",
    )
}

/// The viewer in a page of its own.
fn viewer_page(index: &ViewerIndex) -> String {
    let body = format!("<main>\n{}\n</main>", viewer_markup(index, "", true));
    page("Relevance maps · NiiVue viewer", Some("viewer-page"), &body, &["niivue.umd.js", "viewer.js"], "")
}

/// The per-method links table of REPORT.html: one row per method, a link per group.
pub fn links_table(index: &ViewerIndex, base: &str) -> String {
    let mut groups: Vec<&str> = Vec::new();
    let mut methods: Vec<&str> = Vec::new();
    for e in &index.maps {
        if !groups.contains(&e.group.as_str()) {
            groups.push(&e.group);
        }
        if !methods.contains(&e.method.as_str()) {
            methods.push(&e.method);
        }
    }
    let mut html = String::from("<table>\n<thead><tr><th>method</th>");
    for g in &groups {
        html.push_str(&format!("<th>{}</th>", escape_html(g)));
    }
    html.push_str("<th style=\"text-align: right\">AD map maximum</th></tr></thead>\n<tbody>\n");
    for m in &methods {
        html.push_str(&format!("<tr><td>{}</td>", escape_html(m)));
        for g in &groups {
            match index.entry(m, g) {
                Some(e) => {
                    let what = if e.max > 0.0 { "open" } else { "open (all zero)" };
                    let scans = e.scans.map(|n| format!(" · {n} scans")).unwrap_or_default();
                    html.push_str(&format!(
                        "<td><a href=\"{}\">{what}</a>{scans}</td>",
                        escape_html(&ViewerIndex::link(base, e))
                    ));
                }
                None => html.push_str("<td></td>"),
            }
        }
        let ad = index.entry(m, "AD").map(|e| crate::tables::format_float(e.max)).unwrap_or_default();
        html.push_str(&format!("<td style=\"text-align: right\">{ad}</td></tr>\n"));
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

/// The atlas labels of `atlas` as indices into its region list (for tests and callers that
/// want the same numbering as the viewer): 0 = no region, `i + 1` = `atlas.regions[i]`.
pub fn label_indices(atlas: &Atlas) -> Array3<u16> {
    let index_of: std::collections::HashMap<i32, u16> =
        atlas.regions.iter().enumerate().map(|(i, r)| (r.label, (i + 1) as u16)).collect();
    atlas.labels.mapv(|l| index_of.get(&l).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use adni_data::atlas::Region;
    use sha2::{Digest, Sha256};

    fn atlas(shape: (usize, usize, usize)) -> Atlas {
        let labels = Array3::from_shape_fn(shape, |(i, _, _)| if i < shape.0 / 2 { 17 } else { 53 });
        Atlas {
            name: "TestAtlas".into(),
            labels,
            affine: Affine::from_scale_offset([2.0; 3], [-10.0; 3]),
            regions: vec![Region::from_name(17, "Hippocampus (left)"), Region::from_name(53, "Hippocampus (right)")],
        }
    }

    #[test]
    fn vendored_niivue_matches_its_recorded_version_sha256_and_size() {
        let record = include_str!("../../assets/niivue/VERSION");
        let field = |k: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.trim().strip_prefix('=')))
                .map(|v| v.trim().trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("VERSION lacks {k}"))
        };
        assert_eq!(field("version"), NIIVUE_VERSION);
        assert_eq!(field("bytes").parse::<usize>().unwrap(), NIIVUE_JS.len());
        let sha: String = Sha256::digest(NIIVUE_JS.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(field("sha256"), sha);
        assert!(NIIVUE_LICENSE.contains("BSD 2-Clause") && NIIVUE_LICENSE.contains(NIIVUE_VERSION));
    }

    #[test]
    fn viewer_folder_holds_every_file_its_index_names() {
        let dir = tempfile::tempdir().unwrap();
        let shape = (6, 5, 4);
        let affine = Affine::from_scale_offset([2.0; 3], [-10.0; 3]);
        let background = Array3::from_shape_fn(shape, |(i, j, k)| (i + j + k) as f32);
        let ad = Array3::from_shape_fn(shape, |(i, _, _)| i as f32 * 1e-3);
        let zero = Array3::<f32>::zeros(shape);
        let maps = [
            ViewerMap { method: "occlusion".into(), group: "AD".into(), scans: Some(3), data: ad.view() },
            ViewerMap { method: "occlusion".into(), group: "CN".into(), scans: Some(2), data: zero.view() },
        ];
        // a stale file from an earlier run with another method goes
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/lrp_AD.js"), "old").unwrap();
        let a = atlas(shape);
        let index = write_viewer(dir.path(), background.view(), &affine, Some(&a), &maps).unwrap();
        assert!(!dir.path().join("data/lrp_AD.js").exists());
        for f in viewer_files(&index) {
            assert!(dir.path().join(&f).is_file(), "{} missing", f.display());
        }
        assert_eq!(read_viewer_index(dir.path()).unwrap().as_ref(), Some(&index));
        let e = index.entry("occlusion", "AD").unwrap();
        assert!((e.max - 5e-3).abs() < 1e-9 && e.display_max > 0.0 && e.display_max <= e.max);
        assert_eq!(index.entry("occlusion", "CN").unwrap().display_max, 0.0);
        assert_eq!(index.atlas.as_deref(), Some("TestAtlas"));

        // the anatomy script registers the region names, in the viewer's numbering
        let anatomy = std::fs::read_to_string(dir.path().join("data/anatomy.js")).unwrap();
        assert!(anatomy.starts_with("ADNI_VIEWER_DATA(\"anatomy\", {"), "{}", &anatomy[..60]);
        assert!(anatomy.contains(r#""regions":["","Hippocampus (left)","Hippocampus (right)"]"#), "{anatomy}");
        let idx = label_indices(&a);
        assert_eq!((idx[[0, 0, 0]], idx[[5, 0, 0]]), (1, 2));

        // the page loads NiiVue and the glue from beside itself, and names the maps
        let page = std::fs::read_to_string(dir.path().join(PAGE_FILE)).unwrap();
        assert!(page.contains(r#"<script src="niivue.umd.js"></script>"#) && page.contains("occlusion_AD"));
        assert!(page.contains("data-hash") && !page.contains("http://") && !page.contains("https://"));
        assert_eq!(ViewerIndex::link("report/viewer/", e), "report/viewer/index.html#occlusion/AD");
        let links = links_table(&index, "report/viewer/");
        assert!(links.contains("index.html#occlusion/CN\">open (all zero)</a>"), "{links}");
    }

    #[test]
    fn a_map_on_another_grid_or_a_bad_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let affine = Affine::identity();
        let bg = Array3::<f32>::zeros((3, 3, 3));
        let other = Array3::<f32>::zeros((3, 3, 4));
        let maps = [ViewerMap { method: "lrp".into(), group: "AD".into(), scans: None, data: other.view() }];
        let e = write_viewer(dir.path(), bg.view(), &affine, None, &maps).unwrap_err().to_string();
        assert!(e.contains("lrp AD") && e.contains("(3, 3, 4)"), "{e}");
        let same = Array3::<f32>::zeros((3, 3, 3));
        let maps = [ViewerMap { method: "a/b".into(), group: "AD".into(), scans: None, data: same.view() }];
        let e = write_viewer(dir.path(), bg.view(), &affine, None, &maps).unwrap_err().to_string();
        assert!(e.contains("a/b"), "{e}");
    }
}
