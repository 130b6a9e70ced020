//! Files written by the Python stack (numpy + safetensors, see
//! `datasets/fixtures/make_interop.py`) are read by cft, and a head written by cft has exactly
//! the layout `safetensors.torch.load_file` + `nn.Linear.load_state_dict` expect.

use cft_core::Label;
use cft_data::{read_feature_set, read_head, write_head};
use safetensors::tensor::{Dtype, SafeTensors};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fixtures").join(name)
}

#[test]
fn reads_a_feature_set_written_by_numpy() {
    let set = read_feature_set(&fixture("numpy_feature_set.safetensors")).unwrap();
    assert_eq!((set.features.rows(), set.features.cols()), (5, 3));
    // float16 on disk, exact values.
    assert_eq!(set.features.row(4), &[-0.5, 0.125, 1.0]);
    let l = set.labels.unwrap();
    assert_eq!(l.row(0), &[Label::Positive, Label::Negative]);
    assert_eq!(l.row(1), &[Label::Negative, Label::Unknown]);
    assert_eq!(l.row(2), &[Label::Uncertain, Label::Positive]);
    assert_eq!(set.categories.unwrap(), ["cat", "dog"]);
}

#[test]
fn a_pytorch_state_dict_round_trips_through_cft() {
    let head = read_head(&fixture("pytorch_linear_head.safetensors")).unwrap();
    assert_eq!(head.weight.row(1), &[0.0, 0.5, -0.25]);
    assert_eq!(head.bias, [-1.0, 0.5]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("head.safetensors");
    write_head(&out, &head, None).unwrap();
    // What torch's loader sees: exactly the two nn.Linear keys, f32, [C, d] and [C].
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(names, ["bias", "weight"]);
    let w = st.tensor("weight").unwrap();
    assert_eq!((w.dtype(), w.shape()), (Dtype::F32, &[2usize, 3][..]));
    let b = st.tensor("bias").unwrap();
    assert_eq!((b.dtype(), b.shape()), (Dtype::F32, &[2usize][..]));
    // Byte-identical tensor data to the file numpy wrote.
    let orig = std::fs::read(fixture("pytorch_linear_head.safetensors")).unwrap();
    let o = SafeTensors::deserialize(&orig).unwrap();
    assert_eq!(o.tensor("weight").unwrap().data(), w.data());
    assert_eq!(o.tensor("bias").unwrap().data(), b.data());
}

/// Writes f32 tensors under the given names (a state dict as `safetensors.torch.save_file`
/// writes it).
fn state_dict(path: &std::path::Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: Vec<(&str, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| (*n, safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn the_classifier_of_a_model_state_dict_is_found() {
    use cft_data::read_head_file;
    let dir = tempfile::tempdir().unwrap();
    let w = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let backbone = ("layer1.0.conv1.weight", vec![1, 1, 1, 1], vec![0.5]);
    // A torchvision ResNet: `fc.weight`, `fc.bias` beside the backbone.
    let resnet = dir.path().join("resnet.safetensors");
    state_dict(
        &resnet,
        &[backbone.clone(), ("fc.weight", vec![2, 3], w.clone()), ("fc.bias", vec![2], vec![0.5, -0.5])],
    );
    let h = read_head_file(&resnet, None).unwrap();
    assert_eq!((h.prefix.as_str(), h.has_bias), ("fc.", true));
    assert_eq!((h.head.weight.row(1), h.head.bias.as_slice()), (&[4.0, 5.0, 6.0][..], &[0.5, -0.5][..]));
    // DataParallel / DDP: every key under `module.`; a DenseNet's `classifier.`.
    let ddp = dir.path().join("ddp.safetensors");
    state_dict(
        &ddp,
        &[
            ("module.features.conv0.weight", vec![1], vec![0.0]),
            ("module.classifier.weight", vec![2, 3], w.clone()),
            ("module.classifier.bias", vec![2], vec![1.0, 2.0]),
        ],
    );
    let h = read_head_file(&ddp, None).unwrap();
    assert_eq!((h.prefix.as_str(), h.head.bias.as_slice()), ("module.classifier.", &[1.0, 2.0][..]));
    // nn.Linear(bias=False): bias 0, and the file says it has none.
    let nobias = dir.path().join("nobias.safetensors");
    state_dict(&nobias, &[("weight", vec![2, 3], w.clone())]);
    let h = read_head_file(&nobias, None).unwrap();
    assert_eq!((h.has_bias, h.head.bias.as_slice()), (false, &[0.0, 0.0][..]));
    let out = dir.path().join("out.safetensors");
    cft_data::write_head_as(&out, &h.head, None, false).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(SafeTensors::deserialize(&bytes).unwrap().names(), ["weight"]);
    // Another prefix by name; none found lists what is there; two candidates must be chosen.
    let custom = dir.path().join("custom.safetensors");
    state_dict(&custom, &[("heads.cls.weight", vec![2, 3], w.clone()), ("heads.cls.bias", vec![2], vec![0.0, 0.0])]);
    assert_eq!(read_head_file(&custom, Some("heads.cls")).unwrap().prefix, "heads.cls.");
    let err = read_head_file(&custom, None).unwrap_err().to_string();
    assert!(
        err.contains("custom.safetensors") && err.contains("--head-key") && err.contains("heads.cls.weight"),
        "{err}"
    );
    let two = dir.path().join("two.safetensors");
    state_dict(&two, &[("fc.weight", vec![2, 3], w.clone()), ("head.weight", vec![2, 3], w)]);
    let err = read_head_file(&two, None).unwrap_err().to_string();
    assert!(err.contains("several classifiers (fc., head.)"), "{err}");
}

#[test]
fn duplicate_category_names_in_a_feature_set_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("dup.safetensors");
    let set = cft_data::FeatureSet {
        features: cft_core::Matrix::new(1, 2, vec![1.0, 2.0]).unwrap(),
        labels: Some(cft_core::PartialLabels::new(1, 2, vec![Label::Positive, Label::Negative]).unwrap()),
        categories: Some(vec!["cat".into(), "cat".into()]),
        paths: None,
    };
    cft_data::write_feature_set(&p, &set, cft_data::FeaturePrecision::F32).unwrap();
    let err = read_feature_set(&p).unwrap_err().to_string();
    assert!(err.contains("dup.safetensors") && err.contains("`cat` twice (entries 0 and 1)"), "{err}");
}
