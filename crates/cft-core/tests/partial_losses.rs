//! The partial-label losses against the official code (`datasets/fixtures/partial_losses/`:
//! Cole et al. 2021, Zhou et al. 2022 and Kim et al. 2022 run unmodified in float64, gradients
//! by autograd): every case's loss value, loss matrix, gradient (and ROLE's estimator
//! gradient), LL's threshold, modified and relabelled entries, and APL's pseudo-labels round by
//! round. The worst relative difference per loss is printed (`--nocapture`).

use cft_core::partial_loss::{apl_counts, apl_round, partial_loss, Batch, LlScheme, PartialLoss};
use cft_core::Label;
use serde_json::Value;
use std::collections::BTreeMap;

fn fixture() -> Value {
    let path = format!("{}/../../datasets/fixtures/partial_losses/partial_losses.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn flat(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect()
}

fn observed(v: &Value) -> Vec<Label> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array().unwrap().iter().map(|x| match x.as_u64() {
                Some(1) => Label::Positive,
                Some(0) => Label::Negative,
                _ => Label::Unknown,
            })
        })
        .collect()
}

/// `[[i, c], …]` or `[[i, c, s], …]` as row-major indices (and values).
fn entries(v: &Value, c: usize) -> Vec<(usize, Option<f64>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = e.as_array().unwrap();
            (e[0].as_u64().unwrap() as usize * c + e[1].as_u64().unwrap() as usize, e.get(2).and_then(Value::as_f64))
        })
        .collect()
}

fn rel(a: f64, b: f64) -> f64 {
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        0.0
    } else {
        (a - b).abs() / scale
    }
}

/// Worst relative difference of two vectors (lengths must match).
fn worst(got: &[f64], want: &[f64], what: &str) -> f64 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    got.iter().zip(want).map(|(&a, &b)| rel(a, b)).fold(0.0, f64::max)
}

const TOLERANCE: f64 = 1e-10;

