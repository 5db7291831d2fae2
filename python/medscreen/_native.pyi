"""The native module: the engine compiled from Rust (see ``medscreen`` for the documented API)."""

from typing import Any, Iterable, Optional

__version__: str

class LoadError(ValueError):
    """The rule packs could not be loaded: each problem is named, with its file and place."""

class Stream:
    """Results as an Arrow stream."""

    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object: ...
    def __len__(self) -> int: ...

class Schema:
    """The results' Arrow schema."""

    def __arrow_c_schema__(self) -> object: ...

class Engine:
    """Rule packs compiled once, with a pool of worker threads."""

    def __init__(
        self,
        packs: Optional[list[str]] = None,
        rules_dir: Optional[str] = None,
        threads: Optional[int] = None,
    ) -> None: ...
    @property
    def packs(self) -> list[str]: ...
    @property
    def rulesets(self) -> list[str]: ...
    @property
    def facts(self) -> list[str]: ...
    @property
    def threads(self) -> int: ...
    def screen_json(self, docs: Iterable[Any], start: int = 0) -> list[bytes]:
        """One command-line result (NDJSON text, with ``index``) per document: str, bytes, None, or a
        dict and the lists and scalars in it."""
    def screen_arrow(
        self, data: Any, profile_col: Optional[str] = None, start: int = 0
    ) -> Stream:
        """Screen an Arrow stream; the results as an Arrow stream of ``output_schema()``."""

def output_schema() -> Schema:
    """The schema of every result table."""

def embedded_packs() -> list[str]:
    """The packs built into the module, in name order."""
