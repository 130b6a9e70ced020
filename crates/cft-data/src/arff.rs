//! ARFF multi-label feature datasets in the Mulan and MEKA layouts.
//!
//! * **Mulan**: features, then one `{0,1}` attribute per label; the label names come from the
//!   dataset's `.xml` file and are matched to attributes **by name**, not position.
//! * **MEKA**: the relation name carries `-C n`: the first `n` attributes are labels (the last
//!   `|n|` when `n < 0`).
//!
//! Rows may be dense (`v1,v2,…`) or sparse (`{index value, …}`, unlisted entries 0). Feature
//! attributes may be numeric, or nominal: a two-valued nominal becomes one 0/1 column (the
//! index of its value), a nominal with k > 2 values becomes k one-hot columns. A label's
//! value `1` is positive, `0` negative, `?` unknown. Every error names file, line and attribute.

use crate::error::{DataError, Result};
use crate::fsutil::read_to_string;
use cft_core::{Label, Matrix, PartialLabels};
use std::path::Path;

/// An ARFF attribute type.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeKind {
    /// `numeric`, `real` or `integer`.
    Numeric,
    /// `{v1, v2, …}`.
    Nominal(Vec<String>),
    /// `string` or `date` (not usable as a feature).
    Other(String),
}

/// One `@attribute` declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// Attribute name (unquoted).
    pub name: String,
    /// Its type.
    pub kind: AttributeKind,
}

/// Which attributes are labels.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelLayout {
    /// Mulan: these label names (from the `.xml`), matched by attribute name.
    Mulan(Vec<String>),
    /// MEKA: read `-C n` from the relation name.
    Meka,
}

/// A multi-label feature dataset read from ARFF.
#[derive(Debug, Clone, PartialEq)]
pub struct ArffDataset {
    /// The `@relation` name.
    pub relation: String,
    /// `n × d` features (nominal attributes encoded as described in the module docs).
    pub features: Matrix,
    /// Names of the feature columns.
    pub feature_names: Vec<String>,
    /// `n × C` labels.
    pub labels: PartialLabels,
    /// Label names in label-column order.
    pub categories: Vec<String>,
}

/// Splits on `sep` outside single or double quotes.
fn split_quoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quote) = (0, None);
    for (i, ch) in s.char_indices() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == sep => {
                out.push(&s[start..i]);
                start = i + ch.len_utf8();
            }
            None => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// Splits `@attribute name type` into (name, type), honouring a quoted name.
fn attribute_parts(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start();
    let q = rest.chars().next()?;
    if q == '\'' || q == '"' {
        let end = rest[1..].find(q)? + 1;
        Some((&rest[1..end], rest[end + 1..].trim()))
    } else {
        let end = rest.find(char::is_whitespace)?;
        Some((&rest[..end], rest[end..].trim()))
    }
}

fn parse_kind(t: &str) -> Option<AttributeKind> {
    let lower = t.to_ascii_lowercase();
    if t.starts_with('{') {
        let inner = t.strip_prefix('{')?.strip_suffix('}')?;
        Some(AttributeKind::Nominal(split_quoted(inner, ',').into_iter().map(|v| unquote(v).to_string()).collect()))
    } else if ["numeric", "real", "integer"].contains(&lower.as_str()) {
        Some(AttributeKind::Numeric)
    } else if lower == "string" || lower.starts_with("date") {
        Some(AttributeKind::Other(lower))
    } else {
        None
    }
}

/// Reads an ARFF file, taking labels as `layout` says.
pub fn read_arff(path: &Path, layout: &LabelLayout) -> Result<ArffDataset> {
    parse_arff(path, &read_to_string(path)?, layout)
}

/// Parses ARFF text; `path` is only used in error messages.
pub fn parse_arff(path: &Path, text: &str, layout: &LabelLayout) -> Result<ArffDataset> {
    // A UTF-8 byte-order mark (Windows editors write one) is not part of the text.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines().enumerate();
    let (relation, attributes) = parse_header(path, &mut lines)?;
    let label_idx = label_attributes(path, &relation, &attributes, layout)?;
    check_label_kinds(path, &attributes, &label_idx)?;
    let (columns, feature_names) = feature_columns(path, &attributes, &label_idx)?;
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut n = 0;
    let mut cells: Vec<Option<f64>> = vec![None; attributes.len()];
    for (i, raw) in lines {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        read_row(path, i + 1, line, &attributes, &mut cells)?;
        for &(ai, onehot) in &columns {
            let v = cells[ai].ok_or_else(|| {
                DataError::parse(path, i + 1, &attributes[ai].name, "missing value `?` in a feature; impute it first")
            })?;
            let x = match onehot {
                None => v as f32,
                Some(k) => f32::from(u8::from(v as usize == k)),
            };
            if !x.is_finite() {
                return Err(DataError::parse(
                    path,
                    i + 1,
                    &attributes[ai].name,
                    format!("`{v}` is not a finite 32-bit number: features must be finite"),
                ));
            }
            features.push(x);
        }
        for &li in &label_idx {
            labels.push(label_of(path, i + 1, &attributes[li], cells[li])?);
        }
        n += 1;
    }
    if n == 0 {
        return Err(DataError::invalid(path, "the @data section has no rows"));
    }
    let categories = label_idx.iter().map(|&i| attributes[i].name.clone()).collect::<Vec<_>>();
    Ok(ArffDataset {
        relation,
        features: Matrix::new(n, columns.len(), features).expect("row lengths"),
        feature_names,
        labels: PartialLabels::new(n, categories.len(), labels).expect("row lengths"),
        categories,
    })
}

