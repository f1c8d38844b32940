"""Results store: every computed value (proxy score, attack accuracy, search evaluation) in one file.

Runs must survive ``kill -9`` and resume without losing or duplicating rows, and several local
worker processes may write at once, so the store is an SQLite file in WAL mode (the embedded,
append-only store of spec dependencies-survey.md §3 "Recommendation (engines)").

Schema (version 1, in ``meta.schema_version``)::

    meta    (key TEXT PRIMARY KEY, value TEXT)          -- format='robustnas-store', schema_version='1'
    runs    (run TEXT PRIMARY KEY, created_utc TEXT,    -- created_utc: ISO 8601, UTC
             metadata TEXT)                             -- JSON object (command line, config, ...)
    configs (config TEXT PRIMARY KEY, json TEXT)        -- config hash -> canonical JSON of the config
    results (run TEXT, arch TEXT, quantity TEXT, seed INTEGER, config TEXT,
             value REAL, note TEXT, written_utc TEXT,
             PRIMARY KEY (run, arch, quantity, seed, config)) WITHOUT ROWID

* ``arch`` is the caller's canonical architecture string (e.g. ``NB201Arch.to_string()``),
  ``config`` the :func:`config_hash` of the settings that produced the value.
* ``value`` NULL means NaN (a proxy that failed); ``note`` says why. ±inf are stored as REAL.
* Writes are idempotent: **the first write of a key wins**, a later write of the same key is
  ignored, so a resumed deterministic run never duplicates or changes rows. ``overwrite=True``
  replaces instead (recomputing after a bug fix).
* Resume with :meth:`Store.missing` (the keys still to compute); list runs with :meth:`Store.runs`;
  export long or wide (arch x quantity) tables with :meth:`Store.export`.

Durability: WAL with ``synchronous=NORMAL``; a committed transaction survives ``kill -9`` of
the writer (tests/test_store.py kills a writer mid-run); a power loss may drop the last few
commits but never corrupts the file. Concurrency: each write is one ``BEGIN IMMEDIATE``
transaction; a writer that finds the store busy waits up to ``timeout`` seconds, and the whole
transaction is tried up to 3 times. Open one :class:`Store` per process. SQLite locking is unreliable
on network file systems (optuna#815, #6036): on a cluster give each ``--shard i/N`` worker its
own local file and combine them with :meth:`Store.merge`.
"""
from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, TypeVar

import pandas as pd

from robustnas.errors import RobustnasError
from robustnas._files import atomic_write

FORMAT = "robustnas-store"
SCHEMA_VERSION = 1
_ATTEMPTS = 3
_RETRY_DELAY_S = 0.1
_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE runs (run TEXT PRIMARY KEY, created_utc TEXT NOT NULL, metadata TEXT NOT NULL)",
    "CREATE TABLE configs (config TEXT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE results (run TEXT NOT NULL, arch TEXT NOT NULL, quantity TEXT NOT NULL,"
    " seed INTEGER NOT NULL, config TEXT NOT NULL, value REAL, note TEXT, written_utc TEXT NOT NULL,"
    " PRIMARY KEY (run, arch, quantity, seed, config)) WITHOUT ROWID",
)
_COLUMNS = ("run", "arch", "quantity", "seed", "config", "value", "note", "written_utc")
_INSERT = f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
_IGNORE = " ON CONFLICT DO NOTHING"
_REPLACE = (
    " ON CONFLICT DO UPDATE SET value = excluded.value, note = excluded.note,"
    " written_utc = excluded.written_utc"
)

T = TypeVar("T")


class StoreError(RobustnasError):
    """An unusable store file, a bad value to store, or a store locked for too long."""


class Key(NamedTuple):
    """What identifies one stored value within a run."""

    arch: str
    quantity: str
    seed: int
    config: str


class Result(NamedTuple):
    """One value to store; ``value`` may be NaN (stored as NULL), ``note`` says why."""

    arch: str
    quantity: str
    seed: int
    config: str
    value: float
    note: str | None = None


@dataclass(frozen=True)
class RunInfo:
    name: str
    created_utc: datetime
    metadata: dict[str, Any]
    rows: int


@dataclass(frozen=True)
class MergeReport:
    added: int
    skipped: int  # keys already present here (first write wins)


def config_hash(config: dict[str, Any]) -> str:
    """16 hex digits of SHA-256 over the canonical JSON (sorted keys, no spaces) of ``config``.

    Equal dicts hash equally whatever their key order; tuples hash like lists.
    """
    if not isinstance(config, dict):
        raise StoreError(f"config must be a dict, got {type(config).__name__}: pass the settings as a dict")
    return hashlib.sha256(_canonical_json(config, "config").encode()).hexdigest()[:16]


