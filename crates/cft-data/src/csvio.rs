//! CSV tables read with polars as strings, so that every cell is parsed (and every error
//! reported with its row and column) by the adapter that knows what the cell means.

use crate::error::{DataError, Result};
use polars::prelude::*;
use std::path::Path;

/// A CSV file as string columns; `None` is an empty cell.
#[derive(Debug, Clone)]
pub struct StringTable {
    /// Column names, in file order.
    pub header: Vec<String>,
    /// One vector per column.
    pub columns: Vec<Vec<Option<String>>>,
    /// Number of data rows.
    pub rows: usize,
}

impl StringTable {
    /// Index of a required column; the error names the file and lists the columns present.
    pub fn column(&self, path: &Path, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DataError::parse(path, 1, name, format!("missing column (header has {:?})", self.header)))
    }
}

/// Reads a CSV file with a header row; every column as strings.
pub fn read_string_table(path: &Path) -> Result<StringTable> {
    read_string_table_opts(path, true)
}

/// Reads a CSV file, with or without a header row (without: columns `column_1`, `column_2`, …);
/// quoted fields and mixed CRLF/LF line endings are handled by polars.
pub fn read_string_table_opts(path: &Path, has_header: bool) -> Result<StringTable> {
    // Read once: the width check and polars parse the same bytes.
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if bytes.is_empty() {
        return Err(DataError::invalid(path, "empty file: expected a header row"));
    }
    check_record_widths(path, &bytes)?;
    let df = CsvReadOptions::default()
        .with_has_header(has_header)
        .with_infer_schema_length(Some(0))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| DataError::invalid(path, format!("not a readable CSV table: {e}")))?;
    // A UTF-8 byte-order mark is not part of the first column's name.
    let header: Vec<String> =
        df.get_column_names().iter().map(|s| s.trim_start_matches('\u{feff}').to_string()).collect();
    let mut columns = Vec::with_capacity(header.len());
    for name in &header {
        let col = df.column(name).map_err(|e| DataError::invalid(path, e.to_string()))?;
        let ca = col.str().map_err(|e| DataError::invalid(path, e.to_string()))?;
        columns.push((0..ca.len()).map(|i| ca.get(i).map(str::to_string)).collect());
    }
    Ok(StringTable { header, columns, rows: df.height() })
}

/// Refuses a record whose number of fields differs from the first record's (a truncated last
/// row, a stray comma), naming its line: polars would fill the missing cells with nulls, which
/// the adapters would read as blank labels. Quoted fields (commas and newlines inside) count as one.
fn check_record_widths(path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut line, mut start_line, mut fields, mut quoted, mut empty) = (1usize, 1usize, 1usize, false, true);
    let mut expected: Option<usize> = None;
    let mut end_record = |fields: usize, start_line: usize, empty: bool| -> Result<()> {
        if empty {
            return Ok(());
        }
        match expected {
            None => expected = Some(fields),
            Some(e) if e != fields => {
                return Err(DataError::parse(
                    path,
                    start_line,
                    "row",
                    format!("{fields} fields but the first row has {e}: a truncated or malformed row"),
                ))
            }
            Some(_) => {}
        }
        Ok(())
    };
    for &b in bytes {
        match b {
            b'"' => {
                quoted = !quoted;
                empty = false;
            }
            b',' if !quoted => {
                fields += 1;
                empty = false;
            }
            b'\n' => {
                line += 1;
                if !quoted {
                    end_record(fields, start_line, empty)?;
                    (fields, start_line, empty) = (1, line, true);
                }
            }
            b'\r' => {}
            _ => empty = false,
        }
    }
    if quoted {
        return Err(DataError::parse(path, start_line, "row", "a quoted field is not closed: the file is truncated"));
    }
    end_record(fields, start_line, empty)
}