/// The header up to `@data`: the relation's name and the attributes, each checked.
fn parse_header(
    path: &Path,
    lines: &mut std::iter::Enumerate<std::str::Lines<'_>>,
) -> Result<(String, Vec<Attribute>)> {
    let mut relation = None;
    let mut attributes: Vec<Attribute> = Vec::new();
    let mut data_line = None;
    for (i, raw) in lines.by_ref() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("@relation") {
            relation = Some(unquote(&line[9..]).to_string());
        } else if lower.starts_with("@attribute") {
            let (name, t) = attribute_parts(&line[10..]).ok_or_else(|| {
                DataError::parse(
                    path,
                    i + 1,
                    "@attribute",
                    format!("cannot read `{line}`: expected `@attribute NAME TYPE`"),
                )
            })?;
            let kind = parse_kind(t)
                .ok_or_else(|| DataError::parse(path, i + 1, name, format!("unknown attribute type `{t}`")))?;
            attributes.push(Attribute { name: name.to_string(), kind });
        } else if lower.starts_with("@data") {
            data_line = Some(i + 1);
            break;
        } else {
            return Err(DataError::parse(path, i + 1, "header", format!("unexpected line `{line}` before @data")));
        }
    }
    let relation = relation.ok_or_else(|| DataError::invalid(path, "no @relation line"))?;
    if data_line.is_none() {
        return Err(DataError::invalid(path, "no @data section"));
    }
    if attributes.is_empty() {
        return Err(DataError::invalid(path, "no @attribute declarations"));
    }
    Ok((relation, attributes))
}

/// Label attributes must be {0,1} nominal or numeric.
fn check_label_kinds(path: &Path, attributes: &[Attribute], label_idx: &[usize]) -> Result<()> {
    for &li in label_idx {
        let a = &attributes[li];
        let ok = match &a.kind {
            AttributeKind::Numeric => true,
            AttributeKind::Nominal(v) => v.iter().all(|x| x == "0" || x == "1"),
            AttributeKind::Other(_) => false,
        };
        if !ok {
            return Err(DataError::invalid(
                path,
                format!("label attribute `{}` must be {{0,1}} or numeric, not {:?}", a.name, a.kind),
            ));
        }
    }
    Ok(())
}

/// Feature columns: (attribute index, one-hot value index or None for a single column), and
/// their names (`attr=value` for one-hot columns).
type FeatureColumns = (Vec<(usize, Option<usize>)>, Vec<String>);

/// The feature columns of the non-label attributes; refuses types other than numeric and nominal.
fn feature_columns(path: &Path, attributes: &[Attribute], label_idx: &[usize]) -> Result<FeatureColumns> {
    let mut columns: Vec<(usize, Option<usize>)> = Vec::new();
    let mut feature_names = Vec::new();
    for (ai, a) in attributes.iter().enumerate() {
        if label_idx.contains(&ai) {
            continue;
        }
        match &a.kind {
            AttributeKind::Numeric => {
                columns.push((ai, None));
                feature_names.push(a.name.clone());
            }
            AttributeKind::Nominal(v) if v.len() <= 2 => {
                columns.push((ai, None));
                feature_names.push(a.name.clone());
            }
            AttributeKind::Nominal(v) => {
                for (k, val) in v.iter().enumerate() {
                    columns.push((ai, Some(k)));
                    feature_names.push(format!("{}={val}", a.name));
                }
            }
            AttributeKind::Other(t) => {
                return Err(DataError::invalid(
                    path,
                    format!(
                        "feature attribute `{}` has type {t}; only numeric and nominal features are supported",
                        a.name
                    ),
                ));
            }
        }
    }
    Ok((columns, feature_names))
}

