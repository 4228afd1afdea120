"""Limit: the one size check every reader and the archive extraction make before they allocate or write."""
from typing import NamedTuple, Optional

from dnn_train.errors import DataError


class Limit(NamedTuple):
    """The most bytes one file of `dataset` may hold or claim (catalog.Dataset.max_bytes)."""

    nbytes: int
    dataset: str

    @classmethod
    def of(cls, entry, data_cfg) -> Optional["Limit"]:
        """The limit of a catalog entry (None for a folder of images)."""
        nbytes = entry.max_bytes(data_cfg)
        return None if nbytes is None else cls(nbytes, entry.name)

    def check(self, path, claimed: int, claims: str = "claims") -> None:
        """Refuse `path`, which `claims` `claimed` bytes, if that is more than the limit."""
        if claimed > self.nbytes:
            raise DataError(f"{path}: {claims} {claimed:,} bytes, more than the {self.nbytes:,} bytes a file of "
                            f"{self.dataset} may hold (docs/guides/data.md, \"Size limits\")")
