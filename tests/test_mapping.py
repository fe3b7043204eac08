from itertools import pairwise

import pytest

from tinydistill.errors import TinyDistillError
from tinydistill.mapping import layer_map, parse_layer_map


@pytest.mark.parametrize(
    ("m", "n", "expected"),
    [
        (4, 12, [3, 6, 9, 12]),
        (6, 12, [2, 4, 6, 8, 10, 12]),
        (3, 6, [2, 4, 6]),
        (4, 6, [1, 3, 4, 6]),  # non-integer ratio: floor(m * N / M)
        (5, 6, [1, 2, 3, 4, 6]),
        (6, 6, [1, 2, 3, 4, 5, 6]),
        (1, 12, [12]),
    ],
)
def test_uniform(m: int, n: int, expected: list[int]) -> None:
    got = layer_map("uniform", m, n)
    assert got == expected
    assert got[-1] == n and all(a < b for a, b in pairwise(got))


def test_uniform_always_strictly_increasing_and_ends_at_top() -> None:
    for n in range(1, 25):
        for m in range(1, n + 1):
            got = layer_map("uniform", m, n)
            assert len(got) == m and got[-1] == n and got[0] >= 1
            assert all(a < b for a, b in pairwise(got))


def test_top_and_bottom() -> None:
    assert layer_map("top", 4, 12) == [9, 10, 11, 12]
    assert layer_map("bottom", 4, 12) == [1, 2, 3, 4]
    assert layer_map("TOP", 2, 2) == [1, 2]


def test_explicit_list_and_string() -> None:
    assert layer_map([3, 6, 9, 12], 4, 12) == [3, 6, 9, 12]
    assert layer_map((12, 1), 2, 12) == [12, 1]  # order is not enforced
    assert layer_map("3, 6,9,12", 4, 12) == [3, 6, 9, 12]


@pytest.mark.parametrize(
    ("kind", "m", "n"),
    [
        ("uniform", 7, 6),
        ("top", 7, 6),
        ("bottom", 7, 6),
        ("sideways", 2, 6),
        ([1, 2, 3], 4, 12),  # wrong length
        ([0, 2], 2, 12),  # out of range low
        ([2, 13], 2, 12),  # out of range high
        ("1,x", 2, 12),
        ([1.5, 2], 2, 12),
        ("uniform", 0, 6),
    ],
)
def test_errors(kind: object, m: int, n: int) -> None:
    with pytest.raises(TinyDistillError):
        layer_map(kind, m, n)  # type: ignore[arg-type]


def test_parse_layer_map() -> None:
    assert parse_layer_map("Uniform") == "uniform"
    assert parse_layer_map(" top ") == "top"
    assert parse_layer_map("3,6,9,12") == [3, 6, 9, 12]
    with pytest.raises(TinyDistillError):
        parse_layer_map("")
    with pytest.raises(TinyDistillError):
        parse_layer_map("foo")
