//! The core against third-party reference values (`datasets/fixtures/`, see its README):
//! numpy's PCG64 stream and the reference label-dropping protocol, scikit-learn's AP/AUC, and
//! the CFT authors' own BP run, epoch by epoch.

use cft_core::*;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../../datasets/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn indices(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

#[test]
fn pcg64_streams_are_bit_identical_to_numpy() {
    let fx = fixture("numpy_pcg64.json");
    for stream in fx["streams"].as_array().unwrap() {
        let seed = stream["seed"].as_u64().unwrap();
        let mut rng = Pcg64::new(seed);
        for (i, want) in f64s(&stream["random_f64_first_1000"]).into_iter().enumerate() {
            assert_eq!(rng.random(), want, "seed {seed}, draw {i}");
        }
        let mut rng = Pcg64::new(seed);
        for want in stream["next_u64_first_8"].as_array().unwrap() {
            assert_eq!(rng.next_u64(), want.as_u64().unwrap(), "seed {seed}");
        }
    }
}

const KINDS: [(&str, Label); 3] = [("pos", Label::Positive), ("neg", Label::Negative), ("unc", Label::Uncertain)];

#[test]
fn label_dropping_matches_the_reference_protocol() {
    let fx = &fixture("numpy_pcg64.json")["drop_labels"];
    let c = fx["num_categories"].as_u64().unwrap() as usize;
    let records = fx["records"].as_array().unwrap();
    let mut full = PartialLabels::unknown(records.len(), c);
    for (i, r) in records.iter().enumerate() {
        for (key, label) in KINDS {
            for cat in indices(&r[key]) {
                full.set(i, cat, label);
            }
        }
    }
    let seed = fx["seed"].as_u64().unwrap();
    for by_ratio in fx["kept_by_ratio"].as_array().unwrap() {
        let ratio = by_ratio["known_ratio"].as_f64().unwrap();
        let kept = drop_labels(&full, ratio, seed);
        for (i, want) in by_ratio["kept"].as_array().unwrap().iter().enumerate() {
            for (key, label) in KINDS {
                let got: Vec<usize> = (0..c).filter(|&cat| kept.get(i, cat) == label).collect();
                assert_eq!(got, indices(&want[key]), "ratio {ratio}, record {i}, {key}");
            }
        }
    }
}

fn close(got: Option<f64>, want: &Value, tol: f64, what: &str) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!((g - w).abs() <= tol, "{what}: got {g}, want {w}"),
        (g, _) => panic!("{what}: got {g:?}, want {want}"),
    }
}

fn distinct<T: Copy + PartialEq, F: Fn(&T, &T) -> std::cmp::Ordering>(v: &[T], cmp: F) -> usize {
    let mut v = v.to_vec();
    v.sort_by(cmp);
    v.dedup();
    v.len()
}

#[test]
fn binary_ap_and_auc_match_scikit_learn() {
    let fx = fixture("metrics.json");
    for case in fx["binary"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let scores = f64s(&case["scores"]);
        let labels: Vec<bool> = f64s(&case["labels"]).iter().map(|&y| y == 1.0).collect();
        close(Metric::Ap.score(&scores, &labels), &case["ap"], 1e-12, &format!("{name} AP"));
        close(Metric::Auc.score(&scores, &labels), &case["auc"], 1e-12, &format!("{name} AUC"));
        // The step-for-step scikit-learn form is exact to the bit.
        assert_eq!(roc_auc_sklearn(&scores, &labels), case["auc"].as_f64(), "{name} sklearn-exact AUC");
        // The batched f32 path agrees too, whenever f32 keeps the ranking and its ties.
        let s32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
        if distinct(&scores, f64::total_cmp) == distinct(&s32, f32::total_cmp) {
            for (metric, key) in [(Metric::Ap, "ap"), (Metric::Auc, "auc")] {
                let mut out = [0.0];
                RankScorer::new().score_rows(metric, &s32, &labels, &mut out);
                let got = Some(out[0]).filter(|v| !v.is_nan());
                close(got, &case[key], 1e-12, &format!("{name} batched {key}"));
            }
        }
    }
}

#[test]
fn partial_label_scores_and_means_match_scikit_learn() {
    let fx = &fixture("metrics.json")["partial"];
    let rows = fx["labels"].as_array().unwrap();
    let c = rows[0].as_array().unwrap().len();
    let mut labels = PartialLabels::unknown(rows.len(), c);
    let mut scores = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        for (cat, y) in f64s(r).into_iter().enumerate() {
            let l = match y {
                1.0 => Label::Positive,
                0.0 => Label::Negative,
                _ => Label::Unknown,
            };
            labels.set(i, cat, l);
        }
        scores.extend(f64s(&fx["scores"][i]));
    }
    for (metric, key, mean_key) in [(Metric::Ap, "per_category_ap", "map"), (Metric::Auc, "per_category_auc", "mauc")] {
        let per = partial_scores(metric, &scores, &labels);
        for (cat, want) in fx[key].as_array().unwrap().iter().enumerate() {
            close(per[cat], want, 1e-12, &format!("{key}[{cat}]"));
        }
        close(mean_defined(&per), &fx[mean_key], 1e-12, mean_key);
    }
}

fn matrix(v: &Value) -> Matrix {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(f64s).collect();
    let cols = rows[0].len();
    Matrix::new(rows.len(), cols, rows.iter().flatten().map(|&x| x as f32).collect()).unwrap()
}

