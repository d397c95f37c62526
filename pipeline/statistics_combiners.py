"""StatisticsGen's combiners: mergeable per-feature statistics of parsed Examples.

`FeatureStatsFn` folds examples into small per-feature accumulators (presence and value counts,
numeric min/max/mean/std by Chan's parallel moments); `CountStringsInBundle` and `TopValuesFn`
count distinct string values and keep the `top_k` most frequent. Each accumulator merges exactly,
so no worker holds a whole split. `pipeline.statistics` composes them into the Beam job. Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import math
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindows

#: Kinds of a parsed feature's values (`pipeline.statistics.parse_example`).
KIND_BYTES, KIND_INT, KIND_FLOAT = "bytes", "int", "float"


@dataclasses.dataclass
class _FeatureAccumulator:
    """Mergeable statistics of one feature: kinds, value counts and numeric moments."""

    kinds: dict[str, int] = dataclasses.field(default_factory=dict)
    num_present: int = 0
    min_num_values: int | None = None
    max_num_values: int | None = None
    total_num_values: int = 0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float | None = None
    max: float | None = None

    def add(self, kind: str, values: list[Any]) -> None:
        n = len(values)
        numeric = _FeatureAccumulator(kinds={kind: 1}, num_present=1, min_num_values=n,
                                      max_num_values=n, total_num_values=n)  # fmt: skip
        if kind != KIND_BYTES and n:
            mean = sum(values) / n
            numeric.count, numeric.mean = n, mean
            numeric.m2 = sum((v - mean) ** 2 for v in values)
            numeric.min, numeric.max = min(values), max(values)
        self.merge(numeric)

    def merge(self, other: _FeatureAccumulator) -> None:
        for kind, count in other.kinds.items():
            self.kinds[kind] = self.kinds.get(kind, 0) + count
        self.num_present += other.num_present
        self.total_num_values += other.total_num_values
        self.min_num_values = _extreme(min, self.min_num_values, other.min_num_values)
        self.max_num_values = _extreme(max, self.max_num_values, other.max_num_values)
        self.min = _extreme(min, self.min, other.min)
        self.max = _extreme(max, self.max, other.max)
        total = self.count + other.count
        if other.count:  # Chan et al.'s pairwise update of mean and sum of squared deviations.
            delta = other.mean - self.mean
            self.m2 += other.m2 + delta * delta * self.count * other.count / total
            self.mean += delta * other.count / total
            self.count = total

    def to_dict(self, num_examples: int) -> dict[str, Any]:
        # The majority kind names the feature; ties go to the alphabetically first kind.
        kind = min(self.kinds, key=lambda k: (-self.kinds[k], k))
        result = {"kind": kind, "kinds": dict(sorted(self.kinds.items())),
                  "num_present": self.num_present,
                  "num_missing": num_examples - self.num_present,
                  "min_num_values": self.min_num_values, "max_num_values": self.max_num_values,
                  "avg_num_values": self.total_num_values / self.num_present}  # fmt: skip
        if self.count:
            std = math.sqrt(max(self.m2, 0.0) / self.count)
            result["numeric"] = {"count": self.count, "min": self.min, "max": self.max,
                                 "mean": self.mean, "std": std}  # fmt: skip
        return result


def _extreme(pick: Any, a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else pick(a, b)


class FeatureStatsFn(beam.CombineFn):
    """Parsed examples -> `(num_examples, {feature: feature stats dict})`."""

    def create_accumulator(self) -> tuple[int, dict[str, _FeatureAccumulator]]:
        return 0, {}

    def add_input(self, acc: tuple, example: dict[str, tuple[str, list[Any]]]) -> tuple:
        num_examples, per_feature = acc
        for name, (kind, values) in example.items():
            per_feature.setdefault(name, _FeatureAccumulator()).add(kind, values)
        return num_examples + 1, per_feature

    def merge_accumulators(self, accumulators: Iterable[tuple]) -> tuple:
        num_examples, merged = 0, {}
        for count, per_feature in accumulators:
            num_examples += count
            for name, acc in per_feature.items():
                merged.setdefault(name, _FeatureAccumulator()).merge(acc)
        return num_examples, merged

    def extract_output(self, acc: tuple) -> tuple[int, dict[str, dict[str, Any]]]:
        num_examples, per_feature = acc
        return num_examples, {k: v.to_dict(num_examples) for k, v in sorted(per_feature.items())}


def _top_key(pair: tuple[str, int]) -> tuple[int, str]:
    return -pair[1], pair[0]


class TopValuesFn(beam.CombineFn):
    """`(value, count)` pairs of distinct values -> num_unique, total_count and the `top_k`
    most frequent values (ties by value, ascending). Each value must arrive once, already
    counted, so trimming to `top_k` while merging is exact."""

    def __init__(self, top_k: int) -> None:
        super().__init__()
        self._top_k = top_k

    def create_accumulator(self) -> list:
        return [0, 0, []]

    def add_input(self, acc: list, pair: tuple[str, int]) -> list:
        acc[0], acc[1] = acc[0] + 1, acc[1] + pair[1]
        acc[2].append(pair)
        if len(acc[2]) > 2 * self._top_k:
            acc[2] = heapq.nsmallest(self._top_k, acc[2], key=_top_key)
        return acc

    def merge_accumulators(self, accumulators: Iterable[list]) -> list:
        merged = self.create_accumulator()
        for num_unique, total, top in accumulators:
            merged[0], merged[1] = merged[0] + num_unique, merged[1] + total
            merged[2] = heapq.nsmallest(self._top_k, merged[2] + top, key=_top_key)
        return merged

    def extract_output(self, acc: list) -> dict[str, Any]:
        top = heapq.nsmallest(self._top_k, acc[2], key=_top_key)
        return {"num_unique": acc[0], "total_count": acc[1],
                "top_values": [{"value": v, "count": c} for v, c in top]}  # fmt: skip


class CountStringsInBundle(beam.DoFn):
    """Parsed examples -> `((feature, value), count)` per distinct string value of each bundle.

    Counting inside the bundle first (a list feature such as the history holds ~20 values per
    example) sends one element per distinct value instead of one per value through the
    shuffle; `CombinePerKey(sum)` then adds the bundles' counts, so the totals stay exact.
    """

    def start_bundle(self) -> None:
        self._counts: collections.Counter = collections.Counter()

    def process(self, example: dict[str, tuple[str, list[Any]]]) -> Iterable:
        for name, (kind, values) in example.items():
            if kind == KIND_BYTES:
                self._counts.update(zip(itertools.repeat(name), values))
        return ()

    def finish_bundle(self) -> Iterable:
        for pair in self._counts.items():
            yield GlobalWindows.windowed_value(pair)
        self._counts = collections.Counter()
