//! Checkpoints that know what they belong to.
//!
//! A resumable run (a `finetune` progress file, a `reproduce` unit, an `extract` part folder)
//! records a [`Fingerprint`]: its configuration as JSON and the size and content hash of every
//! input, by role. `--resume` compares the stored fingerprint with the current run's and
//! refuses a mismatch, naming each difference, so that no run ever adopts another run's
//! results. Progress entries carry a checksum, so a corrupted line is refused rather than read.

use crate::error::{bail, Result};
use crate::manifest::{fnv1a64, InputFile, FNV_OFFSET};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// What a run's results depend on: its configuration and its inputs' contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The configuration, as JSON.
    pub config: Value,
    /// Each input with the option that named it.
    pub inputs: Vec<(String, InputFile)>,
}

impl Fingerprint {
    /// The fingerprint of `config` over the files `inputs` (role, path); hashes every file.
    pub fn new<C: Serialize>(config: &C, inputs: &[(&str, &Path)]) -> Result<Self> {
        let inputs =
            inputs.iter().map(|(role, p)| Ok((role.to_string(), InputFile::of(p)?))).collect::<Result<Vec<_>>>()?;
        Self::with_inputs(config, &inputs)
    }

    /// The fingerprint of `config` over inputs already hashed (role, record): one hash of a
    /// large file serves every fingerprint and the manifest.
    pub fn with_inputs<C: Serialize>(config: &C, inputs: &[(String, InputFile)]) -> Result<Self> {
        Ok(Self { config: serde_json::to_value(config)?, inputs: inputs.to_vec() })
    }

    /// Every difference between a stored fingerprint (`self`) and the current run's, as
    /// sentences; empty when they match.
    pub fn differences(&self, now: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        json_differences("", &self.config, &now.config, &mut out);
        for (role, file) in &now.inputs {
            match self.inputs.iter().find(|(r, _)| r == role) {
                None => out.push(format!("{role}: the checkpoint does not record this input")),
                Some((_, stored)) if !stored.same_content(file) => out.push(format!(
                    "{role}: the checkpoint was made from {} ({} bytes, fnv1a64 {}), this run reads {} ({} bytes, fnv1a64 {})",
                    stored.path, stored.bytes, stored.fnv1a64, file.path, file.bytes, file.fnv1a64
                )),
                Some(_) => {}
            }
        }
        for (role, _) in &self.inputs {
            if !now.inputs.iter().any(|(r, _)| r == role) {
                out.push(format!("{role}: recorded in the checkpoint but not an input of this run"));
            }
        }
        out
    }

    /// Refuses to resume `checkpoint` when its fingerprint differs from `now`.
    pub fn check_resume(&self, now: &Fingerprint, checkpoint: &Path) -> Result<()> {
        let diff = self.differences(now);
        if diff.is_empty() {
            return Ok(());
        }
        bail!(
            "{}: refusing to resume: this checkpoint belongs to another run ({}); use another output path, or run without --resume to start over",
            checkpoint.display(),
            diff.join("; ")
        )
    }
}

fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        format!("{}…", &s[..s.char_indices().take(60).last().map_or(0, |(i, _)| i)])
    } else {
        s
    }
}

/// Appends `key path: checkpoint X, this run Y` for every leaf where `a` and `b` differ.
fn json_differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                json_differences(&p, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: checkpoint {}, this run {}", show(a), show(b))),
    }
}

/// One line of a progress file: an entry and the checksum of its JSON text.
#[derive(Debug, Serialize, Deserialize)]
struct Line<T> {
    entry: T,
    fnv1a64: String,
}

/// The first line of a progress file.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    checkpoint: String,
    fingerprint: Fingerprint,
}

fn checksum<T: Serialize>(entry: &T) -> Result<String> {
    Ok(format!("{:016x}", fnv1a64(FNV_OFFSET, serde_json::to_string(entry)?.as_bytes())))
}

/// The header line of a progress file of `kind` (e.g. `cft finetune`).
pub fn header_line(kind: &str, fingerprint: &Fingerprint) -> Result<String> {
    Ok(serde_json::to_string(&Header { checkpoint: kind.to_string(), fingerprint: fingerprint.clone() })?)
}

