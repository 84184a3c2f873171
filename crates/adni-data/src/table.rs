//! ADNI metadata tables: reading, validating and writing the 1.5 T and 3 T CSV schemas.
//!
//! The CSV is parsed by polars with every column read as a string; each row is then validated in
//! Rust into a typed [`ScanRecord`], so that a bad value is reported with its row (1-based, the
//! header is row 1), its column, the value and what was expected, instead of being silently
//! coerced to null by type inference.

use std::collections::HashMap;
use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::fsutil::write_bytes_atomically;

/// The exact header of the 1.5 T table ("ADNI1 Complete Annual 2 Yr 1.5T"), in order.
pub const COLUMNS_15T: [&str; 17] = [
    "RID",
    "PTID",
    "VISCODE",
    "DX",
    "EXAMDATE",
    "Image.ID",
    "Scan.Date",
    "Sequence",
    "Visit",
    "Month_bl",
    "Screen.Diagnosis",
    "Study.ID",
    "Series.ID",
    "label_three_fold",
    "label_CN_AD",
    "label_CN_MCI",
    "label_MCI_AD",
];

/// The exact header of the 3 T table: the first 13 columns of [`COLUMNS_15T`].
pub const COLUMNS_3T: [&str; 13] = [
    "RID",
    "PTID",
    "VISCODE",
    "DX",
    "EXAMDATE",
    "Image.ID",
    "Scan.Date",
    "Sequence",
    "Visit",
    "Month_bl",
    "Screen.Diagnosis",
    "Study.ID",
    "Series.ID",
];

/// The patient-id column (`PTID`), which every per-scan table of the project keeps.
pub const PTID: &str = COLUMNS_15T[1];
/// The image-id column (`Image.ID`), the key that per-scan tables are joined on.
pub const IMAGE_ID: &str = COLUMNS_15T[5];

/// The four label columns that only the 1.5 T table has.
const LABEL_COLUMNS: [&str; 4] = ["label_three_fold", "label_CN_AD", "label_CN_MCI", "label_MCI_AD"];

/// The literal the tables use for a missing label.
pub const NOT_AVAILABLE: &str = "N/A";

/// A clinical diagnosis as written in the `DX` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Diagnosis {
    /// Cognitively normal (`CN`).
    CN,
    /// Mild cognitive impairment (`MCI`).
    MCI,
    /// Alzheimer's disease dementia (`Dementia`); the positive class (AD) of the study.
    Dementia,
}

impl Diagnosis {
    /// All diagnoses, in the order CN, MCI, Dementia.
    pub const ALL: [Diagnosis; 3] = [Diagnosis::CN, Diagnosis::MCI, Diagnosis::Dementia];

    /// The spelling used in the `DX` column (`CN`, `MCI`, `Dementia`).
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnosis::CN => "CN",
            Diagnosis::MCI => "MCI",
            Diagnosis::Dementia => "Dementia",
        }
    }

    /// The short class name used in reports (`CN`, `MCI`, `AD`).
    pub fn class_name(self) -> &'static str {
        match self {
            Diagnosis::CN => "CN",
            Diagnosis::MCI => "MCI",
            Diagnosis::Dementia => "AD",
        }
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Diagnosis {
    type Err = String;

    /// Accepts exactly `CN`, `MCI` or `Dementia`.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Diagnosis::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("expected CN, MCI or Dementia, got `{s}`"))
    }
}

/// Which of the two ADNI tables a file is, detected from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldStrength {
    /// 1.5 T table: all 17 columns of [`COLUMNS_15T`].
    T15,
    /// 3 T table: the 13 columns of [`COLUMNS_3T`], no label columns.
    T3,
}

impl FieldStrength {
    /// The required columns of a table of this field strength, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            FieldStrength::T15 => &COLUMNS_15T,
            FieldStrength::T3 => &COLUMNS_3T,
        }
    }
}

impl fmt::Display for FieldStrength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldStrength::T15 => "1.5 T",
            FieldStrength::T3 => "3 T",
        })
    }
}

/// A `Scan.Date` as the tables write it: `M/D/YY`, month and day without zero padding, two-digit
/// year (e.g. `9/12/06`). [`Display`](fmt::Display) writes it back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScanDate {
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31 (checked against the month).
    pub day: u8,
    /// Two-digit year as written (`6` for 2006); see [`ScanDate::full_year`].
    pub year: u8,
}

