//! `REPORT.html`: the run's `REPORT.md` for the browser, with every table sortable, the tables
//! that REPORT.md only links embedded (collapsed) in the page, and an interactive NiiVue viewer
//! of the mean relevance maps over the template ([`viewer`]).
//!
//! The page is converted from the very Markdown text of `REPORT.md` (pulldown-cmark), so the two
//! never disagree. It opens from `file://` without a server and loads nothing from the network:
//! the style and the table script are inline, figures are the run's PNG files, and the viewer's
//! scripts and volumes lie in `report/viewer/`.

pub mod nifti;
pub mod viewer;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adni_data::fsutil::write_bytes_atomically;
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use crate::error::{ReportError, Result};
use viewer::ViewerIndex;

const CSS: &str = include_str!("../../assets/html/report.css");
const REPORT_JS: &str = include_str!("../../assets/html/report.js");

/// The report page beside `REPORT.md`.
pub const REPORT_FILE: &str = "REPORT.html";
/// The viewer folder, relative to the run folder.
pub const VIEWER_DIR: &str = "report/viewer";
/// The section that holds the viewer goes before the section with this title (at the end when
/// there is none).
pub const VIEWER_BEFORE: &str = "Figures";
/// The viewer section's title.
pub const VIEWER_TITLE: &str = "Interactive relevance maps";

/// Writes `<root>/REPORT.html` from `markdown` (the text of `REPORT.md`; relative links are
/// relative to `root`), with the viewer of `<root>/report/viewer/` when its `viewer.json` is
/// there. Returns the path written.
pub fn write_report_html(root: &Path, markdown: &str) -> Result<PathBuf> {
    let viewer = viewer::read_viewer_index(&root.join(VIEWER_DIR))?;
    let html = report_html(root, markdown, viewer.as_ref())?;
    let path = root.join(REPORT_FILE);
    write_bytes_atomically(&path, html.as_bytes())?;
    Ok(path)
}

/// The whole `REPORT.html` page: the Markdown converted, a table of contents, the viewer section
/// (when `viewer` is given) before the "Figures" section.
pub fn report_html(root: &Path, markdown: &str, viewer: Option<&ViewerIndex>) -> Result<String> {
    let base = format!("{VIEWER_DIR}/");
    let section =
        viewer.map(|v| Section { before: VIEWER_BEFORE, title: VIEWER_TITLE, html: viewer_section(v, &base) });
    let converted = convert(markdown, root, section.as_ref())?;
    let title = converted.headings.iter().find(|h| h.level == 1).map_or("Report".to_string(), |h| h.text.clone());
    let mut toc = String::from("<nav class=\"toc\" aria-label=\"contents\"><strong>Contents</strong><ol>\n");
    for h in converted.headings.iter().filter(|h| h.level == 2) {
        let _ = writeln!(toc, "<li><a href=\"#{}\">{}</a></li>", h.id, escape_html(&h.text));
    }
    toc.push_str("</ol></nav>\n");
    let body = match converted.html.find("<h2 ") {
        Some(at) => format!("{}{toc}{}", &converted.html[..at], &converted.html[at..]),
        None => converted.html,
    };
    let niivue = viewer.map_or(String::new(), |v| {
        format!(
            " The viewer is <a href=\"https://github.com/niivue/niivue\">NiiVue</a> {} (BSD-2-Clause; \
             <a href=\"{base}LICENSE-niivue.txt\">licences</a>), shipped in <code>{VIEWER_DIR}/</code>.",
            escape_html(&v.niivue)
        )
    });
    let body = format!(
        "<main>\n{body}\n<footer class=\"note\"><p>Converted from <a href=\"REPORT.md\">REPORT.md</a> by \
         adni-relevance; tables sort on a click on their header.{niivue}</p></footer>\n</main>"
    );
    let scripts: Vec<String> = match viewer {
        Some(_) => vec![format!("{base}niivue.umd.js"), format!("{base}viewer.js")],
        None => Vec::new(),
    };
    let scripts: Vec<&str> = scripts.iter().map(String::as_str).collect();
    Ok(page(&title, None, &body, &scripts, REPORT_JS))
}

