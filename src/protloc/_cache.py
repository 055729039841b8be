"""Content-hashed, atomic on-disk cache shared by segmentation and feature extraction.

An entry is a dict of numpy arrays stored as one ``.npz`` file whose name is a hash
of everything that determines it (pixels or file bytes, model, weights, parameters).
Entries are written to a temporary file in the same folder and renamed into place,
so a run killed mid-way leaves either a whole entry or none, and a re-run resumes
from what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["DiskCache", "cache_key", "hash_array", "hash_file", "hash_params"]

_DIGEST_SIZE = 20


def hash_array(array):
    """Hash an array's dtype, shape and bytes.

    Examples
    --------
    >>> import numpy as np
    >>> hash_array(np.zeros(3)) == hash_array(np.zeros(3))
    True
    >>> hash_array(np.zeros(3)) == hash_array(np.zeros(3, np.float32))
    False
    >>> hash_array(np.zeros((0, 4))) == hash_array(np.zeros((0, 5)))
    False
    """
    array = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    h.update(f"{array.dtype.str}|{array.shape}|".encode())
    if array.size:  # memoryview refuses to cast an empty array (an image without cells)
        h.update(memoryview(array).cast("B"))
    return h.hexdigest()


def hash_file(path, *, chunk_size=1 << 20):
    """Hash a file's bytes (not its name or time stamps).

    A folder (an OME-Zarr image) hashes the relative names and bytes of all its files.
    """
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file != path:
            h.update(f"{file.relative_to(path).as_posix()}|".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(chunk_size):
                h.update(chunk)
    return h.hexdigest()


def hash_params(params):
    """Hash a JSON-serialisable description (dict keys are sorted).

    Examples
    --------
    >>> hash_params({"a": 1, "b": [2, 3]}) == hash_params({"b": [2, 3], "a": 1})
    True
    """
    text = json.dumps(params, sort_keys=True, default=repr)
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_SIZE).hexdigest()


def cache_key(*parts):
    """The one cache-key builder: content hashes (str) and JSON-able descriptions.

    Every cache entry, checkpoint file name and fit fingerprint is built here; dict
    keys are sorted, so the order in which a description is written does not matter.

    Examples
    --------
    >>> cache_key("abc", {"a": 1, "b": 2}) == cache_key("abc", {"b": 2, "a": 1})
    True
    >>> cache_key("abc", {"a": 1}) == cache_key("abc", {"a": 2})
    False
    """
    return hash_params([p if isinstance(p, str) else hash_params(p) for p in parts])


class DiskCache:
    """A folder of ``.npz`` entries keyed by content hashes.

    Parameters
    ----------
    directory : path-like
        Created when missing. Several estimators may share one folder: each uses
        its own ``namespace`` sub-folder.
    namespace : str
        Sub-folder name, for instance ``"features"`` or ``"segmentation"``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> cache = DiskCache(tempfile.mkdtemp(), "demo")
    >>> key = cache.key(hash_array(np.arange(3)), {"model": "x"})
    >>> cache.get(key) is None
    True
    >>> cache.set(key, {"features": np.ones(2)})
    >>> cache.get(key)["features"].tolist()
    [1.0, 1.0]
    """

    def __init__(self, directory, namespace):
        self.directory = Path(directory) / namespace
        self.directory.mkdir(parents=True, exist_ok=True)

    def __repr__(self):
        return f"DiskCache({str(self.directory)!r})"

    #: Combine hashes and JSON-able descriptions into one entry key (:func:`cache_key`).
    key = staticmethod(cache_key)

    def _path(self, key):
        # Two-level fan-out keeps folders small for hundreds of thousands of entries.
        return self.directory / key[:2] / f"{key}.npz"

    def __contains__(self, key):
        return self._path(key).is_file()

    def get(self, key):
        """Return the stored dict of arrays, or None when absent or unreadable."""
        path = self._path(key)
        try:
            # Open the file ourselves: np.load leaks its handle when the zip is damaged.
            with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            # A damaged entry (disk full, foreign file) is recomputed, never trusted.
            return None

    def set(self, key, arrays):
        """Store a dict of arrays atomically (write to a temp file, then rename)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **{name: np.asarray(a) for name, a in arrays.items()})
            os.replace(tmp, path)
        except BaseException:
            # Leave no half-written temp files behind, then re-raise.
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def _entries(self):
        # pathlib's glob also matches the hidden temp files of writes in progress (or
        # of a process killed mid-write); those are not entries.
        return (p for p in self.directory.glob("*/*.npz") if not p.name.startswith(".tmp-"))

    def __len__(self):
        return sum(1 for _ in self._entries())

    def clear(self):
        """Remove every entry of this namespace, and any leftover temp file."""
        for path in self.directory.glob("*/*.npz"):
            path.unlink(missing_ok=True)