impl ScanDate {
    /// A checked date; `None` if the month, day or two-digit year is out of range.
    pub fn new(month: u8, day: u8, year: u8) -> Option<ScanDate> {
        let full = 2000 + i32::from(year);
        let ok = year <= 99 && (1..=12).contains(&month) && day >= 1 && day <= days_in_month(full, month);
        ok.then_some(ScanDate { month, day, year })
    }

    /// The year with its century: ADNI scans are all from the 2000s, so `2000 + year`.
    pub fn full_year(self) -> i32 {
        2000 + i32::from(self.year)
    }

    /// Whether the fields form a real date (useful for records built by hand).
    pub fn is_valid(self) -> bool {
        ScanDate::new(self.month, self.day, self.year).is_some()
    }
}

impl fmt::Display for ScanDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{:02}", self.month, self.day, self.year)
    }
}

impl FromStr for ScanDate {
    type Err = String;

    /// Parses `M/D/YY` strictly: no zero padding on month or day, exactly two year digits.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || format!("expected a date M/D/YY without zero padding (e.g. 9/12/06), got `{s}`");
        let parts: Vec<&str> = s.split('/').collect();
        let [m, d, y] = parts.as_slice() else {
            return Err(bad());
        };
        let unpadded =
            |p: &str| !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) && !p.starts_with('0');
        if !unpadded(m) || !unpadded(d) || y.len() != 2 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let (m, d, y) = match (m.parse(), d.parse(), y.parse()) {
            (Ok(m), Ok(d), Ok(y)) => (m, d, y),
            _ => return Err(bad()),
        };
        ScanDate::new(m, d, y).ok_or_else(bad)
    }
}

impl Serialize for ScanDate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether `s` is an ISO date `YYYY-MM-DD` that exists in the calendar.
pub fn is_valid_iso_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !digits(0..4) || !digits(5..7) || !digits(8..10) {
        return false;
    }
    let (Ok(y), Ok(m), Ok(d)) = (s[0..4].parse::<i32>(), s[5..7].parse::<u8>(), s[8..10].parse::<u8>()) else {
        return false;
    };
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

/// Whether `s` is an ADNI patient id `NNN_S_NNNN` (site, `S`, subject), e.g. `011_S_0003`.
pub fn is_valid_ptid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[..3].iter().all(u8::is_ascii_digit)
        && &b[3..6] == b"_S_"
        && b[6..].iter().all(u8::is_ascii_digit)
}

/// One row of an ADNI metadata table: one scan of one patient at one visit.
///
/// All fields are public so that the synthetic cohort generator can build records and write them
/// with [`write_adni_table`]; that function checks them with the same rules as the reader.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanRecord {
    /// `RID`: ADNI roster id.
    pub rid: i64,
    /// `PTID`: patient id `NNN_S_NNNN`.
    pub ptid: String,
    /// `VISCODE`: visit code (`bl`, `m12`, `m24`, …); not empty.
    pub viscode: String,
    /// `DX`: diagnosis at this visit.
    pub dx: Diagnosis,
    /// `EXAMDATE`: ISO date `YYYY-MM-DD`.
    pub examdate: String,
    /// `Image.ID`: unique per table.
    pub image_id: i64,
    /// `Scan.Date`: `M/D/YY`.
    pub scan_date: ScanDate,
    /// `Sequence`: free text such as `MPR; GradWarp; B1 Correction; N3; Scaled`.
    pub sequence: String,
    /// `Visit`: `Screening` / `Baseline` / `Month 12` / `Month 24` …; not empty.
    pub visit: String,
    /// `Month_bl`: months since baseline (finite).
    pub month_bl: f64,
    /// `Screen.Diagnosis`: NL / MCI / AD (free text, may be empty).
    pub screen_diagnosis: String,
    /// `Study.ID`.
    pub study_id: i64,
    /// `Series.ID`.
    pub series_id: i64,
    /// `label_three_fold` (0/1/2), `None` for `N/A`, empty or a 3 T table.
    pub label_three_fold: Option<u8>,
    /// `label_CN_AD` (0/1/2), `None` for `N/A`, empty or a 3 T table.
    pub label_cn_ad: Option<u8>,
    /// `label_CN_MCI` (0/1/2), `None` for `N/A`, empty or a 3 T table.
    pub label_cn_mci: Option<u8>,
    /// `label_MCI_AD` (0/1/2), `None` for `N/A`, empty or a 3 T table.
    pub label_mci_ad: Option<u8>,
}