/// The viewer section's body: what it shows, the viewer, and a link per method and group.
fn viewer_section(index: &ViewerIndex, base: &str) -> String {
    let atlas = index.atlas.as_deref().map_or(String::new(), |a| format!(" and its {} region", escape_html(a)));
    format!(
        "<p>The mean relevance map of each method over the template, per group of test scans (AD, CN, \
         all), on the model's {grid} grid of {mm} mm voxels. Click a voxel for its world coordinates in mm, \
         the map's value{atlas}; the threshold hides weaker relevance (it opens at {thr:.0} % of the map's \
         99.9th percentile, the top of the colour bar).</p>\n{markup}\n<p>Each map in a window of its \
         own:</p>\n{links}",
        grid = index.grid.map(|n| n.to_string()).join("×"),
        mm = index.voxel_mm.map(|v| format!("{}", (v * 1000.0).round() / 1000.0)).join(" × "),
        thr = 100.0 * index.default_threshold,
        markup = viewer::viewer_markup(index, base, false),
        links = viewer::links_table(index, base),
    )
}

/// A complete HTML document: inline style, `body` (already HTML), then the external `scripts`
/// in order and one inline script.
fn page(title: &str, body_class: Option<&str>, body: &str, scripts: &[&str], inline_js: &str) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body{}>\n{body}\n",
        escape_html(title),
        body_class.map_or(String::new(), |c| format!(" class=\"{}\"", escape_html(c))),
    );
    if !inline_js.is_empty() {
        let _ = writeln!(html, "<script>\n{inline_js}</script>");
    }
    for s in scripts {
        let _ = writeln!(html, "<script src=\"{}\"></script>", escape_html(s));
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// Escapes text for HTML content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as JSON that is safe inside a `<script>` element (no `<`, so no `</script>`).
fn script_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into()).replace('<', "\\u003c")
}

/// A heading of the converted page.
#[derive(Debug, Clone, PartialEq)]
struct Heading {
    level: u8,
    id: String,
    text: String,
}

/// A section written in HTML, inserted before the level-2 heading titled `before`.
struct Section<'a> {
    before: &'a str,
    title: &'a str,
    html: String,
}

struct Converted {
    html: String,
    headings: Vec<Heading>,
}

/// A Markdown table file that a list item links, embedded in its place.
struct TableItem {
    /// Index of the item's closing event.
    end: usize,
    /// The link as written (relative to the run folder).
    link: String,
    /// The file.
    path: PathBuf,
}

fn parser(md: &str) -> Parser<'_> {
    Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH)
}