/// One label cell: `?` unknown, 1 positive, 0 negative (nominal cells hold the value's index).
fn label_of(path: &Path, line: usize, attribute: &Attribute, cell: Option<f64>) -> Result<Label> {
    Ok(match cell {
        None => Label::Unknown,
        Some(v) => {
            let value = match &attribute.kind {
                AttributeKind::Nominal(vals) => vals[v as usize].parse::<f64>().unwrap_or(f64::NAN),
                _ => v,
            };
            match value {
                1.0 => Label::Positive,
                0.0 => Label::Negative,
                _ => {
                    return Err(DataError::parse(
                        path,
                        line,
                        &attribute.name,
                        format!("label value {value} is not 0 or 1"),
                    ))
                }
            }
        }
    })
}

fn label_attributes(path: &Path, relation: &str, attributes: &[Attribute], layout: &LabelLayout) -> Result<Vec<usize>> {
    match layout {
        LabelLayout::Mulan(names) => names
            .iter()
            .map(|name| {
                attributes.iter().position(|a| &a.name == name).ok_or_else(|| {
                    DataError::invalid(path, format!("label `{name}` (from the .xml) is not an attribute of this file"))
                })
            })
            .collect(),
        LabelLayout::Meka => {
            let tokens: Vec<&str> = relation.split_whitespace().collect();
            let pos = tokens.iter().position(|t| *t == "-C").ok_or_else(|| {
                DataError::invalid(
                    path,
                    format!("relation `{relation}` has no `-C n`: not a MEKA file (for Mulan, give the .xml)"),
                )
            })?;
            let n: i64 =
                tokens.get(pos + 1).and_then(|t| t.trim_end_matches(['\'', '"']).parse().ok()).ok_or_else(|| {
                    DataError::invalid(path, format!("relation `{relation}`: `-C` must be followed by an integer"))
                })?;
            let k = n.unsigned_abs() as usize;
            if k == 0 || k > attributes.len() {
                return Err(DataError::invalid(
                    path,
                    format!("relation `{relation}`: -C {n} does not fit {} attributes", attributes.len()),
                ));
            }
            Ok(if n > 0 { (0..k).collect() } else { (attributes.len() - k..attributes.len()).collect() })
        }
    }
}

/// Parses one data row into `cells` (numeric value, nominal index, or `None` for `?`).
fn read_row(path: &Path, line_no: usize, line: &str, attrs: &[Attribute], cells: &mut [Option<f64>]) -> Result<()> {
    let value = |ai: usize, token: &str| -> Result<Option<f64>> {
        let t = unquote(token);
        if t == "?" {
            return Ok(None);
        }
        let a = &attrs[ai];
        match &a.kind {
            AttributeKind::Numeric => t
                .parse::<f64>()
                .map(Some)
                .map_err(|_| DataError::parse(path, line_no, &a.name, format!("`{t}` is not a number"))),
            AttributeKind::Nominal(vals) => vals
                .iter()
                .position(|v| v == t)
                .map(|k| Some(k as f64))
                .ok_or_else(|| DataError::parse(path, line_no, &a.name, format!("`{t}` is not one of {vals:?}"))),
            AttributeKind::Other(_) => Ok(Some(0.0)),
        }
    };
    if let Some(inner) = line.strip_prefix('{') {
        let inner = inner.strip_suffix('}').ok_or_else(|| {
            DataError::parse(path, line_no, "row", "sparse row opens with `{` but does not end with `}`")
        })?;
        cells.iter_mut().zip(attrs).for_each(|(c, _)| *c = Some(0.0));
        for item in split_quoted(inner, ',').into_iter().map(str::trim).filter(|s| !s.is_empty()) {
            let (idx, val) = item.split_once(char::is_whitespace).ok_or_else(|| {
                DataError::parse(path, line_no, "row", format!("sparse entry `{item}` is not `INDEX VALUE`"))
            })?;
            let ai: usize = idx.parse().ok().filter(|&k| k < attrs.len()).ok_or_else(|| {
                DataError::parse(
                    path,
                    line_no,
                    "row",
                    format!("sparse index `{idx}` is not an attribute index below {}", attrs.len()),
                )
            })?;
            cells[ai] = value(ai, val.trim())?;
        }
    } else {
        let tokens = split_quoted(line, ',');
        if tokens.len() != attrs.len() {
            return Err(DataError::parse(
                path,
                line_no,
                "row",
                format!("{} values for {} attributes", tokens.len(), attrs.len()),
            ));
        }
        for (ai, tok) in tokens.iter().enumerate() {
            cells[ai] = value(ai, tok)?;
        }
    }
    Ok(())
}