/// One entry line, with its checksum.
pub fn entry_line<T: Serialize>(entry: &T) -> Result<String> {
    Ok(serde_json::to_string(&Line { fnv1a64: checksum(entry)?, entry })?)
}

/// Reads a progress file written as [`header_line`] + [`entry_line`]s: refuses another kind,
/// another fingerprint or a corrupted line; a last line cut short by an interruption (no
/// newline at its end) is dropped, so that entry is simply redone. Returns the entries with
/// their 1-based line numbers.
pub fn read_progress<T: Serialize + for<'de> Deserialize<'de>>(
    path: &Path,
    kind: &str,
    now: &Fingerprint,
) -> Result<Vec<(usize, T)>> {
    let bytes = std::fs::read(path).map_err(|e| crate::error::refused!("{}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.first() else {
        return Ok(Vec::new());
    };
    let header: Header = serde_json::from_str(first).map_err(|_| {
        crate::error::refused!(
            "{}:1: not a {kind} checkpoint (or one written by an older version): refusing to resume; remove it or run without --resume",
            path.display()
        )
    })?;
    if header.checkpoint != kind {
        bail!("{}:1: a `{}` checkpoint, not a `{kind}` one: refusing to resume", path.display(), header.checkpoint);
    }
    header.fingerprint.check_resume(now, path)?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(1) {
        let last = i + 1 == lines.len();
        let parsed =
            serde_json::from_str::<Line<T>>(line).map_err(|e| e.to_string()).and_then(|l| match checksum(&l.entry) {
                Ok(sum) if sum == l.fnv1a64 => Ok(l.entry),
                Ok(_) => Err("checksum mismatch: the line was altered".to_string()),
                Err(e) => Err(e.to_string()),
            });
        match parsed {
            Ok(entry) => out.push((i + 1, entry)),
            Err(_) if last && !complete => {
                eprintln!("{}:{}: dropping a line cut short by the interruption (redone)", path.display(), i + 1)
            }
            Err(e) => bail!("{}:{}: corrupted checkpoint line ({e}): refusing to resume", path.display(), i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_changed_key_and_input() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"two").unwrap();
        let cfg1 = serde_json::json!({"method": "ga", "seed": 5, "lr": 0.0001});
        let cfg2 = serde_json::json!({"method": "bp-asl", "seed": 5, "lr": 0.0001});
        let f1 = Fingerprint::new(&cfg1, &[("--train", &a)]).unwrap();
        let f2 = Fingerprint::new(&cfg2, &[("--train", &b)]).unwrap();
        let d = f1.differences(&f2);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0], r#"method: checkpoint "ga", this run "bp-asl""#);
        assert!(d[1].starts_with("--train: the checkpoint was made from") && d[1].contains("3 bytes"), "{d:?}");
        assert!(f1.differences(&Fingerprint::new(&cfg1, &[("--train", &a)]).unwrap()).is_empty());
    }

    #[test]
    fn corrupted_lines_are_refused_and_a_cut_last_line_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.progress.jsonl");
        let fp = Fingerprint { config: serde_json::json!({"k": 1}), inputs: vec![] };
        let good = format!("{}\n{}\n", header_line("t", &fp).unwrap(), entry_line(&vec![1.5f32, 2.0]).unwrap());
        std::fs::write(&p, &good).unwrap();
        let e: Vec<(usize, Vec<f32>)> = read_progress(&p, "t", &fp).unwrap();
        assert_eq!(e, vec![(2, vec![1.5, 2.0])]);
        std::fs::write(&p, good.replace("1.5", "1.25")).unwrap();
        let err = read_progress::<Vec<f32>>(&p, "t", &fp).unwrap_err().to_string();
        assert!(err.contains("x.progress.jsonl:2: corrupted") && err.contains("checksum"), "{err}");
        std::fs::write(&p, format!("{good}{{\"entry\": [3.0")).unwrap();
        assert_eq!(read_progress::<Vec<f32>>(&p, "t", &fp).unwrap().len(), 1);
        let other = Fingerprint { config: serde_json::json!({"k": 2}), inputs: vec![] };
        let err = read_progress::<Vec<f32>>(&p, "t", &other).unwrap_err().to_string();
        assert!(err.contains("k: checkpoint 1, this run 2"), "{err}");
    }
}
