"""The `cft` package on torch tensors: tensors in, tensors out, the same bits as numpy, half
precisions accepted, no copy of float32 contiguous memory, and a head `nn.Linear` loads."""

import numpy as np
import pytest

import cft

torch = pytest.importorskip("torch", reason="torch is not installed (gpu/check-python.sh runs these on the GPU machine)")


def bits(t):
    return np.asarray(t, dtype=np.float32).view(np.uint32)


def test_tensors_in_tensors_out_with_the_numpy_bits_and_load_state_dict(own):
    train, test, head = own
    t = lambda a: torch.from_numpy(a.copy())
    args = dict(method="ga", max_epochs=30, patience=30, seed=2)
    rt = cft.finetune(t(train["features"]), t(train["labels"]), t(test["features"]), t(test["labels"]),
                      t(head["weight"]), t(head["bias"]), **args)
    rn = cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"],
                      head["bias"], **args)
    assert isinstance(rt.weight, torch.Tensor) and isinstance(rt.bias, torch.Tensor)
    assert np.array_equal(bits(rt.weight.numpy()), bits(rn.weight))
    linear = torch.nn.Linear(72, 6)
    linear.load_state_dict(rt.state_dict())
    assert torch.equal(linear.weight.data, rt.weight)


def test_a_models_parameters_are_taken_as_they_are(own):
    train, test, _ = own
    fc = torch.nn.Linear(72, 6)
    r = cft.finetune(torch.from_numpy(train["features"].copy()), train["labels"], test["features"], test["labels"],
                     fc.weight, fc.bias, method="bp-bce", max_epochs=10, patience=10, lr=0.01)
    fc.load_state_dict(r.state_dict())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_features_equal_their_float32_values(own, dtype):
    train, test, head = own
    x = torch.from_numpy(train["features"].copy()).to(getattr(torch, dtype))
    args = dict(method="bp-asl", max_epochs=20, patience=20, lr=0.01)
    rh = cft.finetune(x, train["labels"], test["features"], test["labels"], head["weight"], head["bias"], **args)
    r32 = cft.finetune(x.float().numpy(), train["labels"], test["features"], test["labels"], head["weight"],
                       head["bias"], **args)
    assert np.array_equal(bits(rh.weight), bits(r32.weight))


def test_float32_contiguous_tensors_are_not_copied_on_the_python_side():
    t = torch.randn(100, 8)
    assert np.shares_memory(cft._f32(t), t.numpy())
    a = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    assert cft._f32(a) is a
    assert cft._f32(a.T).flags.c_contiguous


def test_cuda_tensors_are_brought_to_the_cpu(own):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    train, test, head = own
    g = lambda a: torch.from_numpy(a.copy()).cuda()
    args = dict(method="ga", max_epochs=5, patience=5)
    r = cft.finetune(g(train["features"]), g(train["labels"]), g(test["features"]), g(test["labels"]),
                     g(head["weight"]), g(head["bias"]), **args)
    rn = cft.finetune(train["features"], train["labels"], test["features"], test["labels"], head["weight"],
                      head["bias"], **args)
    assert r.weight.device.type == "cpu"
    assert np.array_equal(bits(r.weight.numpy()), bits(rn.weight))