impl ScanRecord {
    fn labels(&self) -> [Option<u8>; 4] {
        [self.label_three_fold, self.label_cn_ad, self.label_cn_mci, self.label_mci_ad]
    }
}

/// A validated ADNI metadata table.
#[derive(Debug, Clone, PartialEq)]
pub struct AdniTable {
    /// The file it was read from.
    pub path: PathBuf,
    /// 1.5 T (17 columns) or 3 T (13 columns), detected from the header.
    pub field_strength: FieldStrength,
    /// The rows, in file order.
    pub records: Vec<ScanRecord>,
}

impl AdniTable {
    /// Number of rows (scans).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The table as a typed polars frame: integer ids as `i64`, `Month_bl` as `f64`, labels as
    /// nullable `i32` (null for `N/A`), everything else as strings. A 3 T table has 13 columns.
    pub fn to_dataframe(&self) -> Result<DataFrame> {
        records_dataframe(&self.records, self.field_strength)
    }
}

/// Builds the typed frame of `records` with the columns of `field_strength`.
fn records_dataframe(records: &[ScanRecord], field_strength: FieldStrength) -> Result<DataFrame> {
    let col_i64 = |name: &str, f: &dyn Fn(&ScanRecord) -> i64| {
        Column::new(name.into(), records.iter().map(f).collect::<Vec<i64>>())
    };
    let col_str = |name: &str, f: &dyn Fn(&ScanRecord) -> String| {
        Column::new(name.into(), records.iter().map(f).collect::<Vec<String>>())
    };
    let mut columns = vec![
        col_i64("RID", &|r| r.rid),
        col_str("PTID", &|r| r.ptid.clone()),
        col_str("VISCODE", &|r| r.viscode.clone()),
        col_str("DX", &|r| r.dx.as_str().to_owned()),
        col_str("EXAMDATE", &|r| r.examdate.clone()),
        col_i64("Image.ID", &|r| r.image_id),
        col_str("Scan.Date", &|r| r.scan_date.to_string()),
        col_str("Sequence", &|r| r.sequence.clone()),
        col_str("Visit", &|r| r.visit.clone()),
        Column::new("Month_bl".into(), records.iter().map(|r| r.month_bl).collect::<Vec<f64>>()),
        col_str("Screen.Diagnosis", &|r| r.screen_diagnosis.clone()),
        col_i64("Study.ID", &|r| r.study_id),
        col_i64("Series.ID", &|r| r.series_id),
    ];
    if field_strength == FieldStrength::T15 {
        for (i, name) in LABEL_COLUMNS.iter().enumerate() {
            let values: Vec<Option<i32>> = records.iter().map(|r| r.labels()[i].map(i32::from)).collect();
            columns.push(Column::new((*name).into(), values));
        }
    }
    Ok(DataFrame::new(records.len(), columns)?)
}

/// A CSV table read as text: the frame and, for each of its rows, the line of the file it came
/// from (blank lines are skipped, so the two can differ).
pub(crate) struct CsvTable {
    /// The string columns.
    pub(crate) df: DataFrame,
    /// The 1-based file line of each data row (the header is line 1 unless blank lines precede it).
    lines: Vec<usize>,
}

impl CsvTable {
    /// The number of data rows.
    pub(crate) fn height(&self) -> usize {
        self.df.height()
    }

    /// The file line of data row `i` (0-based).
    pub(crate) fn line(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(i + 2)
    }
}