fn labels(v: &Value) -> PartialLabels {
    let rows = v.as_array().unwrap();
    let c = rows[0].as_array().unwrap().len();
    let mut out = PartialLabels::unknown(rows.len(), c);
    for (i, r) in rows.iter().enumerate() {
        for (cat, y) in r.as_array().unwrap().iter().enumerate() {
            let l = y.as_f64().map_or(Label::Unknown, |y| Label::from_reference(y as f32).unwrap());
            out.set(i, cat, l);
        }
    }
    out
}

fn rel_close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}

#[test]
fn bp_runs_follow_the_reference_epoch_by_epoch() {
    let fx = fixture("cft_reference_bp.json");
    let inputs = &fx["inputs"];
    let (zt, zv) = (matrix(&inputs["z_train"]), matrix(&inputs["z_valid"]));
    // The reference resolves uncertain training labels to unknown (`uncertain_to_unknown`).
    let yt = labels(&inputs["y_train"]).resolve_uncertain(&[UncertainPolicy::Ignore]).to_sparse();
    let yv = labels(&inputs["y_valid"]).to_sparse();
    let bias = f64s(&inputs["bias"]).iter().map(|&b| b as f32).collect();
    let head = LinearHead::new(matrix(&inputs["weight"]), bias).unwrap();
    for (name, run) in fx["runs"].as_object().unwrap() {
        let loss = match run["loss"].as_str().unwrap() {
            "asl" => Loss::ASL_REFERENCE,
            "bce_with_logits_sum" => Loss::Bce,
            other => panic!("unknown loss {other}"),
        };
        let epochs = run["epochs"].as_u64().unwrap() as usize;
        let adam = AdamConfig { lr: run["lr"].as_f64().unwrap() as f32, ..Default::default() };
        let mut cfg = FineTuneConfig::reference(Method::Bp { loss, adam });
        cfg.max_epochs = epochs;
        cfg.patience = epochs + 1;
        cfg.keep_history = true;
        let train = SplitRef { features: &zt, labels: &yt };
        let valid = SplitRef { features: &zv, labels: &yv };
        let cfg = cfg.check().unwrap();
        let out = finetune(&PerCategory, &cfg, &head, train, valid, &Hooks::NONE).unwrap();
        for (key, log) in run["per_category_log"].as_object().unwrap() {
            let cat: usize = key.trim_start_matches("category_").parse().unwrap();
            let hist = &out.categories[cat].history;
            let log = log.as_array().unwrap();
            assert_eq!(hist.len(), log.len(), "{name} {key}: epochs");
            for (h, want) in hist.iter().zip(log) {
                let wl = want["loss"].as_f64().unwrap();
                let wv = want["Valid Score"].as_f64().unwrap();
                let (gl, e) = (h.loss.unwrap(), h.epoch);
                assert!(rel_close(gl, wl, 1e-4), "{name} {key} epoch {e}: loss {gl} vs {wl}");
                let gv = h.valid_score;
                assert!(rel_close(gv, wv, 1e-4), "{name} {key} epoch {e}: AP {gv} vs {wv}");
            }
        }
        let (ww, wb) = (matrix(&run["finetuned_weight"]), f64s(&run["finetuned_bias"]));
        #[allow(clippy::needless_range_loop)]
        for cat in 0..head.categories() {
            for (g, w) in out.head.weight.row(cat).iter().zip(ww.row(cat)) {
                let ok = rel_close(f64::from(*g), f64::from(*w), 1e-4);
                assert!(ok, "{name} cat {cat}: weight {g} vs {w}");
            }
            let ok = rel_close(f64::from(out.head.bias[cat]), wb[cat], 1e-4);
            assert!(ok, "{name} cat {cat}: bias {} vs {}", out.head.bias[cat], wb[cat]);
        }
        assert_eq!(out.categories[3].skipped, Some(SkipReason::NoTrainPositive), "{name}: cat 3");
        // The batched engine computes the very same run.
        let batched =
            finetune(&Batched { batch: 2, working_set: None }, &cfg, &head, train, valid, &Hooks::NONE).unwrap();
        assert_eq!(batched.head, out.head, "{name}: batched engine");
        assert_eq!(out.head.weight.row(3), head.weight.row(3));
    }
}

/// torch 2.15's CPU `torch.sort(fitness, descending=True)` on 900 fitness vectors with ties
/// (`ga_ties/torch_sort_desc.json`): the full permutation equals ours in every case, and the
/// reference's validated head (`argmax`, the first maximum) is what the default elite keeps.
#[test]
fn torch_cpu_sort_order_on_ties_is_reproduced_in_every_fixture_case() {
    let fx = fixture("ga_ties/torch_sort_desc.json");
    let cases = fx["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 900);
    let (mut full, mut elite_differs) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let fitness: Vec<f32> = f64s(&case["fitness"]).into_iter().map(|f| f as f32).collect();
        let want = indices(&case["order"]);
        assert_eq!(cft_core::torch_sort::descending_order(&fitness), want, "case {i} (n = {})", case["n"]);
        full += 1;
        let as_f64: Vec<f64> = fitness.iter().map(|&f| f64::from(f)).collect();
        assert_eq!(elite_order(&as_f64, GaEliteTies::TorchCpu)[0], want[0], "case {i}");
        let argmax = case["argmax"].as_u64().unwrap() as usize;
        assert_eq!(elite_order(&as_f64, GaEliteTies::First)[0], argmax, "case {i}");
        elite_differs += usize::from(want[0] != argmax);
    }
    assert_eq!(full, 900);
    // The fixture is only informative if ties make the two choices differ often.
    assert!(elite_differs > 300, "{elite_differs} of 900 cases pick another elite");
}
