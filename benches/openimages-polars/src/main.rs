//! Side by side: the hand-written streaming reader of `annotations-human.csv` against polars'
//! lazy CSV scan (filter to trainable classes by joining the class list, group by image and
//! class), on the same synthetic file; checks both give the same labels.
use cft_core::{KnownSamples, SparseLabels};
use polars::prelude::*;
use std::path::Path;
use std::time::Instant;

fn polars_read(path: &Path, classes: &[String]) -> PolarsResult<(Vec<String>, SparseLabels)> {
    let schema = Schema::from_iter([
        Field::new("ImageID".into(), DataType::String),
        Field::new("Source".into(), DataType::String),
        Field::new("LabelName".into(), DataType::String),
        Field::new("Confidence".into(), DataType::Float64),
    ]);
    let scan = LazyCsvReader::new(PlRefPath::from(path.to_str().unwrap()))
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema)))
        .finish()?;
    // Images in order of first appearance (every row counts, as in the hand reader).
    let images = scan
        .clone()
        .select([col("ImageID")])
        .unique_stable(None, UniqueKeepStrategy::First)
        .with_row_index("img", None);
    let class_df = DataFrame::new_infer_height(vec![
        Column::new("LabelName".into(), classes.to_vec()),
        Column::new("k".into(), (0..classes.len() as u32).collect::<Vec<u32>>()),
    ])?;
    let labels = scan
        .filter(col("Confidence").eq(lit(1.0)).or(col("Confidence").eq(lit(0.0))))
        .join(class_df.lazy(), [col("LabelName")], [col("LabelName")], JoinArgs::new(JoinType::Inner))
        .join(images.clone(), [col("ImageID")], [col("ImageID")], JoinArgs::new(JoinType::Inner))
        .group_by([col("k"), col("img")])
        .agg([col("Confidence").min().alias("lo"), col("Confidence").max().alias("hi")])
        .filter(col("lo").eq(col("hi")))
        .collect()?;
    let ids_df = images.collect()?;
    let ca = ids_df.column("ImageID")?.str()?.clone();
    let ids: Vec<String> = (0..ca.len()).map(|i| ca.get(i).unwrap_or_default().to_string()).collect();
    let mut per_category = vec![KnownSamples::default(); classes.len()];
    let (k, img, hi) = (labels.column("k")?.u32()?, labels.column("img")?.idx()?, labels.column("hi")?.f64()?);
    for i in 0..labels.height() {
        let (Some(k), Some(img), Some(hi)) = (k.get(i), img.get(i), hi.get(i)) else { continue };
        let e = &mut per_category[k as usize];
        if hi == 1.0 { e.positives.push(img as u32) } else { e.negatives.push(img as u32) }
    }
    for e in &mut per_category {
        e.positives.sort_unstable();
        e.negatives.sort_unstable();
    }
    let n = ids.len();
    Ok((ids, SparseLabels { n_samples: n, per_category }))
}

fn main() {
    let rows: u64 = std::env::args().nth(1).map_or(20_000_000, |s| s.parse().unwrap());
    let path = Path::new("annotations-human.csv");
    let classes: Vec<String> = (0..5000).map(|k| format!("/m/{k:05x}")).collect();
    if !path.exists() {
        cft_data::openimages::write_synthetic_annotations(path, rows, &classes).unwrap();
    }
    let mb = std::fs::metadata(path).unwrap().len() as f64 / 1e6;
    let mode = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    if mode == "hand" {
        let t = Instant::now();
        let (_, stats) = cft_data::openimages::read_annotations(path, "train", &classes, &|_| {}).unwrap();
        println!("hand-written alone: {:.2} s ({:.2} M rows/s)", t.elapsed().as_secs_f64(), stats.rows as f64 / t.elapsed().as_secs_f64() / 1e6);
        return;
    }
    if mode == "polars" {
        let t = Instant::now();
        let (ids, _) = polars_read(path, &classes).unwrap();
        println!("polars lazy alone: {:.2} s, {} images", t.elapsed().as_secs_f64(), ids.len());
        return;
    }
    for round in 0..2 {
        let t = Instant::now();
        let (hand, stats) = cft_data::openimages::read_annotations(path, "train", &classes, &|_| {}).unwrap();
        let th = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (ids, labels) = polars_read(path, &classes).unwrap();
        let tp = t.elapsed().as_secs_f64();
        assert_eq!(ids, hand.ids, "image order differs");
        assert_eq!(labels, hand.labels, "labels differ");
        println!(
            "round {round}: {} rows ({mb:.0} MB), {} images, threads {}: hand-written {th:.2} s ({:.2} M rows/s), polars lazy {tp:.2} s ({:.2} M rows/s); identical labels",
            stats.rows,
            ids.len(),
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            stats.rows as f64 / th / 1e6,
            stats.rows as f64 / tp / 1e6
        );
    }
}
