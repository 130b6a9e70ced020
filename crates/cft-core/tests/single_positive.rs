//! The single-positive protocol against Cole et al.'s own sampler
//! (`datasets/fixtures/single_positive/`: their `observe_uniform` run unmodified with numpy's
//! `RandomState`): every observed matrix equal, entry for entry.

use cft_core::{single_positive, Label, PartialLabels};
use serde_json::Value;

fn matrix(v: &Value) -> Vec<Vec<u64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()).collect()
}

#[test]
fn the_sampler_draws_what_the_official_sampler_draws() {
    let path = format!("{}/../../datasets/fixtures/single_positive/single_positive.json", env!("CARGO_MANIFEST_DIR"));
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    let mut without_positive = 0;
    for case in cases {
        let (labels, want) = (matrix(&case["labels"]), matrix(&case["observed"]));
        let (n, c) = (labels.len(), labels[0].len());
        let full: Vec<Label> =
            labels.iter().flatten().map(|&v| if v == 1 { Label::Positive } else { Label::Negative }).collect();
        let seed = case["seed"].as_u64().unwrap() as u32;
        let got = single_positive(&PartialLabels::new(n, c, full).unwrap(), seed);
        for i in 0..n {
            for (k, &w) in want[i].iter().enumerate() {
                let expect = if w == 1 { Label::Positive } else { Label::Unknown };
                assert_eq!(got.get(i, k), expect, "{} row {i} category {k}", case["name"]);
            }
            let kept = (0..c).filter(|&k| got.get(i, k) == Label::Positive).count();
            assert_eq!(kept, usize::from(labels[i].contains(&1)), "one positive per image that has one");
            without_positive += usize::from(!labels[i].contains(&1));
        }
    }
    assert!(without_positive >= 4, "images without a positive are exercised");
}