/// Reads a CSV file into a frame of string columns (no type inference), with errors naming the
/// file. Blank (whitespace-only) lines are skipped, as pandas and R do: a table that ends in an
/// empty line, or has one between its rows, reads as if they were not there. An empty file is an
/// error mentioning `expected_header`.
pub(crate) fn read_csv_as_strings(path: &Path, expected_header: &str) -> Result<CsvTable> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let mut kept = Vec::with_capacity(bytes.len());
    let mut lines = Vec::new();
    let mut header_seen = false;
    for (n, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let content = line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if header_seen {
            lines.push(n + 1);
        }
        header_seen = true;
        kept.extend_from_slice(line);
    }
    if !header_seen {
        return Err(table_error(path, format!("empty file, expected a header row `{expected_header}`")));
    }
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(Cursor::new(kept))
        .finish()
        .map_err(|e| table_error(path, format!("not a well-formed CSV table: {e}")))?;
    // polars renames a repeated column (`DX_duplicated_0`) and would silently read the first one.
    let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
    let base = |name: &'_ str| -> String {
        let original = match name.rfind("_duplicated_") {
            Some(k) if names.contains(&&name[..k]) && name[k + 12..].parse::<usize>().is_ok() => &name[..k],
            _ => name,
        };
        original.trim().trim_start_matches('\u{feff}').to_string()
    };
    let bases: Vec<String> = names.iter().map(|n| base(n)).collect();
    for (j, name) in bases.iter().enumerate() {
        if let Some(i) = bases[..j].iter().position(|n| n == name) {
            return Err(table_error(
                path,
                format!(
                    "column `{name}` appears twice in the header (columns {} and {}), expected each column once",
                    i + 1,
                    j + 1
                ),
            ));
        }
    }
    Ok(CsvTable { df, lines })
}

fn table_error(path: &Path, message: String) -> DataError {
    DataError::Table { path: path.to_path_buf(), message }
}

/// The string columns of a frame, addressed by name, with errors naming row and column.
pub(crate) struct StringColumns<'a> {
    path: &'a Path,
    table: &'a CsvTable,
    columns: Vec<(&'static str, &'a StringChunked)>,
}

impl<'a> StringColumns<'a> {
    /// Looks up `names` in `df`; a missing one is an error naming the file and the column.
    pub(crate) fn new(path: &'a Path, table: &'a CsvTable, names: &[&'static str], what: &str) -> Result<Self> {
        let mut columns = Vec::with_capacity(names.len());
        for &name in names {
            let column =
                table.df.column(name).map_err(|_| table_error(path, format!("missing column `{name}` ({what})")))?;
            let ca =
                column.str().map_err(|e| table_error(path, format!("column `{name}` was not read as text: {e}")))?;
            columns.push((name, ca));
        }
        Ok(StringColumns { path, table, columns })
    }

    /// The raw text of column `name` at data row `i` (0-based); null reads as empty.
    pub(crate) fn raw(&self, name: &str, i: usize) -> &'a str {
        self.columns.iter().find(|(n, _)| *n == name).and_then(|(_, ca)| ca.get(i)).unwrap_or("")
    }

    /// The file line of data row `i` (what the errors call its row).
    pub(crate) fn line(&self, i: usize) -> usize {
        self.table.line(i)
    }

    /// Parses column `name` at data row `i` with `parse`; a failure names row and column, followed
    /// by `parse`'s message, which must say what was expected and quote the value.
    pub(crate) fn parse<T>(
        &self,
        name: &str,
        i: usize,
        parse: impl FnOnce(&str) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let value = self.raw(name, i);
        parse(value)
            .map_err(|expected| table_error(self.path, format!("row {}, column `{name}`: {expected}", self.line(i))))
    }
}

pub(crate) fn parse_i64(s: &str) -> std::result::Result<i64, String> {
    s.parse().map_err(|_| format!("expected an integer, got `{s}`"))
}

fn parse_f64(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got `{s}`")),
    }
}

/// Parses a `PTID` (`NNN_S_NNNN`).
pub(crate) fn parse_ptid(s: &str) -> std::result::Result<String, String> {
    if is_valid_ptid(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected a patient id NNN_S_NNNN (e.g. 011_S_0003), got `{s}`"))
    }
}

fn parse_iso_date(s: &str) -> std::result::Result<String, String> {
    if is_valid_iso_date(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected an ISO date YYYY-MM-DD (e.g. 2006-09-12), got `{s}`"))
    }
}

fn parse_non_empty(s: &str) -> std::result::Result<String, String> {
    if s.trim().is_empty() { Err(format!("expected a non-empty value, got `{s}`")) } else { Ok(s.to_owned()) }
}

fn parse_label(s: &str) -> std::result::Result<Option<u8>, String> {
    match s {
        "" | NOT_AVAILABLE => Ok(None),
        "0" => Ok(Some(0)),
        "1" => Ok(Some(1)),
        "2" => Ok(Some(2)),
        _ => Err(format!("expected a label 0, 1, 2 or {NOT_AVAILABLE}, got `{s}`")),
    }
}