/// Converts the report's Markdown: headings get ids (and the list of them), a list item whose
/// first link is a table of `report/tables/` becomes that table, collapsed, links to such tables
/// point at them in the page, and `section` goes in before its heading.
fn convert<'a>(md: &'a str, root: &Path, section: Option<&Section<'_>>) -> Result<Converted> {
    let events: Vec<Event<'a>> = parser(md).collect();
    let items = table_items(&events, root);
    let mut ids: HashSet<String> = HashSet::new();
    let table_ids: HashMap<String, String> = items
        .values()
        .map(|t| {
            let id = unique_id(&mut ids, &format!("table-{}", slug(&file_stem(&t.path))));
            (t.link.clone(), id)
        })
        .collect();
    let rewrite = |e: Event<'a>| rewrite_table_link(e, &table_ids);

    let mut out: Vec<Event<'a>> = Vec::with_capacity(events.len());
    let mut headings: Vec<Heading> = Vec::new();
    let mut inserted = section.is_none();
    let mut i = 0;
    while i < events.len() {
        match &events[i] {
            Event::Start(Tag::Heading { level, .. }) => {
                let level = heading_number(*level);
                let end = (i..events.len()).find(|&j| matches!(events[j], Event::End(TagEnd::Heading(_)))).unwrap_or(i);
                let inner = &events[i + 1..end];
                let text = plain_text(inner);
                if !inserted
                    && level == 2
                    && let Some(s) = section
                    && text.trim() == s.before
                {
                    out.push(Event::Html(section_html(s, &mut ids, &mut headings).into()));
                    inserted = true;
                }
                let id = unique_id(&mut ids, &slug(&text));
                let mut inner_html = String::new();
                pulldown_cmark::html::push_html(&mut inner_html, inner.iter().cloned().map(&rewrite));
                out.push(Event::Html(
                    format!(
                        "<h{level} id=\"{id}\">{inner_html}<a class=\"anchor\" href=\"#{id}\" \
                         aria-label=\"link to this section\">#</a></h{level}>\n"
                    )
                    .into(),
                ));
                headings.push(Heading { level, id, text });
                i = end + 1;
            }
            Event::Start(Tag::Item) if items.contains_key(&i) => {
                let t = &items[&i];
                out.push(Event::Start(Tag::Item));
                out.push(Event::Html(embedded_table(t, &table_ids[&t.link])?.into()));
                out.push(Event::End(TagEnd::Item));
                i = t.end + 1;
            }
            e => {
                out.push(rewrite(e.clone()));
                i += 1;
            }
        }
    }
    if !inserted && let Some(s) = section {
        out.push(Event::Html(section_html(s, &mut ids, &mut headings).into()));
    }
    let mut html = String::with_capacity(md.len() * 2);
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    let html = html
        .replace("<table>", "<div class=\"table-wrap\"><table>")
        .replace("</table>", "</table></div>")
        .replace("<img src=", "<img loading=\"lazy\" src=");
    Ok(Converted { html, headings })
}

/// A link to an embedded table file, pointed at the table in the page.
fn rewrite_table_link<'a>(e: Event<'a>, table_ids: &HashMap<String, String>) -> Event<'a> {
    match e {
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            let dest_url = match table_ids.get(dest_url.as_ref()) {
                Some(anchor) => format!("#{anchor}").into(),
                None => dest_url,
            };
            Event::Start(Tag::Link { link_type, dest_url, title, id })
        }
        other => other,
    }
}

fn section_html(s: &Section<'_>, ids: &mut HashSet<String>, headings: &mut Vec<Heading>) -> String {
    let id = unique_id(ids, &slug(s.title));
    headings.push(Heading { level: 2, id: id.clone(), text: s.title.to_string() });
    format!(
        "<section class=\"viewer-section\">\n<h2 id=\"{id}\">{}<a class=\"anchor\" href=\"#{id}\" \
         aria-label=\"link to this section\">#</a></h2>\n{}\n</section>\n",
        escape_html(s.title),
        s.html
    )
}

