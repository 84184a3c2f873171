//! Writing tables as CSV and Markdown, stacking tables under key columns, and reading columns
//! out of polars frames with errors that name the table and the column.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use adni_data::fsutil::{write_bytes_atomically, write_csv_atomically};
use polars::prelude::*;

use crate::error::{ReportError, Result, ResultExt};

/// Writes `df` as `<dir>/<stem>.csv` (polars' CSV, full precision) and `<dir>/<stem>.md` (a
/// Markdown table, numbers formatted by [`format_float`]), each atomically. Creates `dir`.
/// Returns the two paths written.
pub fn write_table(df: &DataFrame, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
    if stem.is_empty() || stem.contains(['/', '\\']) {
        return Err(ReportError::invalid("stem", format!("found `{stem}`, expected a file name without folders")));
    }
    let csv = dir.join(format!("{stem}.csv"));
    let md = dir.join(format!("{stem}.md"));
    write_csv_atomically(&csv, &mut df.clone())?;
    write_bytes_atomically(&md, to_markdown(df)?.as_bytes())?;
    Ok((csv, md))
}

/// Formats a float for people: four significant digits between 0.001 and 10 000 (trailing zeros
/// kept, so a column lines up), scientific notation outside that range, `0` for zero, and
/// `NaN` / `inf` / `-inf` spelled out.
pub fn format_float(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if (1e-3..1e4).contains(&a) {
        let decimals = |v: f64| (3 - v.log10().floor() as i32).max(0) as usize;
        let d = decimals(a);
        let s = format!("{x:.d$}");
        // rounding can carry into a new digit (9.99996 -> "10.000"): one decimal fewer then
        let rounded: f64 = s.parse::<f64>().map(f64::abs).unwrap_or(a);
        if rounded > 0.0 && decimals(rounded) < d {
            return format!("{x:.prec$}", prec = decimals(rounded));
        }
        s
    } else {
        format!("{x:.3e}")
    }
}

fn format_cell(v: &AnyValue<'_>) -> String {
    let text = match v {
        AnyValue::Null => String::new(),
        // an undefined value reads `n/a` in every table a person reads (the CSV keeps NaN)
        AnyValue::Float64(x) if x.is_nan() => "n/a".into(),
        AnyValue::Float32(x) if x.is_nan() => "n/a".into(),
        AnyValue::Float64(x) => format_float(*x),
        AnyValue::Float32(x) => format_float(f64::from(*x)),
        AnyValue::Boolean(b) => if *b { "yes" } else { "no" }.into(),
        AnyValue::String(s) => (*s).to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    };
    text.replace('|', "\\|").replace('\n', " ")
}

/// The frame as a GitHub-flavoured Markdown table (header, separator, one line per row; numeric
/// columns right-aligned; nulls empty; floats through [`format_float`], NaN as `n/a`).
pub fn to_markdown(df: &DataFrame) -> Result<String> {
    let cols = df.columns();
    let mut out = String::new();
    let header: Vec<String> = cols.iter().map(|c| c.name().to_string().replace('|', "\\|")).collect();
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let align: Vec<&str> = cols.iter().map(|c| if c.dtype().is_primitive_numeric() { "---:" } else { "---" }).collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for i in 0..df.height() {
        let cells: Vec<String> = cols.iter().map(|c| c.get(i).map(|v| format_cell(&v))).collect::<PolarsResult<_>>()?;
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    Ok(out)
}

/// Stacks tables of one schema into one, each under constant key columns put first (for example
/// `[("method", "occlusion"), ("group", "AD")]`). Every part must have the same keys in the same
/// order and the same columns.
pub fn stack_with_keys(parts: &[(Vec<(&str, String)>, DataFrame)]) -> Result<DataFrame> {
    let mut stacked: Option<DataFrame> = None;
    for (n, (keys, df)) in parts.iter().enumerate() {
        let mut df = df.clone();
        let height = df.height();
        for (i, (name, value)) in keys.iter().enumerate() {
            if df.get_column_names().iter().any(|c| c.as_str() == *name) {
                return Err(ReportError::invalid(
                    "keys",
                    format!("part {n}: key column `{name}` is already a column of the table"),
                ));
            }
            df.insert_column(i, Column::new((*name).into(), vec![value.as_str(); height]))?;
        }
        match stacked.as_mut() {
            None => stacked = Some(df),
            Some(s) => {
                if s.get_column_names() != df.get_column_names() {
                    return Err(ReportError::invalid(
                        "parts",
                        format!(
                            "part {n} has columns {:?}, the first part {:?}",
                            df.get_column_names(),
                            s.get_column_names()
                        ),
                    ));
                }
                s.vstack_mut_owned(df)?;
            }
        }
    }
    stacked.ok_or_else(|| ReportError::invalid("parts", "no tables to stack"))
}

/// Reads a CSV file with a header (such as the training run's `metrics_epochs.csv` or
/// `predictions.csv`); column types are inferred.
pub fn read_csv(path: &Path) -> Result<DataFrame> {
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()?;
    Ok(df)
}

/// `path` read as a table ([`read_csv`]), `None` when it is not a file; an error names the file.
pub fn read_optional_csv(path: &Path) -> Result<Option<DataFrame>> {
    if !path.is_file() {
        return Ok(None);
    }
    read_csv(path).map(Some).with_context(|| format!("reading {}", path.display()))
}

/// [`write_table`] into `dir`, both files then added to `written`; an error names the table
/// (`table <stem>`).
pub fn write_table_into(df: &DataFrame, dir: &Path, stem: &str, written: &mut Vec<PathBuf>) -> Result<()> {
    let (csv, md) = write_table(df, dir, stem).with_context(|| format!("table {stem}"))?;
    written.push(csv);
    written.push(md);
    Ok(())
}

/// True when `df` has a column named `name`.
pub fn has_column(df: &DataFrame, name: &str) -> bool {
    df.get_column_names().iter().any(|c| c.as_str() == name)
}

fn get_column<'a>(df: &'a DataFrame, table: &str, name: &str) -> Result<&'a Column> {
    df.column(name).map_err(|_| {
        let names: Vec<&str> = df.get_column_names().into_iter().map(|c| c.as_str()).collect();
        ReportError::column(table, name, format!("missing; the table has {names:?}"))
    })
}

