//! `cft data bench`: the COCO and OpenImages adapters timed on synthetic files of full size
//! (rows per second, peak memory), written once into a folder and reused.

use crate::coco::{read_coco, ImageOrder};
use crate::error::{DataError, Result};
use serde::Serialize;
use std::path::Path;

/// Sizes of the synthetic files.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Images of the COCO file (COCO 2014 train: 82,783).
    pub coco_images: usize,
    /// Annotations of the COCO file (COCO 2014 train: 604,907).
    pub coco_annotations: usize,
    /// Rows of the OpenImages annotations file.
    pub openimages_rows: u64,
}

/// Figures of `cft data bench`.
#[derive(Debug, Serialize)]
pub struct DataBench {
    /// COCO file size.
    pub coco_bytes: u64,
    /// Images.
    pub coco_images: usize,
    /// Annotations.
    pub coco_annotations: usize,
    /// Parse seconds.
    pub coco_seconds: f64,
    /// Peak resident memory after the COCO parse (MiB; includes the process baseline).
    pub coco_peak_rss_mib: Option<f64>,
    /// OpenImages file size.
    pub openimages_bytes: u64,
    /// Rows.
    pub openimages_rows: u64,
    /// Images found.
    pub openimages_images: usize,
    /// Stream seconds.
    pub openimages_seconds: f64,
    /// Rows per second.
    pub openimages_rows_per_second: f64,
    /// Peak resident memory after both parses (MiB).
    pub openimages_peak_rss_mib: Option<f64>,
    /// Resident memory before parsing (MiB).
    pub baseline_rss_mib: Option<f64>,
}

/// Bytes in GiB, for messages about sizes.
pub fn gib(bytes: u128) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Memory the system can still give (`MemAvailable` of `/proc/meminfo`), in bytes; `None`
/// where there is no such file.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Free space for an unprivileged writer on the file system holding `dir`, in bytes.
#[cfg(unix)]
pub fn free_disk(dir: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Free space (not known on this platform).
#[cfg(not(unix))]
pub fn free_disk(_dir: &std::path::Path) -> Option<u64> {
    None
}

/// A memory line of `/proc/self/status` in MiB (`VmHWM`: peak resident, `VmRSS`: current).
pub fn proc_status_mib(key: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Times both adapters on the synthetic files in `dir` (written first when missing);
/// `on_note` gets a line per step, `on_bytes(position, size)` the OpenImages stream's progress.
pub fn run(
    dir: &Path,
    sizes: Sizes,
    on_note: &dyn Fn(&str),
    on_bytes: &(dyn Fn(u64, u64) + Sync),
) -> Result<DataBench> {
    let coco = dir.join("instances_synth2014.json");
    let oi = dir.join("annotations-human.csv");
    let classes: Vec<String> = (0..5000).map(|i| format!("/m/{i:05x}")).collect();
    if !coco.exists() {
        on_note(&format!("writing {} …", coco.display()));
        crate::coco::write_synthetic(&coco, sizes.coco_images, sizes.coco_annotations)?;
    }
    if !oi.exists() {
        on_note(&format!("writing {} …", oi.display()));
        crate::openimages::write_synthetic_annotations(&oi, sizes.openimages_rows, &classes)?;
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|e| DataError::io(p, e));
    let baseline = proc_status_mib("VmRSS:");
    let t = std::time::Instant::now();
    let s = read_coco(&coco, ImageOrder::File)?;
    let coco_seconds = t.elapsed().as_secs_f64();
    let coco_peak = proc_status_mib("VmHWM:");
    let coco_bytes = size(&coco)?;
    on_note(&format!(
        "COCO: {} images, {} annotations, {:.0} MB in {coco_seconds:.2} s",
        s.images.len(),
        s.annotations,
        coco_bytes as f64 / 1e6
    ));
    drop(s);
    let bytes = size(&oi)?;
    let t = std::time::Instant::now();
    let (img, stats) = crate::openimages::read_annotations(&oi, "train", &classes, &|b| on_bytes(b, bytes))?;
    let oi_seconds = t.elapsed().as_secs_f64();
    Ok(DataBench {
        coco_bytes,
        coco_images: sizes.coco_images,
        coco_annotations: sizes.coco_annotations,
        coco_seconds,
        coco_peak_rss_mib: coco_peak,
        openimages_bytes: bytes,
        openimages_rows: stats.rows,
        openimages_images: img.len(),
        openimages_seconds: oi_seconds,
        openimages_rows_per_second: stats.rows as f64 / oi_seconds,
        openimages_peak_rss_mib: proc_status_mib("VmHWM:"),
        baseline_rss_mib: baseline,
    })
}