/// The list items (by the index of their opening event) whose first link is a Markdown table
/// file in a `tables` folder under `root`; items holding a nested list are left alone.
fn table_items(events: &[Event<'_>], root: &Path) -> HashMap<usize, TableItem> {
    let mut found = HashMap::new();
    for (i, e) in events.iter().enumerate() {
        if !matches!(e, Event::Start(Tag::Item)) {
            continue;
        }
        let mut depth = 0usize;
        let mut end = None;
        for (j, f) in events.iter().enumerate().skip(i) {
            match f {
                Event::Start(Tag::Item) => depth += 1,
                Event::End(TagEnd::Item) => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else { continue };
        let body = &events[i + 1..end];
        if body.iter().any(|f| matches!(f, Event::Start(Tag::List(_)))) {
            continue;
        }
        let first_link = body.iter().find_map(|f| match f {
            Event::Start(Tag::Link { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        });
        if let Some(link) = first_link
            && let Some(path) = table_file(root, &link)
        {
            found.insert(i, TableItem { end, link, path });
        }
    }
    found
}

/// The file a relative link `link` names when it is a Markdown table in a `tables` folder.
fn table_file(root: &Path, link: &str) -> Option<PathBuf> {
    if link.contains("://") || link.starts_with(['#', '/']) || !link.ends_with(".md") {
        return None;
    }
    let path = root.join(link);
    let in_tables = path.parent().and_then(|p| p.file_name()).is_some_and(|n| n == "tables");
    (in_tables && path.is_file()).then_some(path)
}

/// A table file as a collapsed, sortable table with its size and CSV link.
fn embedded_table(t: &TableItem, id: &str) -> Result<String> {
    let md = std::fs::read_to_string(&t.path).map_err(|e| ReportError::Data(adni_data::DataError::io(&t.path, e)))?;
    let rows = md.lines().filter(|l| l.trim_start().starts_with('|')).count().saturating_sub(2);
    let mut table = String::new();
    pulldown_cmark::html::push_html(&mut table, parser(&md));
    let stem = file_stem(&t.path);
    let csv = t.link.strip_suffix(".md").map(|s| format!("{s}.csv")).unwrap_or_default();
    let csv_link = if t.path.with_extension("csv").is_file() {
        format!(" · <a href=\"{}\">csv</a>", escape_html(&csv))
    } else {
        String::new()
    };
    Ok(format!(
        "<details class=\"table\" id=\"{id}\"><summary><code>{}</code> · {rows} row{}{csv_link}</summary>\n{table}</details>\n",
        escape_html(&stem),
        if rows == 1 { "" } else { "s" }
    ))
}

fn file_stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

fn heading_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// The text of inline events (code spans included, markup dropped).
fn plain_text(events: &[Event<'_>]) -> String {
    let mut s = String::new();
    for e in events {
        match e {
            Event::Text(t) | Event::Code(t) => s.push_str(t),
            Event::SoftBreak | Event::HardBreak => s.push(' '),
            _ => {}
        }
    }
    s
}

/// A URL fragment from a heading: lower-case letters and digits, other runs as one `-`.
fn slug(text: &str) -> String {
    let mut s = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let s = s.trim_matches('-').to_string();
    if s.is_empty() { "section".into() } else { s }
}

/// `base`, or `base-2`, `base-3`… when taken; the id is recorded as taken.
fn unique_id(ids: &mut HashSet<String>, base: &str) -> String {
    let mut id = base.to_string();
    let mut n = 2;
    while ids.contains(&id) {
        id = format!("{base}-{n}");
        n += 1;
    }
    ids.insert(id.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD: &str = "# Reproduction — `quick`\n\nIntro with a [summary](report/tables/t1.md).\n\n\
## Data\n\n| stage | count |\n|---|---:|\n| a | 3 |\n| b | 12 |\n| c | 1 |\n\n\
## Figures\n\n### roc\n\n![roc](report/figures/roc.png)\n\n\
## Tables\n\n- [t1](report/tables/t1.md) ([csv](report/tables/t1.csv))\n- [missing](report/tables/none.md)\n\n\
## Data\n\nA second section with the same title.\n";

    fn run_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("report/tables");
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(t.join("t1.md"), "| method | score |\n|---|---:|\n| a\\|b | 0.5 |\n| c | NaN |\n").unwrap();
        std::fs::write(t.join("t1.csv"), "method,score\n").unwrap();
        dir
    }

    #[test]
    fn headings_get_unique_ids_and_a_table_of_contents() {
        let dir = run_folder();
        let html = report_html(dir.path(), MD, None).unwrap();
        assert!(html.contains("<title>Reproduction — quick</title>"), "{html}");
        assert!(html.contains("<h2 id=\"data\">Data<a class=\"anchor\""));
        assert!(html.contains("<h2 id=\"data-2\">Data"));
        assert!(html.contains("<h3 id=\"roc\">roc"));
        assert!(html.contains("<li><a href=\"#figures\">Figures</a></li>"));
        // the table of contents comes after the title, before the first section
        let (toc, h1, h2) = (html.find("class=\"toc\"").unwrap(), html.find("<h1").unwrap(), html.find("<h2").unwrap());
        assert!(h1 < toc && toc < h2);
    }

    #[test]
    fn linked_tables_are_embedded_collapsed_and_links_point_at_them() {
        let dir = run_folder();
        let html = report_html(dir.path(), MD, None).unwrap();
        // the item became the table, with its size and CSV link; the escaped pipe survives
        assert!(html.contains("<details class=\"table\" id=\"table-t1\"><summary><code>t1</code> · 2 rows · <a href=\"report/tables/t1.csv\">csv</a>"), "{html}");
        assert!(html.contains("<td>a|b</td>"), "{html}");
        // the in-text link goes to the embedded table
        assert!(html.contains("<a href=\"#table-t1\">summary</a>"), "{html}");
        // a link to a file that does not exist stays a link
        assert!(html.contains("<a href=\"report/tables/none.md\">missing</a>"));
        // every table is wrapped for horizontal scrolling; the inline script makes them sortable
        assert_eq!(html.matches("<div class=\"table-wrap\"><table>").count(), html.matches("<table>").count());
        assert!(
            html.contains("function sortBy(") && html.contains("<img loading=\"lazy\" src=\"report/figures/roc.png\"")
        );
        assert!(!html.contains("<script src="), "no viewer, no viewer scripts");
    }

    #[test]
    fn the_viewer_section_goes_before_the_figures_and_loads_niivue_from_the_run_folder() {
        let dir = run_folder();
        let index = ViewerIndex {
            niivue: viewer::NIIVUE_VERSION.into(),
            atlas: Some("CerebrA".into()),
            grid: [97, 115, 97],
            voxel_mm: [2.0; 3],
            anatomy: "data/anatomy.js".into(),
            maps: vec![viewer::ViewerEntry {
                key: "lrp_AD".into(),
                method: "lrp".into(),
                group: "AD".into(),
                file: "data/lrp_AD.js".into(),
                scans: Some(4),
                min: 0.0,
                max: 2.0,
                display_max: 1.0,
                levels: 255,
                bytes: 10,
            }],
            colormaps: vec!["warm".into()],
            default_threshold: 0.25,
        };
        let html = report_html(dir.path(), MD, Some(&index)).unwrap();
        let (viewer, figures) =
            (html.find("<h2 id=\"interactive-relevance-maps\"").unwrap(), html.find("<h2 id=\"figures\"").unwrap());
        assert!(viewer < figures);
        assert!(html.contains("<li><a href=\"#interactive-relevance-maps\">Interactive relevance maps</a></li>"));
        assert!(html.contains("class=\"nv-viewer\" data-base=\"report/viewer/\""));
        assert!(html.contains("<a href=\"report/viewer/index.html#lrp/AD\">open</a> · 4 scans"), "{html}");
        assert!(html.contains("97×115×97 grid of 2 × 2 × 2 mm voxels"), "{html}");
        let niivue = html.find("<script src=\"report/viewer/niivue.umd.js\"></script>").unwrap();
        let glue = html.find("<script src=\"report/viewer/viewer.js\"></script>").unwrap();
        assert!(niivue < glue);
        // no Figures section: the viewer goes at the end
        let html = report_html(dir.path(), "# T\n\n## Data\n\ntext\n", Some(&index)).unwrap();
        assert!(html.find("id=\"data\"").unwrap() < html.find("id=\"interactive-relevance-maps\"").unwrap());
    }

    #[test]
    fn text_is_escaped_and_script_json_cannot_close_its_element() {
        assert_eq!(escape_html("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(script_json(&vec!["</script>"]), "[\"\\u003c/script>\"]");
        assert_eq!(slug("Can the maps be trusted? (sanity checks)"), "can-the-maps-be-trusted-sanity-checks");
        assert_eq!(slug("Dose–response and null check"), "dose-response-and-null-check");
        assert_eq!(slug("??"), "section");
    }
}