/// A numeric (or boolean) column as `f64`, nulls as NaN; errors name `table` and the column.
pub fn column_f64(df: &DataFrame, table: &str, name: &str) -> Result<Vec<f64>> {
    let c = get_column(df, table, name)?;
    if !(c.dtype().is_primitive_numeric() || c.dtype().is_bool() || c.dtype().is_null()) {
        return Err(ReportError::column(table, name, format!("holds {}, expected numbers", c.dtype())));
    }
    let c = c.cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

/// A column as text (numbers are printed), nulls as empty strings; errors name `table` and the
/// column.
pub fn column_str(df: &DataFrame, table: &str, name: &str) -> Result<Vec<String>> {
    let c = get_column(df, table, name)?;
    let c = c
        .cast(&DataType::String)
        .map_err(|e| ReportError::column(table, name, format!("not readable as text: {e}")))?;
    Ok(c.str()?.iter().map(|v| v.unwrap_or_default().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_formatted_for_people() {
        assert_eq!(format_float(0.123456), "0.1235");
        assert_eq!(format_float(12.3456), "12.35");
        assert_eq!(format_float(1234.56), "1235");
        assert_eq!(format_float(9.99996), "10.00");
        assert_eq!(format_float(-0.5), "-0.5000");
        assert_eq!(format_float(1.5e-5), "1.500e-5");
        assert_eq!(format_float(0.0), "0");
        assert_eq!(format_float(f64::NAN), "NaN");
    }

    #[test]
    fn markdown_has_header_separator_and_escaped_cells() {
        let df = DataFrame::new(
            2,
            vec![
                Column::new("region".into(), ["a|b", "c"]),
                Column::new("score".into(), [0.5f64, f64::NAN]),
                Column::new("rank".into(), [Some(1u32), None]),
            ],
        )
        .unwrap();
        let md = to_markdown(&df).unwrap();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines,
            vec!["| region | score | rank |", "|---|---:|---:|", "| a\\|b | 0.5000 | 1 |", "| c | n/a |  |"]
        );
    }

    #[test]
    fn write_table_writes_csv_and_markdown_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let df = DataFrame::new(2, vec![Column::new("x".into(), [1i64, 2]), Column::new("y".into(), [0.25f64, 0.75])])
            .unwrap();
        let (csv, md) = write_table(&df, dir.path(), "t").unwrap();
        let back = read_csv(&csv).unwrap();
        assert_eq!(column_f64(&back, "t", "y").unwrap(), vec![0.25, 0.75]);
        assert!(std::fs::read_to_string(md).unwrap().starts_with("| x | y |"));
        assert!(write_table(&df, dir.path(), "a/b").is_err());
    }

    #[test]
    fn optional_tables_and_tables_written_into_a_list() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_optional_csv(&dir.path().join("absent.csv")).unwrap().is_none());
        let df = DataFrame::new(1, vec![Column::new("x".into(), [1i64])]).unwrap();
        let mut written = Vec::new();
        write_table_into(&df, dir.path(), "t", &mut written).unwrap();
        assert_eq!(written, vec![dir.path().join("t.csv"), dir.path().join("t.md")]);
        assert_eq!(read_optional_csv(&written[0]).unwrap().unwrap().height(), 1);
        let err = write_table_into(&df, dir.path(), "a/b", &mut written).unwrap_err();
        assert_eq!(err.to_string(), "table a/b");
        assert_eq!(written.len(), 2);
    }

    #[test]
    fn stacking_puts_keys_first_and_checks_schemas() {
        let t = DataFrame::new(1, vec![Column::new("score".into(), [1.0f64])]).unwrap();
        let s = stack_with_keys(&[
            (vec![("method", "a".to_string())], t.clone()),
            (vec![("method", "b".to_string())], t.clone()),
        ])
        .unwrap();
        assert_eq!(column_str(&s, "s", "method").unwrap(), vec!["a", "b"]);
        assert_eq!(s.get_column_names()[0].as_str(), "method");
        let err = stack_with_keys(&[(vec![("score", "a".to_string())], t)]).unwrap_err();
        assert!(err.to_string().contains("already a column"), "{err}");
    }

    #[test]
    fn missing_column_error_names_table_and_column() {
        let df = DataFrame::new(1, vec![Column::new("x".into(), [1i64])]).unwrap();
        let err = column_f64(&df, "predictions", "p_ad").unwrap_err().to_string();
        assert!(err.contains("predictions") && err.contains("p_ad") && err.contains("\"x\""), "{err}");
    }
}
