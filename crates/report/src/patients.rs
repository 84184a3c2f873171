//! Per patient (per scan): the regions that hold most relevance, and the share of relevance in
//! the temporal lobe, where the paper found the AD evidence ("relevance patterns vary across
//! patients").
//!
//! The temporal lobe is a set of region names per atlas (left and right both count; matching
//! ignores case and the side marker, so merged and unmerged tables both work):
//!
//! - AAL ([`TEMPORAL_AAL`]): every `Temporal_*` region (superior, middle, inferior gyri and both
//!   poles), `Heschl`, `Fusiform`, `Hippocampus`, `ParaHippocampal`, `Amygdala`.
//! - CerebrA ([`TEMPORAL_CEREBRA`]): `Superior Temporal`, `Middle Temporal`, `Inferior temporal`,
//!   `Transverse Temporal`, `Fusiform`, `Entorhinal`, `Parahippocampal`, `Hippocampus`,
//!   `Amygdala`. The inferior lateral ventricle (the temporal horn) is CSF, not lobe, and is
//!   left out.
//!
//! Hippocampus, amygdala and parahippocampal gyrus belong to the medial temporal lobe in both
//! lists, as in the paper's reading of its maps.
//!
//! [`per_scan_patient_table`] is the report's `patients` table: [`patient_table`] of every
//! (method, scan) of an interpretation run's `scan_regions.csv`.

use adni_data::atlas::split_hemisphere;
use polars::prelude::*;

use crate::error::{ReportError, Result};
use crate::tables::{column_f64, column_str};

/// AAL regions (pair names) counted as temporal lobe, besides every name starting `Temporal_`.
pub const TEMPORAL_AAL: [&str; 5] = ["Heschl", "Fusiform", "Hippocampus", "ParaHippocampal", "Amygdala"];

/// CerebrA regions (pair names) counted as temporal lobe.
pub const TEMPORAL_CEREBRA: [&str; 9] = [
    "Superior Temporal",
    "Middle Temporal",
    "Inferior temporal",
    "Transverse Temporal",
    "Fusiform",
    "Entorhinal",
    "Parahippocampal",
    "Hippocampus",
    "Amygdala",
];

/// True when the region (a full name such as `Temporal_Inf_L` or `Hippocampus (left)`, or a pair
/// name) belongs to the temporal lobe as defined in the module documentation.
pub fn is_temporal_region(name: &str) -> bool {
    let (pair, _) = split_hemisphere(name);
    let pair = pair.trim();
    pair.to_ascii_lowercase().starts_with("temporal_")
        || TEMPORAL_AAL.iter().chain(TEMPORAL_CEREBRA.iter()).any(|t| t.eq_ignore_ascii_case(pair))
}

/// Share of the relevance inside the atlas that lies in the temporal lobe, from one table of
/// [`crate::regions::region_scores`] (merged or not): Σ `relevance_sum` over temporal regions ÷
/// Σ `relevance_sum` over all regions. NaN when the total is not positive.
pub fn temporal_share(region_table: &DataFrame) -> Result<f64> {
    const TABLE: &str = "region table";
    let names = column_str(region_table, TABLE, "region")?;
    let sums = column_f64(region_table, TABLE, "relevance_sum")?;
    let total: f64 = sums.iter().sum();
    if total.is_nan() || total <= 0.0 {
        return Ok(f64::NAN);
    }
    let temporal: f64 = names.iter().zip(&sums).filter(|(n, _)| is_temporal_region(n)).map(|(_, s)| s).sum();
    Ok(temporal / total)
}