/// Reads the label names of a Mulan `.xml` file (`<label name="…">`, nested or flat).
pub fn read_mulan_labels(path: &Path) -> Result<Vec<String>> {
    let text = read_to_string(path)?;
    let mut names = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("<label") {
            rest = &rest[pos + 6..];
            // `<labels …>` (the root element) is not a label.
            if !rest.starts_with(char::is_whitespace) {
                continue;
            }
            let name_pos = rest
                .find("name=")
                .ok_or_else(|| DataError::parse(path, i + 1, "label", "<label> without a name attribute"))?;
            let after = &rest[name_pos + 5..];
            let q = after
                .chars()
                .next()
                .filter(|c| *c == '"' || *c == '\'')
                .ok_or_else(|| DataError::parse(path, i + 1, "label", "label name is not quoted"))?;
            let end =
                after[1..].find(q).ok_or_else(|| DataError::parse(path, i + 1, "label", "unterminated label name"))?;
            let raw = &after[1..1 + end];
            names.push(
                raw.replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&quot;", "\"")
                    .replace("&apos;", "'")
                    .replace("&amp;", "&"),
            );
            rest = &after[1 + end..];
        }
    }
    if names.is_empty() {
        return Err(DataError::invalid(path, "no <label name=…> entries"));
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULAN: &str = "% comment\n@relation toy\n@attribute f1 numeric\n@attribute 'my lab' {0,1}\n@attribute color {r,g,b}\n@attribute other {0,1}\n@data\n0.5,1,g,0\n{0 2.5, 2 b, 3 1}\n-1,?,r,1\n";

    #[test]
    fn mulan_labels_are_matched_by_name_and_nominals_encoded() {
        let layout = LabelLayout::Mulan(vec!["other".into(), "my lab".into()]);
        let d = parse_arff(Path::new("toy.arff"), MULAN, &layout).unwrap();
        assert_eq!(d.categories, vec!["other", "my lab"]);
        assert_eq!(d.feature_names, vec!["f1", "color=r", "color=g", "color=b"]);
        assert_eq!(d.features.row(0), &[0.5, 0.0, 1.0, 0.0]);
        assert_eq!(d.features.row(1), &[2.5, 0.0, 0.0, 1.0]);
        assert_eq!(d.labels.row(0), &[Label::Negative, Label::Positive]);
        assert_eq!(d.labels.row(1), &[Label::Positive, Label::Negative]);
        assert_eq!(d.labels.row(2), &[Label::Positive, Label::Unknown]);
    }

    #[test]
    fn meka_layout_reads_labels_first() {
        let text = "@relation 'toy: -C 2'\n@attribute a {0,1}\n@attribute b {0,1}\n@attribute x numeric\n@data\n1,0,3.5\n0,1,-2\n";
        let d = parse_arff(Path::new("m.arff"), text, &LabelLayout::Meka).unwrap();
        assert_eq!(d.categories, vec!["a", "b"]);
        assert_eq!(d.features.as_slice(), &[3.5, -2.0]);
        assert_eq!(d.labels.row(1), &[Label::Negative, Label::Positive]);
    }

    #[test]
    fn malformed_input_names_file_line_and_attribute() {
        let layout = LabelLayout::Mulan(vec!["other".into()]);
        let bad_number = MULAN.replace("-1,?,r,1", "abc,?,r,1");
        let e = parse_arff(Path::new("toy.arff"), &bad_number, &layout).unwrap_err().to_string();
        assert_eq!(e, "toy.arff:10: f1: `abc` is not a number");
        let bad_nominal = MULAN.replace("0.5,1,g,0", "0.5,1,y,0");
        let e = parse_arff(Path::new("toy.arff"), &bad_nominal, &layout).unwrap_err().to_string();
        assert!(e.starts_with("toy.arff:8: color:"), "{e}");
        let short = MULAN.replace("0.5,1,g,0", "0.5,1,g");
        let e = parse_arff(Path::new("toy.arff"), &short, &layout).unwrap_err().to_string();
        assert_eq!(e, "toy.arff:8: row: 3 values for 4 attributes");
        let missing = LabelLayout::Mulan(vec!["nope".into()]);
        let e = parse_arff(Path::new("toy.arff"), MULAN, &missing).unwrap_err().to_string();
        assert!(e.contains("label `nope`"), "{e}");
        let e = parse_arff(Path::new("e.arff"), "", &layout).unwrap_err().to_string();
        assert!(e.contains("e.arff") && e.contains("@relation"), "{e}");
        let e = parse_arff(
            Path::new("t.arff"),
            "@relation r\n@attribute x numeric\n@attribute other {0,1}\n@data\n",
            &layout,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no rows"), "{e}");
    }
}