class Store:
    """An SQLite results store; create it by opening a new path. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0, readonly: bool = False) -> None:
        """``readonly`` opens an existing store for reading only, never changing the file (it may lie on
        read-only media); writing through it is an error."""
        self.path = Path(path)
        if self.path.is_dir():
            example = self.path / "results.sqlite"
            raise StoreError(f"{self.path} is a directory: give a store file such as {example}")
        self._timeout = timeout
        if readonly:
            self._conn = self._open_readonly()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open {self.path} ({error}): check the path and its permissions") from None
        try:
            self._retrying(lambda: self._conn.execute("PRAGMA journal_mode=WAL").fetchone())
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._transaction(lambda: _check_schema(self._conn, self.path, create=True))
        except sqlite3.OperationalError as error:
            self._conn.close()
            message = f"cannot open {self.path} ({error}): the file and its folder must be writable, the disk not full"
            raise StoreError(message) from None
        except sqlite3.DatabaseError as error:  # SQLITE_NOTADB and corrupt files
            self._conn.close()
            message = f"{self.path} is not a robustnas store ({error}): pass a new path or a store file"
            raise StoreError(message) from None
        except BaseException:
            self._conn.close()
            raise

    def _open_readonly(self) -> sqlite3.Connection:
        """A read-only connection; on read-only media (no WAL index can be made) the file is read as immutable."""
        if not self.path.is_file():
            raise StoreError(f"{self.path}: no such store file")
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        for flags in ("", "&immutable=1"):
            conn = sqlite3.connect(uri + flags, uri=True, timeout=self._timeout, isolation_level=None)
            try:
                _check_schema(conn, self.path, create=False)
                return conn
            except sqlite3.OperationalError:
                conn.close()
            except sqlite3.DatabaseError as error:
                conn.close()
                raise StoreError(f"{self.path} is not a robustnas store ({error}): pass a store file") from None
            except BaseException:
                conn.close()
                raise
        raise StoreError(f"cannot read {self.path}: check the path and its permissions")

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    # ---- runs and configs ----------------------------------------------------------------------
    def ensure_run(self, run: str, metadata: dict[str, Any] | None = None) -> RunInfo:
        """Create ``run`` with ``metadata`` (JSON) unless it exists; return the stored run.

        A resumed run keeps the metadata of its first start; compare it with yours to detect a
        changed command line.
        """
        _check_text(run, "run name")
        text = _canonical_json(metadata or {}, f"metadata of run {run!r}")
        self._transaction(
            lambda: self._conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (run, _utc_now(), text)
            )
        )
        return next(info for info in self.runs() if info.name == run)

    def runs(self) -> list[RunInfo]:
        """All runs, oldest first, with their row counts."""
        rows = self._conn.execute(
            "SELECT runs.run, created_utc, metadata, count(results.run) FROM runs"
            " LEFT JOIN results ON results.run = runs.run GROUP BY runs.run ORDER BY created_utc, runs.run"
        )
        return [
            RunInfo(name, datetime.fromisoformat(created), json.loads(metadata), count)
            for name, created, metadata, count in rows
        ]

    def add_config(self, config: dict[str, Any]) -> str:
        """Record ``config`` so that its hash can be looked up later; return :func:`config_hash`."""
        digest = config_hash(config)
        text = _canonical_json(config, "config")
        self._transaction(
            lambda: self._conn.execute("INSERT INTO configs VALUES (?, ?) ON CONFLICT DO NOTHING", (digest, text))
        )
        return digest

    def config(self, digest: str) -> dict[str, Any]:
        row = self._conn.execute("SELECT json FROM configs WHERE config = ?", (digest,)).fetchone()
        if row is None:
            raise StoreError(f"config {digest!r} is not recorded in {self.path}: record it with Store.add_config")
        return json.loads(row[0])

    # ---- writing ---------------------------------------------------------------------------------
    def put(self, run: str, result: Result, *, overwrite: bool = False) -> bool:
        """Store one value; True if it was written (False: key already present, first write wins)."""
        return self.put_many(run, [result], overwrite=overwrite) == 1

    def put_many(self, run: str, results: Iterable[Result], *, overwrite: bool = False) -> int:
        """Store all ``results`` in one transaction; return how many rows were written.

        Keys already stored are skipped (also a repeated key within ``results``: its first
        occurrence wins) unless ``overwrite`` is True, which replaces them.
        """
        now = _utc_now()
        rows = [_row(run, result, now) for result in results]
        sql = _INSERT + (_REPLACE if overwrite else _IGNORE)

        def write() -> int:
            self._require_run(run)
            return self._conn.executemany(sql, rows).rowcount

        return self._transaction(write)

    def merge(self, other: str | os.PathLike[str]) -> MergeReport:
        """Copy the runs, configs and results of store file ``other`` (e.g. a shard) into this one.

        Keys already present here are skipped, so merging twice adds nothing.
        """
        other_path = Path(other)
        if not other_path.is_file():
            raise StoreError(f"cannot merge {other_path}: no such store file")
        if self.path.exists() and os.path.samefile(self.path, other_path):
            raise StoreError(f"cannot merge {other_path} into itself: give another store file")
        with closing(sqlite3.connect(other_path, timeout=self._timeout)) as other_conn:
            try:
                _check_schema(other_conn, other_path, create=False)
            except sqlite3.DatabaseError as error:
                raise StoreError(f"cannot merge {other_path}: not a robustnas store ({error})") from None
        self._retrying(lambda: self._conn.execute("ATTACH DATABASE ? AS other", (str(other_path),)))
        try:
            return self._transaction(self._merge_attached)
        finally:
            self._conn.execute("DETACH DATABASE other")

    def _merge_attached(self) -> MergeReport:
        self._conn.execute("INSERT INTO main.runs SELECT * FROM other.runs WHERE true ON CONFLICT DO NOTHING")
        self._conn.execute("INSERT INTO main.configs SELECT * FROM other.configs WHERE true ON CONFLICT DO NOTHING")
        columns = ", ".join(_COLUMNS)
        added = self._conn.execute(
            f"INSERT INTO main.results ({columns}) SELECT {columns} FROM other.results WHERE true"
            " ON CONFLICT DO NOTHING"
        ).rowcount
        total = self._conn.execute("SELECT count(*) FROM other.results").fetchone()[0]
        return MergeReport(added=added, skipped=total - added)

    # ---- reading ---------------------------------------------------------------------------------
    def get(self, run: str, key: Key) -> Result | None:
        row = self._conn.execute(
            "SELECT arch, quantity, seed, config, value, note FROM results"
            " WHERE run = ? AND arch = ? AND quantity = ? AND seed = ? AND config = ?",
            (run, *key),
        ).fetchone()
        if row is None:
            return None
        arch, quantity, seed, config, value, note = row
        return Result(arch, quantity, seed, config, math.nan if value is None else value, note)

    def done(self, run: str, keys: Iterable[Key]) -> set[Key]:
        """The ``keys`` already stored for ``run`` (one scan of the run, then set lookups)."""
        stored = self._stored_keys(run)
        return {key for key in keys if tuple(key) in stored}

    def missing(self, run: str, keys: Iterable[Key]) -> list[Key]:
        """The ``keys`` not yet stored for ``run``, in the given order: the work left on resume."""
        stored = self._stored_keys(run)
        return [key for key in keys if tuple(key) not in stored]

    def frame(self, run: str | None = None, *, seed: int | None = None, config: str | None = None) -> pd.DataFrame:
        """Long format: one row per stored value, columns run, arch, quantity, seed, config,
        value (NaN where NULL), note, written_utc (UTC timestamps); all runs when ``run`` is None."""
        if run is not None:
            self._require_run(run)
        filters = {"run": run, "seed": seed, "config": config}
        used = {name: value for name, value in filters.items() if value is not None}
        where = " AND ".join(f"{name} = :{name}" for name in used) or "true"
        frame = pd.read_sql_query(
            f"SELECT {', '.join(_COLUMNS)} FROM results WHERE {where} ORDER BY run, arch, quantity, seed, config",
            self._conn,
            params=used,
            dtype={"seed": "int64", "value": "float64"},
        )
        frame["written_utc"] = pd.to_datetime(frame["written_utc"], utc=True, format="ISO8601")
        return frame

    def wide_frame(self, run: str, *, seed: int | None = None, config: str | None = None) -> pd.DataFrame:
        """Wide format: one row per architecture (index ``arch``), one column per quantity.

        Every (arch, quantity) must have one value after filtering by ``seed``/``config``.
        """
        long = self.frame(run, seed=seed, config=config)
        variants = long.groupby("quantity")[["seed", "config"]].nunique().max(axis=1)
        ambiguous = variants[variants > 1]
        if len(ambiguous):
            quantity = ambiguous.index[0]
            pairs = long.loc[long["quantity"] == quantity, ["seed", "config"]].drop_duplicates()
            raise StoreError(
                f"run {run!r} has {quantity!r} for several (seed, config) pairs "
                f"{sorted(map(tuple, pairs.to_numpy().tolist()))}: pick one with seed= and config="
            )
        wide = long.pivot(index="arch", columns="quantity", values="value")
        wide.columns.name = None
        return wide

    def export(
        self,
        path: str | os.PathLike[str],
        run: str | None = None,
        *,
        wide: bool = False,
        seed: int | None = None,
        config: str | None = None,
    ) -> Path:
        """Write :meth:`frame` (or :meth:`wide_frame`, which needs ``run``) to a .parquet or .csv file."""
        target = Path(path)
        if target.suffix not in (".parquet", ".csv"):
            raise StoreError(f"cannot export to {target}: the file name must end in .parquet or .csv")
        if wide and run is None:
            raise StoreError("a wide export needs one run: pass run=<name> (see Store.runs())")
        select = self.wide_frame if wide else self.frame
        table = select(run, seed=seed, config=config)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as handle:
            if target.suffix == ".parquet":
                table.to_parquet(handle, index=wide)
            else:
                table.to_csv(handle, index=wide)
        return target

    # ---- internals -------------------------------------------------------------------------------
    def _stored_keys(self, run: str) -> set[tuple[str, str, int, str]]:
        self._require_run(run)
        return set(self._conn.execute("SELECT arch, quantity, seed, config FROM results WHERE run = ?", (run,)))

    def _require_run(self, run: str) -> None:
        if self._conn.execute("SELECT 1 FROM runs WHERE run = ?", (run,)).fetchone() is None:
            known = ", ".join(info.name for info in self.runs()) or "none"
            raise StoreError(f"run {run!r} is not in {self.path} (runs: {known}): start it with Store.ensure_run")

    def _transaction(self, body: Callable[[], T]) -> T:
        """Run ``body`` in one write transaction (retried as a whole if the store stays busy)."""

        def attempt() -> T:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = body()
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            return result

        return self._retrying(attempt)

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action``; when the store stays locked past the busy timeout, wait and try again."""
        attempt = 1
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if "locked" not in str(error):
                    raise StoreError(
                        f"cannot write {self.path} ({error}): free disk space or make its folder writable; "
                        "what is stored is kept and the same command resumes"
                    ) from None
                if attempt == _ATTEMPTS:
                    raise StoreError(
                        f"{self.path} stayed locked by another process ({error}, {_ATTEMPTS} attempts): "
                        "retry later or raise Store(timeout=...)"
                    ) from None
            time.sleep(_RETRY_DELAY_S * 2 ** (attempt - 1))
            attempt += 1


