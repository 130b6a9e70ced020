//! The CPU side of extraction, one core: decoding the nine bundled photos (Pillow-exact
//! libjpeg-turbo, and the opt-in reduced DCT scale) and PIL-exact bilinear resizing to the
//! network's input. `benches/pil_pipeline.py` times Pillow on the same files and steps, for the
//! side-by-side ratio.
//!
//! Run: `cargo bench -p cft-benches --bench image_pipeline`.

use cft_features::image::{decode, decode_with, resize_bilinear, to_chw, JpegDecode, Normalize};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::path::PathBuf;

fn photos() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../datasets/images");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    v.sort();
    v
}

fn pipeline(c: &mut Criterion) {
    let files = photos();
    let decoded: Vec<_> = files.iter().map(|p| decode(p).unwrap()).collect();
    let mut group = c.benchmark_group("image_pipeline_9_photos");
    group.sample_size(20);
    group.throughput(Throughput::Elements(files.len() as u64));
    group.bench_function("decode_exact", |b| b.iter(|| files.iter().map(|p| decode(p).unwrap().width).sum::<usize>()));
    for size in [224usize, 448] {
        group.bench_function(format!("decode_reduced_for_{size}"), |b| {
            b.iter(|| {
                files
                    .iter()
                    .map(|p| decode_with(p, JpegDecode::Reduced, Some((size, size))).unwrap().width)
                    .sum::<usize>()
            })
        });
        group.bench_function(format!("resize_to_{size}"), |b| {
            b.iter(|| decoded.iter().map(|im| resize_bilinear(black_box(im), size, size).data[0]).sum::<u8>())
        });
        group.bench_function(format!("to_tensor_{size}"), |b| {
            let small: Vec<_> = decoded.iter().map(|im| resize_bilinear(im, size, size)).collect();
            b.iter(|| small.iter().map(|im| to_chw(black_box(im), Normalize::Imagenet)[0]).sum::<f32>())
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