/// Detects the schema from the header: all 17 columns → 1.5 T; the first 13 and none of the
/// label columns → 3 T; otherwise the first missing required column is named.
fn detect_field_strength(path: &Path, names: &[&str]) -> Result<FieldStrength> {
    let has = |c: &str| names.contains(&c);
    let any_label = LABEL_COLUMNS.iter().any(|c| has(c));
    let (fs, required): (FieldStrength, &[&str]) =
        if any_label { (FieldStrength::T15, &COLUMNS_15T) } else { (FieldStrength::T3, &COLUMNS_3T) };
    if let Some(missing) = required.iter().find(|c| !has(c)) {
        let what = match fs {
            FieldStrength::T15 => "a 1.5 T table has the 17 columns RID … label_MCI_AD",
            FieldStrength::T3 => "a 3 T table has the 13 columns RID … Series.ID",
        };
        return Err(table_error(path, format!("missing column `{missing}` ({what})")));
    }
    Ok(fs)
}

/// Reads and validates an ADNI metadata table (1.5 T or 3 T, detected from the header).
///
/// Extra columns are ignored. Every value is checked; the first bad one is reported with its
/// row (header = row 1), column, value and the expected form. `Image.ID` must be unique.
pub fn read_adni_table(path: &Path) -> Result<AdniTable> {
    let table = read_csv_as_strings(path, &COLUMNS_15T.join(","))?;
    let df = &table.df;
    let names: Vec<&str> = df.get_column_names().into_iter().map(|n| n.as_str()).collect();
    let field_strength = detect_field_strength(path, &names)?;
    let cols = StringColumns::new(path, &table, field_strength.columns(), "required by the ADNI table schema")?;

    let mut records = Vec::with_capacity(df.height());
    let mut first_row_of_image: HashMap<i64, usize> = HashMap::new();
    for i in 0..df.height() {
        let labels = match field_strength {
            FieldStrength::T15 => {
                let mut l = [None; 4];
                for (slot, name) in l.iter_mut().zip(LABEL_COLUMNS) {
                    *slot = cols.parse(name, i, parse_label)?;
                }
                l
            }
            FieldStrength::T3 => [None; 4],
        };
        let rec = ScanRecord {
            rid: cols.parse("RID", i, parse_i64)?,
            ptid: cols.parse("PTID", i, parse_ptid)?,
            viscode: cols.parse("VISCODE", i, parse_non_empty)?,
            dx: cols.parse("DX", i, |s| s.parse::<Diagnosis>())?,
            examdate: cols.parse("EXAMDATE", i, parse_iso_date)?,
            image_id: cols.parse("Image.ID", i, parse_i64)?,
            scan_date: cols.parse("Scan.Date", i, |s| s.parse::<ScanDate>())?,
            sequence: cols.raw("Sequence", i).to_owned(),
            visit: cols.parse("Visit", i, parse_non_empty)?,
            month_bl: cols.parse("Month_bl", i, parse_f64)?,
            screen_diagnosis: cols.raw("Screen.Diagnosis", i).to_owned(),
            study_id: cols.parse("Study.ID", i, parse_i64)?,
            series_id: cols.parse("Series.ID", i, parse_i64)?,
            label_three_fold: labels[0],
            label_cn_ad: labels[1],
            label_cn_mci: labels[2],
            label_mci_ad: labels[3],
        };
        if let Some(&first) = first_row_of_image.get(&rec.image_id) {
            return Err(table_error(
                path,
                format!(
                    "rows {} and {} have the same Image.ID `{}`, expected each Image.ID once",
                    cols.line(first),
                    cols.line(i),
                    rec.image_id
                ),
            ));
        }
        first_row_of_image.insert(rec.image_id, i);
        records.push(rec);
    }
    Ok(AdniTable { path: path.to_path_buf(), field_strength, records })
}