def _check_schema(conn: sqlite3.Connection, path: Path, *, create: bool) -> None:
    """Create the tables in an empty database (if ``create``), else insist on a store of our version."""
    tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables and create:
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = [("format", FORMAT), ("schema_version", str(SCHEMA_VERSION))]
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
        return
    meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    if meta.get("format") != FORMAT:
        raise StoreError(f"{path} is not a robustnas store (no robustnas meta table): pass a store file")
    version = int(meta["schema_version"])
    if version != SCHEMA_VERSION:
        advice = "upgrade robustnas to read it" if version > SCHEMA_VERSION else "it cannot be read"
        raise StoreError(
            f"{path} has store schema version {version}, this robustnas reads version {SCHEMA_VERSION}: {advice}"
        )


def _row(run: str, result: Result, now: str) -> tuple[Any, ...]:
    """Validate one result and turn it into a results-table row (NaN becomes NULL)."""
    try:
        arch, quantity, seed, config, value, note = result
    except (TypeError, ValueError):
        message = f"cannot store {result!r}: give Result(arch, quantity, seed, config, value, note)"
        raise StoreError(message) from None
    for text, what in ((run, "run name"), (arch, "arch"), (quantity, "quantity"), (config, "config hash")):
        _check_text(text, what)
    try:
        seed = operator.index(seed)
        number = float(value)
    except (TypeError, ValueError):
        raise StoreError(
            f"result {tuple(result)!r}: seed must be an integer and value a number "
            "(store a failed value as float('nan') with a note)"
        ) from None
    if note is not None and not isinstance(note, str):
        raise StoreError(f"result {tuple(result)!r}: note must be text or None, got {type(note).__name__}")
    return (run, arch, quantity, seed, config, None if math.isnan(number) else number, note, now)


def _check_text(text: object, what: str) -> None:
    if not isinstance(text, str) or not text:
        raise StoreError(f"{what} must be a non-empty string, got {text!r}")


def _canonical_json(data: dict[str, Any], what: str) -> str:
    try:
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise StoreError(
            f"{what} is not plain JSON ({error}): "
            "use str/int/float/bool/list/dict values, e.g. x.item() for numpy"
        ) from None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")
