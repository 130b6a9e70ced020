//! What a path given on the command line holds, decided once for every command that accepts
//! "any supported dataset": an OpenImages V3 folder, a dataset manifest, a COCO instances
//! file, a CheXpert CSV, the reference's label CSV, a feature set, or a bundled dataset name.
//! Only headers are read (a 300 MB COCO file is not read twice).

use crate::error::Result;
use crate::fsutil::first_line;
use std::path::Path;

/// The first line of a CheXpert label CSV (`train.csv`, `valid.csv`) starts so.
pub const CHEXPERT_HEADER: &str = "Path,Sex,";
/// The first line of the reference's label CSV starts so.
pub const RECORDS_HEADER: &str = "Id,Path,Positive,Negative,Uncertain";

/// What a dataset argument names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An OpenImages V3 folder (`classes-trainable.txt` in it).
    OpenImages,
    /// A dataset manifest (JSON with `splits`).
    Manifest,
    /// A COCO instances JSON.
    Coco,
    /// A CheXpert label CSV.
    Chexpert,
    /// The reference's label CSV (`Id,Path,Positive,Negative,Uncertain`).
    Records,
    /// A feature set (`.safetensors`).
    FeatureSet,
    /// Anything else: a bundled dataset's name (or nothing readable).
    Name,
}

/// What `arg` names (see [`Kind`]); a CSV of neither known header is an error naming both.
pub fn kind(arg: &str) -> Result<Kind> {
    let p = Path::new(arg);
    if p.is_dir() && p.join("classes-trainable.txt").exists() {
        return Ok(Kind::OpenImages);
    }
    let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    Ok(match ext.as_str() {
        "safetensors" => Kind::FeatureSet,
        "json" if p.is_file() && is_dataset_manifest(p) => Kind::Manifest,
        "json" if p.is_file() => Kind::Coco,
        "csv" if p.is_file() => {
            let head = first_line(p)?;
            if head.starts_with(CHEXPERT_HEADER) {
                Kind::Chexpert
            } else if head.starts_with(RECORDS_HEADER) {
                Kind::Records
            } else {
                return Err(crate::DataError::invalid(
                    p,
                    format!("not a CheXpert CSV ({CHEXPERT_HEADER}…) or a reference label CSV ({RECORDS_HEADER})"),
                ));
            }
        }
        _ => Kind::Name,
    })
}

/// Whether the CSV at `path` is a CheXpert label file.
pub fn is_chexpert_csv(path: &Path) -> Result<bool> {
    Ok(first_line(path)?.starts_with(CHEXPERT_HEADER))
}

/// Whether a JSON file is a dataset manifest rather than a COCO instances file: a manifest is
/// small and has `splits`; only the first KiB is read.
fn is_dataset_manifest(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 1024];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
    let text = String::from_utf8_lossy(&head[..n]);
    text.contains("\"splits\"") && !text.contains("\"images\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_told_from_its_name_and_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let write = |name: &str, text: &str| {
            std::fs::write(d.join(name), text).unwrap();
            d.join(name).display().to_string()
        };
        assert_eq!(kind(&write("a.csv", "Path,Sex,Age\n")).unwrap(), Kind::Chexpert);
        assert_eq!(kind(&write("b.csv", "Id,Path,Positive,Negative,Uncertain\n")).unwrap(), Kind::Records);
        assert!(kind(&write("c.csv", "x,y\n")).unwrap_err().to_string().contains("not a CheXpert CSV"));
        assert_eq!(kind(&write("m.json", "{\"name\": \"x\", \"splits\": {}}")).unwrap(), Kind::Manifest);
        assert_eq!(kind(&write("i.json", "{\"images\": [], \"annotations\": []}")).unwrap(), Kind::Coco);
        assert_eq!(kind("f.safetensors").unwrap(), Kind::FeatureSet);
        assert_eq!(kind("scene").unwrap(), Kind::Name);
        std::fs::create_dir(d.join("oi")).unwrap();
        std::fs::write(d.join("oi/classes-trainable.txt"), "/m/01\n").unwrap();
        assert_eq!(kind(&d.join("oi").display().to_string()).unwrap(), Kind::OpenImages);
    }
}