#[test]
fn every_loss_value_and_gradient_equals_the_official_code() {
    let fx = fixture();
    let params = &fx["parameters"];
    // Per loss: (worst value difference, worst gradient difference, entries compared).
    let mut report: BTreeMap<String, (f64, f64, usize)> = BTreeMap::new();
    let mut compared = 0;
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (n, c) = (case["n"].as_u64().unwrap() as usize, case["C"].as_u64().unwrap() as usize);
        let logits = flat(&case["logits"]);
        let obs = observed(&case["observed"]);
        let truth: Vec<bool> = flat(&case["true_labels"]).iter().map(|&t| t == 1.0).collect();
        let est = flat(&case["role_est_init_logits"]);
        for r in case["results"].as_array().unwrap() {
            let tag = r["loss"].as_str().unwrap();
            let p = &r["params"];
            let ll = |scheme| PartialLoss::Ll {
                scheme,
                delta_rel: p["delta_rel"].as_f64().unwrap(),
                epoch: p["epoch"].as_u64().unwrap() as usize,
            };
            let mut pseudo = vec![None; n * c];
            let loss = match tag {
                "bce" => PartialLoss::Bce,
                "iu" => PartialLoss::Iu,
                "iun" => PartialLoss::Iun,
                "an" => PartialLoss::An,
                "an_ls" => PartialLoss::AnLs { ls_coef: p["ls_coef"].as_f64().unwrap() },
                "wan" => PartialLoss::Wan,
                "epr" => PartialLoss::Epr { expected_positives: p["expected_num_pos"].as_f64().unwrap() },
                "role" => PartialLoss::Role { expected_positives: p["expected_num_pos"].as_f64().unwrap() },
                "em" => PartialLoss::Em { alpha: p["alpha"].as_f64().unwrap() },
                "em_apl" => {
                    // The official rounds, replayed from the model outputs they selected with.
                    let apl = &params["em_apl"];
                    let counts = apl_counts(
                        &obs,
                        c,
                        apl["neg_proportion"].as_f64().unwrap(),
                        apl["num_epochs"].as_u64().unwrap() as usize,
                        apl["warmup_epoch"].as_u64().unwrap() as usize,
                    );
                    let unlabel: Vec<usize> =
                        p["unlabel_num"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
                    let mut u = vec![0; c];
                    obs.iter().enumerate().filter(|(_, l)| **l == Label::Unknown).for_each(|(i, _)| u[i % c] += 1);
                    assert_eq!(u, unlabel, "{name}: unknown entries per category");
                    for round in r["apl_rounds"].as_array().unwrap() {
                        let want_counts: Vec<usize> = round["neg_pl_num_per_class"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|v| v.as_u64().unwrap() as usize)
                            .collect();
                        assert_eq!(counts, want_counts, "{name}: APL counts");
                        let new = apl_round(&flat(&round["pl_logits"]), &obs, c, &counts, &mut pseudo);
                        let want = entries(&round["new_pseudo_labels"], c);
                        assert_eq!(new.len(), want.len(), "{name}: APL round {}", round["epoch"]);
                        for ((row, cat, s), (e, ws)) in new.iter().zip(&want) {
                            assert_eq!(row * c + cat, *e, "{name}: APL round {}", round["epoch"]);
                            assert!(rel(*s, ws.unwrap()) <= TOLERANCE, "{name}: APL target");
                        }
                    }
                    let all = entries(&r["pseudo_labels"], c);
                    assert_eq!(pseudo.iter().filter(|s| s.is_some()).count(), all.len());
                    for (e, s) in all {
                        assert!(rel(pseudo[e].unwrap(), s.unwrap()) <= TOLERANCE, "{name}: pseudo-label {e}");
                    }
                    PartialLoss::EmApl { alpha: p["alpha"].as_f64().unwrap(), beta: p["beta"].as_f64().unwrap() }
                }
                "ll_epoch1" => PartialLoss::Ll { scheme: LlScheme::Reject, delta_rel: 0.1, epoch: 1 },
                "ll_r" => ll(LlScheme::Reject),
                "ll_ct" | "ll_cp_as_cli" => ll(LlScheme::CorrectTemporary),
                "ll_cp" => ll(LlScheme::CorrectPermanent),
                other => panic!("{name}: a loss this test does not know: {other}"),
            };
            let batch = Batch {
                n,
                c,
                logits: &logits,
                observed: &obs,
                truth: Some(&truth),
                estimates: Some(&est),
                pseudo: Some(&pseudo),
            };
            let got = partial_loss(&loss, &batch);
            let what = format!("{name} {tag} {}", r["params"]);
            let mut value_diff = rel(got.value, r["value"].as_f64().unwrap());
            if let Some(reg) = r["reg"].as_f64() {
                value_diff = value_diff.max(rel(got.reg.unwrap(), reg));
            }
            value_diff = value_diff.max(worst(&got.matrix, &flat(&r["loss_matrix"]), &what));
            let mut grad_diff = worst(&got.grad_logits, &flat(&r["grad_logits"]), &what);
            if tag == "role" {
                grad_diff =
                    grad_diff.max(worst(got.grad_estimates.as_ref().unwrap(), &flat(&r["grad_est_logits"]), &what));
            }
            assert!(value_diff <= TOLERANCE, "{what}: value/matrix {value_diff:e}");
            assert!(grad_diff <= TOLERANCE, "{what}: gradient {grad_diff:e}");
            if let Some(k) = r.get("k").and_then(Value::as_u64) {
                let step = got.ll.as_ref().unwrap_or_else(|| panic!("{what}: no LL step"));
                assert_eq!(step.k, k as usize, "{what}: k (the float schedule)");
                assert_eq!(step.clamped_from, None, "{what}");
                assert_eq!(step.clean_rate, r["clean_rate"].as_f64().unwrap(), "{what}: clean rate, bit for bit");
                assert_eq!(step.threshold, r["threshold"].as_f64().unwrap(), "{what}: threshold");
                let modified: Vec<usize> = entries(&r["modified"], c).into_iter().map(|(e, _)| e).collect();
                assert_eq!(step.modified, modified, "{what}: modified entries");
                if let Some(perm) = r.get("permanent") {
                    let perm: Vec<usize> = entries(perm, c).into_iter().map(|(e, _)| e).collect();
                    assert_eq!(step.permanent, perm, "{what}: relabelled entries");
                    let mut after = obs.clone();
                    step.permanent.iter().for_each(|&e| after[e] = Label::Positive);
                    assert_eq!(after, observed(&r["observed_after_step"]), "{what}: labels after the step");
                }
            } else if tag == "ll_epoch1" {
                assert!(got.ll.is_none(), "epoch 1 modifies nothing");
            }
            let e = report.entry(tag.to_string()).or_insert((0.0, 0.0, 0));
            e.0 = e.0.max(value_diff);
            e.1 = e.1.max(grad_diff);
            e.2 += n * c;
            compared += 1;
        }
    }
    assert!(compared >= 6 * 16, "{compared} results compared");
    println!("loss | worst relative difference, value and matrix | gradient | entries");
    for (tag, (v, g, n)) in &report {
        println!("{tag} | {v:.2e} | {g:.2e} | {n}");
    }
}

#[test]
fn the_degenerate_ll_step_is_clamped_and_reported_never_flipping_observed_labels() {
    // 2 × 3 entries: 4 unknown, 2 observed. At epoch 3 with δ = 0.4 the schedule asks for
    // ⌈6 · 0.8⌉ = 5 entries, more than the 4 unknown ones: the official threshold would drop to
    // 0 and flip the observed labels too.
    let logits = [0.5, -1.0, 2.0, 0.1, 1.5, -0.3];
    let obs = [Label::Positive, Label::Unknown, Label::Unknown, Label::Unknown, Label::Negative, Label::Unknown];
    let batch = Batch { n: 2, c: 3, logits: &logits, observed: &obs, truth: None, estimates: None, pseudo: None };
    let got = partial_loss(&PartialLoss::Ll { scheme: LlScheme::CorrectTemporary, delta_rel: 0.4, epoch: 3 }, &batch);
    let step = got.ll.unwrap();
    assert_eq!((step.k, step.clamped_from), (4, Some(5)));
    assert_eq!(step.modified, vec![1, 2, 3, 5], "the unknown entries only");
    // The observed positive keeps its positive loss, the observed negative its negative one.
    assert_eq!(got.matrix[0], (1.0f64 + (-0.5f64).exp()).ln());
    assert_eq!(got.matrix[4], (1.0f64 + 1.5f64.exp()).ln());
}
