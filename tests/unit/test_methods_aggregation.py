"""FedAvg's weighted state average and FedMD's consensus on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlearn_ray.errors import ConfigError, DataError, ModelError
from chainlearn_ray.learning.models import build_model
from chainlearn_ray.methods.aggregation import fedavg_average, fedmd_consensus, softmax


def _state(weight: list[float], mean: list[float], var: list[float], tracked: int,
           dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    return {
        "conv.weight": torch.tensor(weight, dtype=dtype),
        "bn.running_mean": torch.tensor(mean, dtype=dtype),
        "bn.running_var": torch.tensor(var, dtype=dtype),
        "bn.num_batches_tracked": torch.tensor(tracked, dtype=torch.int64),
    }


def test_weights_one_to_three_give_known_values_for_every_entry() -> None:
    a = _state([1.0, -2.0], [0.0, 4.0], [1.0, 1.0], tracked=10)
    b = _state([5.0, 2.0], [4.0, 0.0], [3.0, 5.0], tracked=20)
    out = fedavg_average([a, b], [1, 3])
    assert list(out) == list(a)
    torch.testing.assert_close(out["conv.weight"], torch.tensor([4.0, 1.0]), rtol=0, atol=0)
    torch.testing.assert_close(out["bn.running_mean"], torch.tensor([3.0, 1.0]), rtol=0, atol=0)
    torch.testing.assert_close(out["bn.running_var"], torch.tensor([2.5, 4.0]), rtol=0, atol=0)
    # (1 * 10 + 3 * 20) / 4 = 17.5 -> rounded half up
    assert out["bn.num_batches_tracked"].item() == 18
    assert out["bn.num_batches_tracked"].dtype == torch.int64
    assert out["conv.weight"].dtype == torch.float32


def test_integer_buffers_round_to_nearest() -> None:
    a = _state([0.0], [0.0], [1.0], tracked=10)
    b = _state([0.0], [0.0], [1.0], tracked=13)
    # (2 * 10 + 1 * 13) / 3 = 11.0; (1 * 10 + 2 * 13) / 3 = 12.0; (10 + 13) / 2 = 11.5 -> 12
    assert fedavg_average([a, b], [2, 1])["bn.num_batches_tracked"].item() == 11
    assert fedavg_average([a, b], [1, 2])["bn.num_batches_tracked"].item() == 12
    assert fedavg_average([a, b], [1, 1])["bn.num_batches_tracked"].item() == 12
    c = _state([0.0], [0.0], [1.0], tracked=11)
    # (10 + 11 * 3) / 4 = 10.75 -> 11
    assert fedavg_average([a, c], [1, 3])["bn.num_batches_tracked"].item() == 11


def test_float_entries_are_accumulated_in_float64() -> None:
    # float32 accumulation would lose both +1s next to 2**24 and give 5592405.5
    a = {"w": torch.tensor([2.0**24], dtype=torch.float32)}
    b = {"w": torch.tensor([1.0], dtype=torch.float32)}
    out = fedavg_average([a, b, b], [1, 1, 1])
    assert out["w"].item() == 5592406.0
    half = fedavg_average([{"w": torch.tensor([1.0], dtype=torch.float16)},
                           {"w": torch.tensor([2.0], dtype=torch.float16)}], [1, 1])
    assert half["w"].dtype == torch.float16 and half["w"].item() == 1.5


def test_zero_sample_clients_do_not_count() -> None:
    a = _state([1.0, 1.0], [1.0, 1.0], [1.0, 1.0], tracked=3)
    b = _state([9.0, 9.0], [9.0, 9.0], [9.0, 9.0], tracked=99)
    out = fedavg_average([a, b], [5, 0])
    for k in a:
        assert torch.equal(out[k], a[k])


def test_real_model_state_average_covers_buffers() -> None:
    m1 = build_model("tiny_cnn:4", 2, 1, seed=1)
    m2 = build_model("tiny_cnn:4", 2, 1, seed=2)
    s1, s2 = m1.state_dict(), m2.state_dict()
    s2 = {k: (v + 1 if v.is_floating_point() else v + 4) for k, v in s2.items()}
    out = fedavg_average([s1, s2], [3, 1])
    assert set(out) == set(s1)
    assert any(k.endswith("num_batches_tracked") for k in out)
    for k, v in out.items():
        if v.is_floating_point():
            expected = (3 * s1[k].double() + s2[k].double()) / 4
            torch.testing.assert_close(v, expected.float())
        else:
            assert v.item() == 1  # (3 * 0 + 1 * 4) / 4
    m1.load_state_dict(out)  # the average is a loadable state


def test_mismatches_are_rejected() -> None:
    a = _state([1.0, 2.0], [0.0, 0.0], [1.0, 1.0], tracked=1)
    wrong_shape = _state([1.0, 2.0, 3.0], [0.0, 0.0], [1.0, 1.0], tracked=1)
    wrong_key = dict(a)
    wrong_key["extra"] = torch.zeros(1)
    wrong_dtype = dict(a)
    wrong_dtype["conv.weight"] = a["conv.weight"].double()
    for bad in (wrong_shape, wrong_key, wrong_dtype):
        with pytest.raises(ModelError):
            fedavg_average([a, bad], [1, 1])
    with pytest.raises(ConfigError):
        fedavg_average([a, a], [1])
    with pytest.raises(ConfigError):
        fedavg_average([a, a], [0, 0])
    with pytest.raises(ConfigError):
        fedavg_average([a, a], [1, -1])
    with pytest.raises(ConfigError):
        fedavg_average([], [])


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=6),
    sizes=st.lists(st.integers(0, 1000), min_size=1, max_size=6),
)
def test_average_of_identical_states_is_the_state(values: list[float], sizes: list[int]) -> None:
    if sum(sizes) == 0:
        sizes = [*sizes[:-1], 1]
    state = {"w": torch.tensor(values, dtype=torch.float64), "n": torch.tensor(7)}
    out = fedavg_average([state] * len(sizes), sizes)
    torch.testing.assert_close(out["w"], state["w"], rtol=1e-12, atol=1e-12)
    assert out["n"].item() == 7


def test_consensus_is_mean_of_tempered_softmax() -> None:
    a = np.array([[0.0, 3.0], [6.0, 0.0]], dtype=np.float32)
    b = np.array([[3.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    out = fedmd_consensus([a, b], temperature=3.0)
    q = np.exp(2.0) / (1 + np.exp(2.0))  # softmax([6, 0] / 3)[0]
    # row 0: softmax([0, 1]) and softmax([1, 0]) average to one half each
    expected = np.array([[0.5, 0.5], [(q + 0.5) / 2, ((1 - q) + 0.5) / 2]])
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    # T = 1 sharpens the same logits
    sharp = fedmd_consensus([a], temperature=1.0)
    assert sharp[0, 1] > fedmd_consensus([a], temperature=3.0)[0, 1]


def test_softmax_is_stable_for_large_logits() -> None:
    out = softmax(np.array([[1000.0, 0.0], [-1000.0, -1000.0]]))
    np.testing.assert_allclose(out, [[1.0, 0.0], [0.5, 0.5]])


def test_consensus_rejects_bad_input() -> None:
    with pytest.raises(DataError):
        fedmd_consensus([])
    with pytest.raises(DataError):
        fedmd_consensus([np.zeros((2, 2)), np.zeros((3, 2))])
    with pytest.raises(ModelError):
        fedmd_consensus([np.array([[np.nan, 0.0]])])
    with pytest.raises(ConfigError):
        fedmd_consensus([np.zeros((2, 2))], temperature=0.0)
