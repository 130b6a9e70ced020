//! The CFT reference's label CSV (`mlcpl`'s `records_to_df` / `df_to_records`): columns
//! `Id,Path,Positive,Negative,Uncertain`, each list a JSON array of category indices with `;`
//! in place of `,` (e.g. `[0; 17; 56]`). Importing it lets a user train on the very masks the
//! authors used; exporting writes ours in the same form.

use crate::csvio::read_string_table;
use crate::error::{DataError, Result};
use crate::image_list::LabelledImages;
use cft_core::{KnownSamples, Label, SparseLabels};
use std::path::Path;

const HEADER: [&str; 5] = ["Id", "Path", "Positive", "Negative", "Uncertain"];

fn parse_list(path: &Path, row: usize, field: &str, cell: Option<&str>, c: usize) -> Result<Vec<u32>> {
    let text = cell.unwrap_or("[]").replace(';', ",");
    let v: Vec<i64> = serde_json::from_str(&text).map_err(|e| {
        DataError::parse(path, row, field, format!("`{}` is not a list of category indices ({e})", cell.unwrap_or("")))
    })?;
    v.into_iter()
        .map(|k| {
            if k < 0 || k as usize >= c {
                Err(DataError::parse(path, row, field, format!("category index {k} outside 0..{c}")))
            } else {
                Ok(k as u32)
            }
        })
        .collect()
}

/// Reads a reference label CSV for `categories` (names in index order).
pub fn read_records_csv(path: &Path, categories: &[String]) -> Result<LabelledImages> {
    let t = read_string_table(path)?;
    let cols: Vec<usize> = HEADER.iter().map(|h| t.column(path, h)).collect::<Result<_>>()?;
    let c = categories.len();
    let mut per_category = vec![KnownSamples::default(); c];
    let mut ids = Vec::with_capacity(t.rows);
    let mut paths = Vec::with_capacity(t.rows);
    let mut seen = std::collections::HashSet::with_capacity(t.rows);
    for r in 0..t.rows {
        let line = r + 2; // 1-based, after the header
        let id = t.columns[cols[0]][r].clone().ok_or_else(|| DataError::parse(path, line, "Id", "empty"))?;
        if !seen.insert(id.clone()) {
            return Err(DataError::parse(path, line, "Id", format!("duplicate image id `{id}`")));
        }
        let p = t.columns[cols[1]][r].clone().ok_or_else(|| DataError::parse(path, line, "Path", "empty"))?;
        let mut mark = vec![Label::Unknown; c];
        for (k, label) in [(2, Label::Positive), (3, Label::Negative), (4, Label::Uncertain)] {
            for cat in parse_list(path, line, HEADER[k], t.columns[cols[k]][r].as_deref(), c)? {
                if mark[cat as usize] != Label::Unknown {
                    return Err(DataError::parse(path, line, HEADER[k], format!("category {cat} is listed twice")));
                }
                mark[cat as usize] = label;
                per_category[cat as usize].push(r as u32, label);
            }
        }
        ids.push(id);
        paths.push(p);
    }
    Ok(LabelledImages {
        ids,
        paths,
        categories: categories.to_vec(),
        labels: SparseLabels { n_samples: t.rows, per_category },
    })
}

fn list(v: &[usize]) -> String {
    format!("[{}]", v.iter().map(usize::to_string).collect::<Vec<_>>().join("; "))
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Renders images and labels as a reference label CSV (pandas' `to_csv(index=False)` layout).
pub fn records_csv(images: &LabelledImages) -> String {
    let dense = images.dense();
    let mut out = String::from("Id,Path,Positive,Negative,Uncertain\n");
    for i in 0..images.len() {
        let row = dense.row(i);
        let of = |l: Label| -> Vec<usize> { (0..row.len()).filter(|&k| row[k] == l).collect() };
        out.push_str(&format!(
            "{},{},{},{},{}\n",
            quote(&images.ids[i]),
            quote(&images.paths[i]),
            list(&of(Label::Positive)),
            list(&of(Label::Negative)),
            list(&of(Label::Uncertain))
        ));
    }
    out
}

/// Writes [`records_csv`] atomically.
pub fn write_records_csv(path: &Path, images: &LabelledImages) -> Result<()> {
    crate::fsutil::write_atomic(path, records_csv(images).as_bytes())
}
