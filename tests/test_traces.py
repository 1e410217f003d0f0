"""Trace loading: the shipped public traces read with the statistics their README states, and every
kind of bad input names the file, the physical line and the field."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ServesimError
from sim.workload.traces import (
    FORMATS,
    TRACE_FORMATS,
    Trace,
    load_trace,
    resolve_trace_path,
    spread_buckets,
    trace_names,
)

# name -> (rows, mean prompt, mean output, duration in minutes or None)
EXPECTED = {
    "azure-conv": (19366, 1155, 211, 58.4),
    "azure-code": (8819, 2048, 28, 57.3),
    "mooncake-conv": (12031, 12035, 343, 59.0),
    "sharegpt": (30731, 2340, 439, None),
    "arxiv": (28257, 2588, 291, None),
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, Trace]:
    return {name: load_trace(path, TRACE_FORMATS[name]) for name, path in trace_names().items()}


# ------------------------------------------------------------------------------------- shipped files


def test_every_shipped_trace_exists_with_its_license() -> None:
    names = trace_names()
    assert set(names) == set(EXPECTED) == set(TRACE_FORMATS)
    for path in names.values():
        assert path.is_file()
        assert any(p.name.startswith("LICENSE") for p in path.parent.iterdir()), path.parent
    assert (next(iter(names.values())).parent.parent / "README.md").is_file()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shipped_trace_statistics(shipped: dict[str, Trace], name: str) -> None:
    rows, prompt_mean, output_mean, minutes = EXPECTED[name]
    t = shipped[name]
    assert len(t) == rows
    assert t.prompt_tokens.dtype == np.int64 and t.output_tokens.dtype == np.int64
    assert t.prompt_tokens.min() >= 1 and t.output_tokens.min() >= 1
    assert t.prompt_tokens.mean() == pytest.approx(prompt_mean, rel=0.005)
    assert t.output_tokens.mean() == pytest.approx(output_mean, rel=0.01)
    assert t.source.endswith(trace_names()[name].name)
    if minutes is None:
        assert t.arrival_s is None
    else:
        a = t.arrival_s
        assert a is not None and a.dtype == np.float64 and len(a) == rows
        assert a[0] == 0.0
        assert np.all(np.diff(a) >= 0)
        assert a[-1] / 60 == pytest.approx(minutes, abs=0.1)


def test_azure_conv_timing(shipped: dict[str, Trace]) -> None:
    a = shipped["azure-conv"].arrival_s
    assert a is not None
    assert a[-1] / 60 == pytest.approx(58.362, abs=0.001)
    assert a[1] == pytest.approx(4.314579, abs=1e-6)  # 18:15:50.9951690 - 18:15:46.6805900
    assert len(a) / a[-1] == pytest.approx(5.53, abs=0.01)
    gaps = np.diff(a)
    assert gaps.std() / gaps.mean() == pytest.approx(1.09, abs=0.01)


def test_mooncake_hash_ids_match_input_length(shipped: dict[str, Trace]) -> None:
    t = shipped["mooncake-conv"]
    assert t.hash_ids is not None and len(t.hash_ids) == len(t)
    lengths = np.array([len(h) for h in t.hash_ids])
    np.testing.assert_array_equal(lengths, [math.ceil(n / 512) for n in t.prompt_tokens])
    assert all(h.dtype == np.int64 for h in t.hash_ids)
    ids = np.concatenate(t.hash_ids)
    assert 1 - len(np.unique(ids)) / len(ids) == pytest.approx(0.37, abs=0.01)  # README: 37% repeat
    assert t.hash_ids[0][0] == t.hash_ids[1][0] == 0  # a shared system prompt block


def test_mooncake_timestamps_are_bucketed(shipped: dict[str, Trace]) -> None:
    a = shipped["mooncake-conv"].arrival_s
    assert a is not None
    assert np.mean(np.diff(a) == 0) == pytest.approx(0.90, abs=0.01)
    assert np.median(np.diff(np.unique(a))) == pytest.approx(3.0, abs=0.01)


def test_short_names_resolve() -> None:
    assert resolve_trace_path("sharegpt") == trace_names()["sharegpt"]
    rel = "scenarios/traces/lengths/sharegpt_8k_llama2_tokenizer.csv"
    assert resolve_trace_path(rel).resolve() == trace_names()["sharegpt"].resolve()
    with pytest.raises(ServesimError, match=r"nope\.csv: file not found.*azure-conv.*sharegpt"):
        resolve_trace_path("nope.csv")


# ------------------------------------------------------------------------------------ spread_buckets


def test_spread_buckets_keeps_membership_and_order(shipped: dict[str, Trace]) -> None:
    a = shipped["mooncake-conv"].arrival_s
    assert a is not None
    s = spread_buckets(a, np.random.default_rng(7))
    assert s.shape == a.shape
    assert np.all(np.diff(s) >= 0)
    starts = np.unique(a)
    ends = np.append(starts[1:], starts[-1] + np.median(np.diff(starts)))
    bucket = np.searchsorted(starts, a)
    assert np.all(s >= a)
    assert np.all(s < ends[bucket])
    np.testing.assert_array_equal(np.searchsorted(starts, s, side="right") - 1, bucket)
    assert np.mean(np.diff(s) == 0) < 0.001  # the ties are gone
    np.testing.assert_array_equal(a, shipped["mooncake-conv"].arrival_s)  # input untouched


def test_spread_buckets_is_deterministic_per_seed() -> None:
    a = np.array([0.0, 0.0, 0.0, 3.0, 3.0, 6.0, 9.0, 9.0])
    one = spread_buckets(a, np.random.default_rng(1))
    np.testing.assert_array_equal(one, spread_buckets(a, np.random.default_rng(1)))
    assert not np.array_equal(one, spread_buckets(a, np.random.default_rng(2)))
    assert one[5] == 6.0  # alone at its timestamp: left alone
    assert np.all((one[6:] >= 9.0) & (one[6:] < 12.0))  # last bucket: median width 3


def test_spread_buckets_leaves_distinct_times_alone(shipped: dict[str, Trace]) -> None:
    a = shipped["azure-conv"].arrival_s
    assert a is not None
    np.testing.assert_array_equal(spread_buckets(a, np.random.default_rng(0)), a)
    assert spread_buckets(np.zeros(0), np.random.default_rng(0)).size == 0


# ---------------------------------------------------------------------------------------- bad input

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, newline="")
    return path


def expect(path: Path, fmt: str, line: int, field: str, found: str | None = None) -> str:
    with pytest.raises(ServesimError) as info:
        load_trace(path, fmt)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {field}: expected "), message
    if found is not None:
        assert message.endswith(f"found {found}"), message
    return message


def test_bad_integer_names_line_3(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.csv",
        AZURE_HEADER + "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,12x,109\n",
    )
    expect(path, "azure", 3, "ContextTokens", "'12x'")


@pytest.mark.parametrize("value", ["0", "-3", "1.5", ""])
def test_non_positive_or_fractional_tokens_are_errors(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "t.csv", f"arrival_s,prompt_tokens,output_tokens\n0,5,5\n1,5,5\n2,5,{value}\n")
    expect(path, "csv", 4, "output_tokens", repr(value))


def test_line_numbers_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = "num_prefill_tokens,num_decode_tokens\r\n5,1\r\n\r\n6,2\r\n7,oops\r\n"
    expect(write(tmp_path, "t.csv", text), "lengths", 5, "num_decode_tokens", "'oops'")


def test_missing_column_lists_the_expected_header(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.6805900,374\n")
    message = expect(path, "azure", 1, "GeneratedTokens")
    assert "TIMESTAMP,ContextTokens,GeneratedTokens" in message


def test_extra_field_is_an_error(tmp_path: Path) -> None:
    text = "arrival_s,prompt_tokens,output_tokens\n0,5,5\n1,5,5,9\n"
    expect(write(tmp_path, "t.csv", text), "csv", 3, "row", "4 fields")
    text = "arrival_s,prompt_tokens,output_tokens\n0,5,5,9\n"  # pandas would make it an index silently
    expect(write(tmp_path, "u.csv", text), "csv", 2, "row", "4 fields")


def test_bad_json_names_line_2(tmp_path: Path) -> None:
    good = '{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]}\n'
    path = write(tmp_path, "t.jsonl", good + '{"timestamp": 0, "input_length": 5 "output_length": 1}\n')
    message = expect(path, "mooncake", 2, "line")
    assert "a JSON object" in message and "column 36" in message


@pytest.mark.parametrize(
    ("second", "field", "found"),
    [
        ('{"timestamp": 0, "output_length": 1, "hash_ids": [0]}', "input_length", "no such key"),
        ('{"timestamp": 0, "input_length": 5, "output_length": -1, "hash_ids": [0]}', "output_length", "-1"),
        ('{"timestamp": "x", "input_length": 5, "output_length": 1, "hash_ids": [0]}', "timestamp", "'x'"),
        ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [0.5]}', "hash_ids", "'[0.5]'"),
        ("[1, 2]", "line", "'[1, 2]'"),
    ],
)
def test_bad_mooncake_values(tmp_path: Path, second: str, field: str, found: str) -> None:
    first = '{"timestamp": 0, "input_length": 600, "output_length": 3, "hash_ids": [0, 1]}\n'
    path = write(tmp_path, "t.jsonl", first + "\n" + second + "\n")
    expect(path, "mooncake", 3, field, found)


def test_decreasing_timestamps(tmp_path: Path) -> None:
    text = AZURE_HEADER + "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:45.0000000,3,9\n"
    message = expect(write(tmp_path, "a.csv", text), "azure", 3, "TIMESTAMP", "'2023-11-16 18:15:45.0000000'")
    assert "on line 2" in message
    text = "arrival_s,prompt_tokens,output_tokens\n1.0,1,1\n2.0,1,1\n1.5,1,1\n"
    expect(write(tmp_path, "c.csv", text), "csv", 4, "arrival_s", "'1.5'")
    rows = [f'{{"timestamp": {ts}, "input_length": 5, "output_length": 1}}\n' for ts in (0, 3000, 2999)]
    expect(write(tmp_path, "m.jsonl", "".join(rows)), "mooncake", 3, "timestamp", "2999")


def test_unparsable_timestamp(tmp_path: Path) -> None:
    text = AZURE_HEADER + "2023-11-16 18:15:46.6805900,374,44\nyesterday,3,9\n"
    expect(write(tmp_path, "a.csv", text), "azure", 3, "TIMESTAMP", "'yesterday'")


@pytest.mark.parametrize("fmt", [*FORMATS, "lengths"])
def test_empty_file(tmp_path: Path, fmt: str) -> None:
    message = expect(write(tmp_path, "empty", ""), fmt, 1, "header" if fmt != "mooncake" else "file")
    assert "empty file" in message


def test_header_without_rows(tmp_path: Path) -> None:
    expect(write(tmp_path, "t.csv", AZURE_HEADER), "azure", 2, "file", "end of file")


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ServesimError, match=r"nope\.csv: file not found$"):
        load_trace(tmp_path / "nope.csv", "csv")
    path = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,output_tokens\n0,1,1\n")
    known = re.escape("expected one of azure, mooncake, vidur, csv, lengths, found 'parquet'")
    with pytest.raises(ServesimError, match=known):
        load_trace(path, "parquet")


def test_mooncake_without_hash_ids(tmp_path: Path) -> None:
    rows = [f'{{"timestamp": {ts}, "input_length": 5, "output_length": 2}}\n' for ts in (500, 500, 3500)]
    t = load_trace(write(tmp_path, "m.jsonl", "".join(rows)), "mooncake")
    assert t.hash_ids is None
    np.testing.assert_array_equal(t.arrival_s, [0.0, 0.0, 3.0])


# --------------------------------------------------------------------------------------- round trip

rows_strategy = st.lists(
    st.tuples(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=2_000_000),
        st.integers(min_value=1, max_value=2_000_000),
    ),
    min_size=1,
    max_size=50,
)


@settings(max_examples=60)
@given(rows=rows_strategy, crlf=st.booleans())
def test_generic_csv_round_trips(tmp_path_factory: pytest.TempPathFactory, rows, crlf: bool) -> None:
    rows = sorted(rows)
    eol = "\r\n" if crlf else "\n"
    text = eol.join(["arrival_s,prompt_tokens,output_tokens", *(f"{a!r},{p},{o}" for a, p, o in rows)])
    path = tmp_path_factory.mktemp("roundtrip") / "t.csv"
    path.write_text(text + eol, newline="")
    t = load_trace(path, "csv")
    arrival = np.array([a for a, _, _ in rows])
    assert t.arrival_s is not None
    np.testing.assert_array_equal(t.arrival_s, arrival - arrival[0])
    np.testing.assert_array_equal(t.prompt_tokens, [p for _, p, _ in rows])
    np.testing.assert_array_equal(t.output_tokens, [o for _, _, o in rows])
    assert t.hash_ids is None and len(t) == len(rows)
