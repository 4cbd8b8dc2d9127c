"""Single-threaded functional tests of the fixture API.

They call every function and method once. Some use module-level shared
objects on purpose, so that pytest-run-parallel (each test in N threads) makes
the planted races happen and attributes them to a test.
"""

import pytest

import ftfixture_racy as fx

SHARED_VECTOR = fx.Vector()
SHARED_REGISTRY = fx.Registry()
SHARED_HASHER = fx.Hasher()


def test_bump_counts_calls():
    before = fx.calls()
    for _ in range(2000):
        last = fx.bump()
    assert last >= before + 1
    assert fx.calls() >= before + 1


def test_lookup_known_units():
    assert fx.lookup("b") == 1
    assert fx.lookup("kb") == 1024
    assert fx.lookup("gb") == 1024**3


def test_lookup_unknown_unit():
    with pytest.raises(KeyError):
        fx.lookup("parsec")


def test_deposit_and_audit():
    entries = fx.audit()
    fx.deposit(5)
    assert fx.audit() >= entries + 1


def test_vector_append_len_getitem_iter():
    v = fx.Vector([1, 2])
    v.append(3)
    assert len(v) == 3
    assert v[2] == 3
    assert list(v) == [1, 2, 3]
    with pytest.raises(IndexError):
        v[3]


def test_vector_extend_from_vector_and_list():
    v = fx.Vector()
    v.extend(fx.Vector([1, 2]))
    v.extend([3])
    assert v.sum() == 6


def test_vector_pop_and_clear():
    v = fx.Vector(range(5))
    assert v.pop() == 4
    v.clear()
    assert len(v) == 0
    with pytest.raises(IndexError):
        v.pop()


def test_vector_repr_and_capacity():
    v = fx.Vector(range(5))
    assert v.capacity >= 5
    assert repr(v).startswith("Vector(size=5")


def test_vector_rejects_non_ints():
    with pytest.raises(TypeError):
        fx.Vector(["x"])


def test_shared_vector_grows():
    SHARED_VECTOR.append(7)
    SHARED_VECTOR.extend([1, 2, 3])
    assert len(SHARED_VECTOR) >= 4
    assert SHARED_VECTOR.sum() >= 13


def test_registry_latest():
    r = fx.Registry()
    with pytest.raises(LookupError):
        r.latest()
    r.add("a")
    r.add("b")
    assert r.latest() == "b"
    r.replace_latest("c")
    assert r.latest() == "c"
    assert len(r) == 2


def test_shared_registry():
    SHARED_REGISTRY.add(object())
    SHARED_REGISTRY.replace_latest([1, 2, 3])
    assert SHARED_REGISTRY.latest() is not None


def test_hasher_digest_depends_on_input():
    a, b = fx.Hasher(), fx.Hasher()
    a.update(b"abc")
    b.update(b"abd")
    assert a.hexdigest() != b.hexdigest()
    assert len(a.hexdigest()) == 16
    with pytest.raises(TypeError):
        a.update("not bytes")


def test_shared_hasher():
    SHARED_HASHER.update(b"x" * 64)
    assert len(SHARED_HASHER.hexdigest()) == 16


def test_format_value_in_every_mode():
    assert fx.format_value(255) == "255"
    assert fx.format_value(255, "hex") == "ff"
    assert fx.format_value(255, mode="HEX") == "FF"
    assert fx.format_value(-8, mode="oct") == "-10"
    with pytest.raises(ValueError):
        fx.format_value(1, "roman")


@pytest.mark.parametrize("mode, expected", [("bin", "1010"), ("dec", "10"), ("hex", "a")])
def test_format_value_parametrized(mode, expected):
    assert fx.format_value(10, mode) == expected


def test_format_value_over_a_range_in_each_mode():
    # The mode changes in the outer loop: one call site sees 'dec' 300 times, then 'oct'.
    for mode, base in (("dec", 10), ("oct", 8)):
        for value in range(300):
            assert int(fx.format_value(value, mode), base) == value


def test_shared_vectors_publish_their_items():
    v = fx.Vector([1, 2, 3], shared=True)
    assert v.sum() == 6
    assert len(fx.Vector(range(4), shared=False)) == 4


def test_fingerprint_of_bytes_and_text():
    payload = b"ftreview" * 20
    assert fx.fingerprint(payload) == fx.fingerprint(payload)
    assert fx.fingerprint(b"abc") != fx.fingerprint(b"abd")
    assert fx.fingerprint("abc") == fx.fingerprint("abc")
    assert fx.fingerprint(12) == fx.fingerprint("12")