/// One row per scan: the columns of `keys` (one row per scan, in the order of `tables`; for
/// example `PTID`, `Image.ID`, `group`, `method`), then `region_1`, `score_1`, …, `region_n`,
/// `score_n` (the scan's `n_top` highest-ranked regions and their scores; empty / NaN where the
/// map has fewer ranked regions), then `temporal_share` ([`temporal_share`]).
pub fn patient_table(keys: &DataFrame, tables: &[DataFrame], n_top: usize) -> Result<DataFrame> {
    if keys.height() != tables.len() {
        return Err(ReportError::invalid(
            "keys",
            format!("{} key row(s) for {} region table(s); give one key row per table", keys.height(), tables.len()),
        ));
    }
    let mut regions: Vec<Vec<String>> = vec![Vec::with_capacity(tables.len()); n_top];
    let mut scores: Vec<Vec<f64>> = vec![Vec::with_capacity(tables.len()); n_top];
    let mut shares = Vec::with_capacity(tables.len());
    for (i, t) in tables.iter().enumerate() {
        let what = format!("region table {i}");
        let names = column_str(t, &what, "region")?;
        let score = column_f64(t, &what, "score")?;
        let rank = column_f64(t, &what, "rank")?;
        let mut ranked: Vec<(f64, usize)> =
            rank.iter().enumerate().filter(|(_, r)| r.is_finite()).map(|(row, &r)| (r, row)).collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
        for slot in 0..n_top {
            match ranked.get(slot) {
                Some(&(_, row)) => {
                    regions[slot].push(names[row].clone());
                    scores[slot].push(score[row]);
                }
                None => {
                    regions[slot].push(String::new());
                    scores[slot].push(f64::NAN);
                }
            }
        }
        shares.push(temporal_share(t)?);
    }
    let mut cols: Vec<Column> = keys.columns().to_vec();
    for (slot, (r, s)) in regions.into_iter().zip(scores).enumerate() {
        cols.push(Column::new(format!("region_{}", slot + 1).into(), r));
        cols.push(Column::new(format!("score_{}", slot + 1).into(), s));
    }
    cols.push(Column::new("temporal_share".into(), shares));
    Ok(DataFrame::new(tables.len(), cols)?)
}

