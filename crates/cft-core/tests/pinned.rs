//! Numbers pinned to the bit: a small synthetic problem's base head, CFT-BP head and CFT-GA
//! head after a fixed number of epochs are committed (`tests/pinned/heads.json`, f32 bit
//! patterns) and compared exactly, at every kernel level this machine has and with 1 and 2
//! threads. CI on any processor checks the numbers themselves, not only that two runs agree.
//!
//! After a change that moves the numbers on purpose: `CFT_UPDATE_PINNED=1 cargo test -p
//! cft-core --test pinned`, and say in the commit why they moved.

use cft_core::kernels::{set_kernel_level, Detected};
use cft_core::synthetic::synthetic_split;
use cft_core::{
    finetune, train_base_head, AdamConfig, BaseHeadConfig, BaseMode, Batched, FineTuneConfig, GaConfig, Hooks,
    LinearHead, Loss, Method, PerCategory, SplitRef,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn bits(h: &LinearHead) -> Vec<String> {
    h.weight.as_slice().iter().chain(&h.bias).map(|v| format!("{:08x}", v.to_bits())).collect()
}

/// The three heads of the pinned problem.
fn heads() -> BTreeMap<&'static str, Vec<String>> {
    let train = synthetic_split(240, 37, 3, 0.5, 0.3, 11);
    let valid = synthetic_split(160, 37, 3, 1.0, 0.3, 12);
    let recipe = BaseHeadConfig { epochs: 40, lr: 1e-2, weight_decay: 1e-4, ..BaseHeadConfig::recipe(BaseMode::An) };
    let base = train_base_head(&train.features, &train.labels, &recipe.check().unwrap()).head;
    let (st, sv) = (train.labels.to_sparse(), valid.labels.to_sparse());
    let run = |method: Method| {
        let mut cfg = FineTuneConfig::reference(method);
        cfg.max_epochs = 60;
        cfg.patience = 60;
        cfg.seed = 7;
        let cfg = cfg.check().unwrap();
        let tr = SplitRef { features: &train.features, labels: &st };
        let va = SplitRef { features: &valid.features, labels: &sv };
        let per_category = finetune(&PerCategory, &cfg, &base, tr, va, &Hooks::NONE).unwrap().head;
        let batched = finetune(&Batched::default(), &cfg, &base, tr, va, &Hooks::NONE).unwrap().head;
        assert_eq!(per_category, batched, "both CPU engines give the same bits");
        per_category
    };
    let bp = run(Method::Bp { loss: Loss::ASL_REFERENCE, adam: AdamConfig { lr: 1e-2, ..AdamConfig::default() } });
    let ga = run(Method::Ga(GaConfig::default()));
    BTreeMap::from([("base_an", bits(&base)), ("cft_bp_asl", bits(&bp)), ("cft_ga", bits(&ga))])
}

#[test]
fn base_bp_and_ga_heads_equal_the_committed_bits_at_every_level_and_thread_count() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pinned/heads.json");
    let mut seen = Vec::new();
    for level in Detected::all() {
        for threads in [1, 2] {
            set_kernel_level(level);
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            seen.push((level, threads, pool.install(heads)));
        }
    }
    set_kernel_level(Detected::best());
    let got = &seen[0].2;
    if std::env::var_os("CFT_UPDATE_PINNED").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(got).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with CFT_UPDATE_PINNED=1)", path.display()));
    let want: BTreeMap<String, Vec<String>> = serde_json::from_str(&text).unwrap();
    for (level, threads, heads) in &seen {
        for (name, values) in heads {
            let w = &want[*name];
            let diff = values.iter().zip(w).filter(|(a, b)| a != b).count();
            assert!(
                diff == 0 && values.len() == w.len(),
                "{name} at {level:?}, {threads} threads: {diff} values differ"
            );
        }
    }
    // The fine-tuned heads really moved away from the base head.
    assert_ne!(want["cft_bp_asl"], want["base_an"]);
    assert_ne!(want["cft_ga"], want["base_an"]);
}
