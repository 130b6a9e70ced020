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
