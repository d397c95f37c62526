"""Column mapping: reads inputs whose columns are named differently from the data contract.

A MovieLens ratings file has `userId,movieId,rating,timestamp`; the contract wants `user_id`,
`item_id`, `value`, `timestamp`. A `ColumnMapping` renames the source columns to the contract's
names before validation, so the field rules (`beam_jobs.fields`) and the dead-letter reasons
speak the contract's names. Columns it does not mention keep their names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from recstack import features

#: Every contract name a mapping may target: the raw interaction and catalog columns.
CONTRACT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(f.name for f in (*features.INTERACTION_FEATURES, *features.ITEM_FEATURES))
)


@dataclasses.dataclass(frozen=True)
class ColumnMapping:
    """Maps contract column names to the names the source files use.

    Example: `ColumnMapping.from_dict({"user_id": "userId", "item_id": "movieId"})` reads the
    user id from column `userId` and the item id from `movieId`.

    Attributes:
      columns: `(contract_name, source_name)` pairs, each contract name at most once. Contract
        names must be in `CONTRACT_COLUMNS`.

    Raises:
      ValueError: a contract name is unknown or repeated, or a source name is not a non-empty
        string.
    """

    columns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        contract_names = [contract for contract, _ in self.columns]
        unknown = [name for name in contract_names if name not in CONTRACT_COLUMNS]
        if unknown:
            raise ValueError(
                f"column mapping names unknown contract columns {unknown}; the keys must be "
                f"contract names ({', '.join(CONTRACT_COLUMNS)}) and the values the columns "
                "of your files"
            )
        repeated = sorted({name for name in contract_names if contract_names.count(name) > 1})
        if repeated:
            raise ValueError(f"column mapping maps {repeated} more than once; keep one each")
        for contract, source in self.columns:
            if not isinstance(source, str) or not source:
                raise ValueError(
                    f"column mapping {contract!r} -> {source!r}: the source column must be a "
                    "non-empty string naming a column of your files"
                )

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str] | None) -> ColumnMapping:
        """Builds a mapping from `{contract_name: source_name}` (e.g. a YAML section).

        Args:
          mapping: Contract name -> source column name; None or {} maps nothing.

        Raises:
          ValueError: `mapping` is not a mapping, or see the class docstring.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"column mapping must be a mapping of contract name to source column, got "
                f"{type(mapping).__name__} {mapping!r}; e.g. {{user_id: userId}}"
            )
        return cls(tuple(mapping.items()))

    def as_dict(self) -> dict[str, str]:
        """Returns the mapping as `{contract_name: source_name}`."""
        return dict(self.columns)

    def check_targets(self, allowed: Collection[str], table: str) -> None:
        """Checks that every contract name is a column of `table`.

        Args:
          allowed: The contract names of the table, e.g. the interaction feature names.
          table: The table's name for the message, e.g. "interaction".

        Raises:
          ValueError: the mapping names a contract column outside `allowed`.
        """
        stray = [contract for contract, _ in self.columns if contract not in allowed]
        if stray:
            raise ValueError(
                f"the {table} column mapping names {stray}, which are not {table} columns; "
                f"valid: {', '.join(allowed)}"
            )

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """Returns `record` with each mapped source column copied under its contract name.

        A mapped source column absent from `record` leaves its contract name absent too, so the
        field rules report it missing. Other columns are kept unchanged.
        """
        if not self.columns:
            return record
        renamed = dict(record)
        for contract, source in self.columns:
            renamed.pop(contract, None)
            if source in record:
                renamed[contract] = record[source]
        return renamed
