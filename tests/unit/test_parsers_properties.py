"""Property tests: valid values round-trip; arbitrary input raises only our own error."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pmdaemon.errors import InvalidInput
from pmdaemon.ports import PortKind, parse_port_spec
from pmdaemon.units import format_duration, parse_duration, parse_size

ANY = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.floats(),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.binary(max_size=10),
)


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=10**9))
def test_duration_in_ms_round_trips(ms: int) -> None:
    assert parse_duration(f"{ms}ms", "d") == ms / 1000
    assert parse_duration(ms, "d") == ms / 1000
    assert abs(parse_duration(format_duration(ms / 1000), "d") - ms / 1000) < 1e-6 * max(ms, 1)


@settings(max_examples=300)
@given(
    st.integers(min_value=1, max_value=2**40),
    st.sampled_from(["", "K", "M", "G", "KB", "mb", "GiB"]),
)
def test_sizes_round_trip(n: int, unit: str) -> None:
    scale = {
        "": 1,
        "K": 1024,
        "M": 1024**2,
        "G": 1024**3,
        "KB": 1024,
        "mb": 1024**2,
        "GiB": 1024**3,
    }[unit]
    if n * scale <= 2**62:
        assert parse_size(f"{n}{unit}", "s") == n * scale


@settings(max_examples=300)
@given(st.integers(min_value=1, max_value=65535), st.integers(min_value=0, max_value=100))
def test_port_specs_round_trip(first: int, span: int) -> None:
    assert parse_port_spec(first).first == first
    assert parse_port_spec(str(first)).kind == PortKind.SINGLE
    last = min(first + span, 65535)
    for text in (f"{first}-{last}", f"auto:{first}-{last}"):
        spec = parse_port_spec(text)
        assert (spec.first, spec.last) == (first, last) and str(spec) == text


@settings(max_examples=500)
@given(ANY)
def test_arbitrary_input_raises_only_invalid_input(value: object) -> None:
    for parse in (
        lambda v: parse_duration(v, "d"),
        lambda v: parse_size(v, "s"),
        lambda v: parse_port_spec(v, "p"),
    ):
        try:
            parse(value)
        except InvalidInput as exc:
            assert exc.message