/// One row per (method, scan) of `scan_regions.csv` (the columns `method`, `PTID`, `Image.ID`,
/// `label`, then a [`crate::regions::region_scores`] table per scan, stacked), in the order the
/// scans first appear: the scan's top-5 regions and its share of relevance in the temporal lobe
/// ([`patient_table`]).
pub fn per_scan_patient_table(df: &DataFrame) -> Result<DataFrame> {
    let keys = ["method", "PTID", "Image.ID", "label"];
    let cols: Vec<Vec<String>> = keys.iter().map(|k| column_str(df, "scan_regions.csv", k)).collect::<Result<_>>()?;
    let mut order: Vec<Vec<String>> = Vec::new();
    let mut rows_of: std::collections::HashMap<Vec<String>, Vec<u32>> = Default::default();
    for i in 0..df.height() {
        let key: Vec<String> = cols.iter().map(|c| c[i].clone()).collect();
        let e = rows_of.entry(key.clone()).or_default();
        if e.is_empty() {
            order.push(key);
        }
        e.push(i as u32);
    }
    let mut tables = Vec::with_capacity(order.len());
    for key in &order {
        let idx = IdxCa::from_vec("idx".into(), rows_of[key].clone());
        tables.push(df.take(&idx)?);
    }
    let key_cols: Vec<Column> = keys
        .iter()
        .enumerate()
        .map(|(j, k)| Column::new((*k).into(), order.iter().map(|r| r[j].clone()).collect::<Vec<String>>()))
        .collect();
    let key_df = DataFrame::new(order.len(), key_cols)?;
    patient_table(&key_df, &tables, 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &[(&str, f64)]) -> DataFrame {
        let total: f64 = rows.iter().map(|r| r.1).sum();
        DataFrame::new(
            rows.len(),
            vec![
                Column::new("region".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("relevance_sum".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                Column::new("score".into(), rows.iter().map(|r| r.1 / total).collect::<Vec<_>>()),
                Column::new("rank".into(), (1..=rows.len() as u32).collect::<Vec<_>>()),
            ],
        )
        .unwrap()
    }

    #[test]
    fn temporal_regions_are_recognised_in_both_atlases() {
        for n in ["Temporal_Inf_L", "Temporal_Pole_Mid", "Hippocampus_R", "Heschl_L", "ParaHippocampal"] {
            assert!(is_temporal_region(n), "{n}");
        }
        for n in ["Hippocampus (left)", "Inferior temporal", "Entorhinal (right)", "amygdala"] {
            assert!(is_temporal_region(n), "{n}");
        }
        for n in ["Precentral_L", "Frontal_Sup", "Inferior Lateral Ventricle (left)", "Insula", "Vermis_3"] {
            assert!(!is_temporal_region(n), "{n}");
        }
    }

    #[test]
    fn temporal_share_matches_hand_value() {
        let t = table(&[("Temporal_Mid", 3.0), ("Precentral", 5.0), ("Hippocampus", 2.0)]);
        assert_eq!(temporal_share(&t).unwrap(), 0.5);
        assert!(temporal_share(&table(&[("Precentral", 0.0)])).unwrap().is_nan());
    }

    #[test]
    fn patient_table_lists_top_regions_per_scan() {
        let keys = DataFrame::new(2, vec![Column::new("Image.ID".into(), [1i64, 2])]).unwrap();
        let tables =
            vec![table(&[("Hippocampus", 6.0), ("Precentral", 3.0), ("Amygdala", 1.0)]), table(&[("Precentral", 1.0)])];
        let df = patient_table(&keys, &tables, 2).unwrap();
        let names: Vec<&str> = df.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, vec!["Image.ID", "region_1", "score_1", "region_2", "score_2", "temporal_share"]);
        assert_eq!(column_str(&df, "t", "region_1").unwrap(), vec!["Hippocampus", "Precentral"]);
        assert_eq!(column_str(&df, "t", "region_2").unwrap(), vec!["Precentral", ""]);
        assert_eq!(column_f64(&df, "t", "score_1").unwrap(), vec![0.6, 1.0]);
        assert_eq!(column_f64(&df, "t", "temporal_share").unwrap(), vec![0.7, 0.0]);
        assert!(patient_table(&keys, &tables[..1], 2).is_err());
    }

    #[test]
    fn per_scan_table_of_two_patients_from_scan_regions() {
        // scan_regions.csv as the interpretation writes it: keys, then region scores per scan.
        // Patient p1 (AD): hippocampus first; patient p2 (CN): precentral first. Rows of p2 come
        // first and the rows of p1 are interleaved with those of the second method.
        let rows: [(&str, &str, i64, &str, &str, f64, u32); 8] = [
            ("occlusion", "p2", 20, "CN", "Precentral_L", 4.0, 1),
            ("occlusion", "p2", 20, "CN", "Temporal_Mid_L", 1.0, 2),
            ("occlusion", "p1", 10, "AD", "Hippocampus_L", 6.0, 1),
            ("lrp", "p1", 10, "AD", "Amygdala_R", 1.0, 1),
            ("occlusion", "p1", 10, "AD", "Frontal_Sup_L", 2.0, 3),
            ("occlusion", "p1", 10, "AD", "Temporal_Inf_R", 2.0, 2),
            ("lrp", "p1", 10, "AD", "Precentral_L", 0.0, 0),
            ("occlusion", "p2", 20, "CN", "Hippocampus_L", 0.0, 3),
        ];
        let sums: Vec<f64> = rows.iter().map(|r| r.5).collect();
        let df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("method".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("PTID".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                Column::new("Image.ID".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
                Column::new("label".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
                Column::new("region".into(), rows.iter().map(|r| r.4).collect::<Vec<_>>()),
                Column::new("relevance_sum".into(), sums.clone()),
                Column::new("score".into(), sums.iter().map(|s| s / 10.0).collect::<Vec<_>>()),
                Column::new(
                    "rank".into(),
                    rows.iter().map(|r| if r.5 > 0.0 { Some(r.6) } else { None }).collect::<Vec<_>>(),
                ),
            ],
        )
        .unwrap();
        let t = per_scan_patient_table(&df).unwrap();
        assert_eq!(t.height(), 3);
        let names: Vec<&str> = t.get_column_names().iter().map(|c| c.as_str()).collect();
        assert_eq!(&names[..6], ["method", "PTID", "Image.ID", "label", "region_1", "score_1"]);
        assert_eq!(names.len(), 4 + 2 * 5 + 1);
        assert_eq!(column_str(&t, "t", "method").unwrap(), ["occlusion", "occlusion", "lrp"]);
        assert_eq!(column_str(&t, "t", "PTID").unwrap(), ["p2", "p1", "p1"]);
        assert_eq!(column_str(&t, "t", "Image.ID").unwrap(), ["20", "10", "10"]);
        assert_eq!(column_str(&t, "t", "region_1").unwrap(), ["Precentral_L", "Hippocampus_L", "Amygdala_R"]);
        assert_eq!(column_str(&t, "t", "region_2").unwrap(), ["Temporal_Mid_L", "Temporal_Inf_R", ""]);
        assert_eq!(column_str(&t, "t", "region_3").unwrap(), ["", "Frontal_Sup_L", ""]);
        assert_eq!(column_f64(&t, "t", "score_1").unwrap()[..2], [0.4, 0.6]);
        // p2: 1 of 5 temporal; p1 by occlusion: hippocampus 6 + inferior temporal 2 of 10; lrp: all
        assert_eq!(column_f64(&t, "t", "temporal_share").unwrap(), vec![0.2, 0.8, 1.0]);
        let err = per_scan_patient_table(&df.drop("label").unwrap()).unwrap_err().to_string();
        assert!(err.contains("scan_regions.csv") && err.contains("label"), "{err}");
    }
}