/// Checks a record with the reader's rules, so that what is written reads back identically.
fn check_record(rec: &ScanRecord, field_strength: FieldStrength) -> std::result::Result<(), String> {
    parse_ptid(&rec.ptid).map_err(|e| format!("PTID: {e}"))?;
    parse_non_empty(&rec.viscode).map_err(|e| format!("VISCODE: {e}"))?;
    parse_iso_date(&rec.examdate).map_err(|e| format!("EXAMDATE: {e}"))?;
    if !rec.scan_date.is_valid() {
        return Err(format!("Scan.Date: not a real date M/D/YY: {}", rec.scan_date));
    }
    parse_non_empty(&rec.visit).map_err(|e| format!("Visit: {e}"))?;
    if !rec.month_bl.is_finite() {
        return Err(format!("Month_bl: expected a finite number, got {}", rec.month_bl));
    }
    for (name, label) in LABEL_COLUMNS.iter().zip(rec.labels()) {
        match (field_strength, label) {
            (_, None) => {}
            (FieldStrength::T15, Some(v)) if v <= 2 => {}
            (FieldStrength::T15, Some(v)) => return Err(format!("{name}: expected 0, 1, 2 or None, got {v}")),
            (FieldStrength::T3, Some(_)) => {
                return Err(format!("{name}: a 3 T table has no label columns, expected None"));
            }
        }
    }
    Ok(())
}

/// Writes `records` as an ADNI table with the exact header of `field_strength` (missing labels as
/// `N/A`), atomically. Records are checked first with the reader's rules (including unique
/// `Image.ID`), so the file reads back identically with [`read_adni_table`].
pub fn write_adni_table(path: &Path, records: &[ScanRecord], field_strength: FieldStrength) -> Result<()> {
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for (i, rec) in records.iter().enumerate() {
        check_record(rec, field_strength).map_err(|e| {
            table_error(path, format!("cannot write record {} (Image.ID {}): {e}", i + 1, rec.image_id))
        })?;
        if let Some(first) = seen.insert(rec.image_id, i) {
            return Err(table_error(
                path,
                format!(
                    "cannot write records {} and {}: both have Image.ID {}, expected each Image.ID once",
                    first + 1,
                    i + 1,
                    rec.image_id
                ),
            ));
        }
    }
    let mut df = records_dataframe(records, field_strength)?;
    let mut buf = Vec::new();
    CsvWriter::new(&mut buf).include_header(true).with_null_value(NOT_AVAILABLE.into()).finish(&mut df)?;
    write_bytes_atomically(path, &buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_date_parses_and_prints_unpadded() {
        let d: ScanDate = "9/12/06".parse().unwrap();
        assert_eq!(d, ScanDate { month: 9, day: 12, year: 6 });
        assert_eq!(d.to_string(), "9/12/06");
        assert_eq!(d.full_year(), 2006);
        assert_eq!("12/1/10".parse::<ScanDate>().unwrap().to_string(), "12/1/10");
    }

    #[test]
    fn scan_date_rejects_padding_and_impossible_dates() {
        for bad in ["09/12/06", "9/02/06", "9/12/2006", "9/12/6", "13/1/06", "2/30/06", "9-12-06", "", "a/b/cc"] {
            let err = bad.parse::<ScanDate>().unwrap_err();
            assert!(err.contains("M/D/YY"), "{bad}: {err}");
        }
        assert!("2/29/08".parse::<ScanDate>().is_ok(), "2008 is a leap year");
        assert!("2/29/07".parse::<ScanDate>().is_err());
    }

    #[test]
    fn iso_dates_are_checked_against_the_calendar() {
        assert!(is_valid_iso_date("2006-09-12"));
        assert!(is_valid_iso_date("2008-02-29"));
        assert!(!is_valid_iso_date("2007-02-29"));
        assert!(!is_valid_iso_date("2006-9-12"));
        assert!(!is_valid_iso_date("2006-13-01"));
        assert!(!is_valid_iso_date("12/09/2006"));
    }

    #[test]
    fn ptid_format() {
        assert!(is_valid_ptid("011_S_0003"));
        assert!(!is_valid_ptid("11_S_0003"));
        assert!(!is_valid_ptid("011_X_0003"));
        assert!(!is_valid_ptid("011_S_00034"));
        assert!(!is_valid_ptid("011_S_00a3"));
    }

    #[test]
    fn diagnosis_accepts_exact_spellings_only() {
        assert_eq!("Dementia".parse::<Diagnosis>(), Ok(Diagnosis::Dementia));
        assert!("AD".parse::<Diagnosis>().is_err());
        assert!("cn".parse::<Diagnosis>().is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(parse_label("N/A"), Ok(None));
        assert_eq!(parse_label(""), Ok(None));
        assert_eq!(parse_label("2"), Ok(Some(2)));
        assert!(parse_label("3").is_err());
        assert!(parse_label("NA").is_err());
    }
}
