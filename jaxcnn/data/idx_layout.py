"""The ``idx:PATH`` source: find the four IDX files however they were downloaded.

``PATH`` is a folder, an archive (zip or tar, optionally compressed: read in place), or
either followed by a path prefix that picks one data set among several::

    idx:~/data/fashion-mnist            train-images-idx3-ubyte.gz, ... (MNIST's names)
    idx:~/torch-root                     MNIST/raw/ (torchvision), archive/ (Kaggle), ...
    idx:~/Downloads/gzip.zip/gzip/emnist-letters    EMNIST's prefixed files, in the zip

**Roles.** A file is a candidate when its name, lower-cased, without compression
suffixes and split at ``-``, ``_``, ``.`` and spaces, holds a split word (``train``,
``training``; ``t10k``, ``test``, ``testing``), after it a kind word (``images``,
``image``, ``imgs``; ``labels``, ``label``) and an ``idxN`` word: MNIST's
``train-images-idx3-ubyte``, Kaggle's ``train-images.idx3-ubyte``, EMNIST's
``emnist-letters-train-images-idx3-ubyte``, QMNIST's ``qmnist-test-labels-idx2-int``.
What precedes the split word is the set's *prefix*. Candidates are grouped into sets by
(folder, prefix); a folder named like the file it holds (Kaggle's
``train-images-idx3-ubyte/train-images-idx3-ubyte``) counts as its parent. Folders are
searched ``MAX_DEPTH`` levels deep; hidden folders and macOS ``__MACOSX``/``._*``
files are skipped.

**Choice.** Exactly one complete set (four roles) is used, and ``jaxcnn data`` names its
files. Several complete sets (torchvision's ``MNIST/raw`` next to ``FashionMNIST/raw``,
EMNIST's six splits) are listed with the ``idx:`` spelling that picks each one. Several
files for one role in the chosen set are fine when their contents are identical (a file
next to its ``.gz``, Kaggle's two copies); otherwise they are listed.

**Classes** (``class_names``): from a mapping file in the set's folder when there is one
(EMNIST's ``<prefix>-mapping.txt``: ``label code [code ...]`` per line, names are the
characters; KMNIST's ``*classmap*.csv``: ``index,codepoint,char``); else Fashion-MNIST's
names when a path component contains "fashion" and the labels are 0-9; else ``max label
+ 1`` classes named by their numbers. A label the mapping does not declare is an error;
numbers the mapping skips (EMNIST letters has 1-26, no 0) get the name ``"(unused)"``.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from jaxcnn.data import filetype, idx
from jaxcnn.data.common import FASHION_NAMES, NotRegularFile, open_regular
from jaxcnn.errors import DataError

MAX_DEPTH = 4
MAX_FILES = 20_000
MAX_CLASSES = 10_000
UNUSED = "(unused)"
COMPRESSION_SUFFIXES = (".gz", ".gzip", ".bz2", ".xz", ".lzma", ".z", ".zip", ".tar", ".tgz")
SPLIT_WORDS = {"train": "train", "training": "train", "t10k": "test", "test": "test",
               "testing": "test"}
KIND_WORDS = {"images": "images", "image": "images", "imgs": "images", "labels": "labels",
              "label": "labels"}
ROLES = (("train", "images"), ("train", "labels"), ("test", "images"), ("test", "labels"))
HINT = ("give the folder or archive holding the four IDX files (e.g. `apt-get install "
        "dataset-fashion-mnist`, then --data idx:/usr/share/datasets/fashion-mnist), or use "
        "--data mnist-embedded")


@dataclass(frozen=True)
class Entry:
    """One file of a folder tree or archive: ``rel`` its POSIX path under the root,
    ``shown`` how messages name it, ``read`` its bytes."""

    rel: str
    shown: str
    read: Callable[[], bytes] = field(repr=False, compare=False)


@dataclass
class IdxData:
    """What ``load`` found: the four arrays, class names and notes for ``jaxcnn data``."""

    arrays: dict[str, np.ndarray]
    class_names: tuple[str, ...]
    notes: tuple[str, ...]


def _words(name: str) -> list[str]:
    stem = name.lower()
    while True:
        for suffix in COMPRESSION_SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        else:
            break
    return [w for w in re.split(r"[-_.\s]+", stem) if w]


def role_of(name: str) -> tuple[str, str, str] | None:
    """``(prefix, split, kind)`` of a file name, or None when it names no IDX role."""
    words = _words(name)
    if not any(re.fullmatch(r"idx\d", w) for w in words):
        return None
    for i, word in enumerate(words):
        if word in SPLIT_WORDS:
            kinds = [KIND_WORDS[w] for w in words[i + 1:] if w in KIND_WORDS]
            if kinds:
                return "-".join(words[:i]), SPLIT_WORDS[word], kinds[0]
            return None
    return None


# ---------------------------------------------------------------- trees: folders, archives


def _folder_entries(root: Path, start: str = "") -> list[Entry]:
    """The files under ``root``, ``MAX_DEPTH`` levels deep; at the top level only those
    (files and folders) whose name starts with ``start`` (case-insensitively)."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX"
                             and depth < MAX_DEPTH
                             and (depth or d.lower().startswith(start.lower())))
        if not depth:
            filenames = [f for f in filenames if f.lower().startswith(start.lower())]
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if filetype.is_junk(rel) or name.startswith("."):
                continue
            entries.append(Entry(rel, str(path), lambda path=path: idx.read_path(path)))
            if len(entries) > MAX_FILES:
                raise DataError(f"idx:{root}: more than {MAX_FILES:,} files within "
                                f"{MAX_DEPTH} folder levels; point idx: at the folder that "
                                "holds the IDX files")
    return entries


def _archive_entries(path: Path) -> list[Entry]:
    """Members of the archive file ``path``: a zip, or a tar (plain, gzip, bzip2 or xz),
    opened in place so that a large archive (EMNIST's gzip.zip: 536 MB) is not read
    whole; anything else is read, unwrapped and described."""
    try:
        f, _ = open_regular(path)
        with f:
            head = f.read(512)
        if filetype.is_zip(head):
            archive = zipfile.ZipFile(path)
            members = [i for i in archive.infolist()
                       if not i.is_dir() and not filetype.is_junk(i.filename)]
            return [Entry(i.filename, f"{path}!{i.filename}",
                          lambda i=i: _bounded(path, i.filename, i.file_size, archive.read))
                    for i in members]
        if tarfile.is_tarfile(path):
            archive = tarfile.open(path, "r:*")
            members = [m for m in archive.getmembers()
                       if m.isfile() and not filetype.is_junk(m.name)]
            return [Entry(m.name, f"{path}!{m.name}",
                          lambda m=m: _bounded(path, m.name, m.size,
                                               lambda name: archive.extractfile(name).read()))
                    for m in members]
    except NotRegularFile as exc:
        raise DataError(f"idx:{path}: is {exc.what}, not a regular file nor a folder; "
                        "jaxcnn reads data only from regular files, whose reading ends: "
                        "save the data into a file and point idx: at it") from None
    except OSError as exc:
        raise DataError(f"idx:{path}: cannot read it ({exc}); check the path and its "
                        "permissions, or re-download it") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, ValueError) as exc:
        raise DataError(f"idx:{path}: a damaged archive ({exc}); {idx.FIX_CORRUPT}") from exc
    data, _ = idx.load_bytes(idx.read_path(path), path)
    raise DataError(f"idx:{path}: is not a directory nor an archive, it is "
                    f"{_what(data)}; {HINT}")


def _bounded(path: Path, member: str, size: int, read: Callable[[str], bytes]) -> bytes:
    """``read(member)``, unless the archive declares it larger than ``filetype.MAX_BYTES``
    (zip and tar read a member up to its declared size, never further)."""
    if size > filetype.MAX_BYTES:
        raise DataError(f"idx:{path}!{member}: the archive declares {size:,} bytes, more than "
                        f"the {filetype.MAX_BYTES >> 30} GiB jaxcnn reads; {idx.FIX_CORRUPT}")
    return read(member)


def _what(data: bytes) -> str:
    found = idx.header(data)
    if found is not None:
        return f"one IDX file ({filetype.IDX_TYPES[found[0]]} values of shape {found[1]})"
    return filetype.describe(data)


def open_tree(spec: str) -> tuple[str, list[Entry], str]:
    """``(root shown, entries, prefix)`` for ``idx:`` path ``spec``.

    The longest existing part of ``spec`` is the root (a folder or an archive file);
    the rest is a path prefix within it that selects a data set.
    """
    path = Path(spec).expanduser()
    root, rest = path, []
    while not root.exists():
        if root.parent == root:
            break
        rest.insert(0, root.name)
        root = root.parent
    if not root.exists() or (rest and root == Path(root.anchor)):
        raise DataError(f"idx:{spec}: does not exist; {HINT}")
    prefix = "/".join(rest)
    if root.is_dir():
        entries = _folder_entries(root, rest[0] if rest else "")
    else:
        entries = _archive_entries(root)
    if prefix and not any(_under(e.rel, prefix) for e in entries):
        raise DataError(f"idx:{spec}: does not exist, and nothing in {root} starts with "
                        f"{prefix!r}; {HINT}")
    return str(root), entries, prefix


def _under(rel: str, prefix: str) -> bool:
    """``rel`` lies under folder ``prefix``, or in prefix's folder with a name that
    starts with prefix's last part (case-insensitively)."""
    if not prefix:
        return True
    if rel == prefix or rel.startswith(prefix.rstrip("/") + "/"):
        return True
    folder, _, start = prefix.rpartition("/")
    rel_folder, _, name = rel.rpartition("/")
    return rel_folder == folder and name.lower().startswith(start.lower())


def _listing(entries: list[Entry], limit: int = 8) -> str:
    names = [e.rel for e in entries[:limit]]
    more = f", ... ({len(entries)} files)" if len(entries) > limit else ""
    return f"it holds: {', '.join(names) + more}" if names else "it is empty"


# ---------------------------------------------------------------- sets of four files


def _group(rel: str) -> str:
    """The folder a file's set lives in (a folder named like its file counts as its parent)."""
    parts = PurePosixPath(rel).parts
    folder = list(parts[:-1])
    if folder and _words(folder[-1]) == _words(parts[-1]):
        folder.pop()
    return "/".join(folder)


def find_sets(entries: list[Entry], prefix: str = "") -> dict[tuple[str, str], dict]:
    """{(folder, prefix): {(split, kind): [entries]}} of the candidates under ``prefix``."""
    sets: dict[tuple[str, str], dict] = {}
    for entry in entries:
        if not _under(entry.rel, prefix):
            continue
        role = role_of(PurePosixPath(entry.rel).name)
        if role is None:
            continue
        set_prefix, split, kind = role
        sets.setdefault((_group(entry.rel), set_prefix), {}).setdefault(
            (split, kind), []).append(entry)
    return sets


def _spelling(root: str, folder: str, prefix: str) -> str:
    tail = "/".join(p for p in (folder, prefix) if p)
    return f"idx:{root}/{tail}" if tail else f"idx:{root}"


def _set_name(folder: str, prefix: str) -> str:
    return "/".join(p for p in (folder, prefix + "-*" if prefix else "") if p) or "(top level)"


def choose_set(root: str, entries: list[Entry], prefix: str) -> tuple[tuple[str, str], dict]:
    """The one complete set under ``prefix``, or ``DataError`` saying what is missing or
    listing the choices."""
    sets = find_sets(entries, prefix)
    complete = {key: roles for key, roles in sets.items() if len(roles) == 4}
    where = f"idx:{root}" + (f"/{prefix}" if prefix else "")
    if len(complete) == 1:
        return next(iter(complete.items()))
    if len(complete) > 1:
        choices = "; ".join(f"{_set_name(*key)} -> --data {_spelling(root, *key)}"
                            for key in sorted(complete))
        raise DataError(f"{where}: {len(complete)} MNIST-format data sets found, choose one: "
                        f"{choices}")
    if sets:  # candidates, but no complete set: say what is missing from the fullest
        key, roles = max(sets.items(), key=lambda kv: (len(kv[1]), kv[0]))
        missing = [f"{s} {k}" for s, k in ROLES if (s, k) not in roles]
        found = ", ".join(e.rel for r in ROLES for e in roles.get(r, []))
        raise DataError(
            f"{where}: no {' and no '.join(missing)} file next to {found}; it needs four IDX "
            "files (train images, train labels, test images, test labels), named like "
            "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte (any prefix, plain or compressed)")
    described = []
    for entry in [e for e in entries if _under(e.rel, prefix)][:3]:
        try:
            inner = idx.load_bytes(entry.read(), entry.shown)[0]
            described.append(f"{entry.rel} is {_what(inner)}")
        except DataError as exc:
            described.append(str(exc))
    detail = ("; ".join(described) if described else _listing(entries))
    raise DataError(f"{where}: no MNIST-format IDX files (names like "
                    f"train-images-idx3-ubyte.gz) found: {detail}")


def _pick(candidates: list[Entry], role: tuple[str, str]) -> tuple[Entry, bytes, list[str]]:
    """The entry for ``role`` and its unwrapped bytes; several candidates must be equal."""
    ordered = sorted(candidates, key=lambda e: (e.rel.count("/"), len(e.rel), e.rel))
    first = ordered[0]
    data, layers = idx.load_bytes(first.read(), first.shown)
    notes = [f"{' '.join(role)}: {first.shown}" + (f" ({' > '.join(map(str, layers))})"
                                                    if layers else "")]
    for other in ordered[1:]:
        other_data, _ = idx.load_bytes(other.read(), other.shown)
        if other_data != data:
            names = ", ".join(e.shown for e in ordered)
            raise DataError(f"{len(ordered)} different files for the {' '.join(role)}: "
                            f"{names}; remove or move all but one")
        notes.append(f"  (identical copy ignored: {other.shown})")
    return first, data, notes


# ---------------------------------------------------------------- class names


def _parse_emnist_mapping(text: str, shown: str) -> dict[int, str]:
    names = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            label, codes = int(fields[0]), [int(f) for f in fields[1:]]
            names[label] = "/".join(chr(c) for c in codes) if codes else str(label)
        except (ValueError, OverflowError) as exc:
            raise DataError(f"{shown}, line {number}: expected 'label code [code ...]' "
                            f"(integers), found {line.strip()!r}") from exc
    return names


def _parse_classmap_csv(text: str, shown: str) -> dict[int, str]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [c.strip().lower() for c in rows[0]][:1] != ["index"]:
        raise DataError(f"{shown}: expected a CSV header 'index,codepoint,char' (KMNIST "
                        "class map)")
    names = {}
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            names[int(row[0])] = row[-1].strip()
        except (ValueError, IndexError) as exc:
            raise DataError(f"{shown}, line {number}: expected 'index,codepoint,char', found "
                            f"{','.join(row)!r}") from exc
    return names


def mapping_file(entries: list[Entry], folder: str, prefix: str) -> Entry | None:
    """The class-name file of the set (``folder``, ``prefix``), if exactly one fits:
    ``<prefix>-mapping.txt`` (EMNIST) or ``*classmap*.csv`` (KMNIST) in ``folder``."""
    found = []
    for entry in entries:
        rel = PurePosixPath(entry.rel)
        if "/".join(rel.parts[:-1]) != folder:
            continue
        words, suffix = _words(rel.name), rel.suffix.lower()
        if suffix == ".txt" and words[-2:] == ["mapping", "txt"] and \
                "-".join(words[:-2]) == prefix:
            found.append(entry)
        elif suffix == ".csv" and any("classmap" in w for w in words):
            found.append(entry)
    return found[0] if len(found) == 1 else None


def class_names(labels: list[np.ndarray], label_paths: list[str], root: str,
                entries: list[Entry], folder: str, prefix: str) -> tuple[tuple[str, ...], str]:
    """Names for the labels of both splits, and a note saying where they came from."""
    mapping = mapping_file(entries, folder, prefix)
    top = max(int(lab.max()) for lab in labels)
    if top >= MAX_CLASSES:
        at = next(i for i, lab in enumerate(labels) if int(lab.max()) == top)
        raise DataError(f"{label_paths[at]}: labels go up to {top:,}; more than "
                        f"{MAX_CLASSES:,} classes is not a class set: is this a labels "
                        f"file? {idx.FIX_CORRUPT}")
    if mapping is not None:
        text = mapping.read().decode("utf-8-sig", errors="replace")
        parse = _parse_classmap_csv if mapping.rel.lower().endswith(".csv") else \
            _parse_emnist_mapping
        declared = parse(text, mapping.shown)
        if not declared:
            raise DataError(f"{mapping.shown}: the class mapping is empty")
        keys = np.array(sorted(declared))
        for lab, shown in zip(labels, label_paths, strict=True):
            idx.check_labels_in(lab, lambda x, keys=keys: np.isin(x, keys),
                                f"the {len(keys)} classes of {mapping.shown}", shown)
        names = tuple(declared.get(i, UNUSED) for i in range(int(keys.max()) + 1))
        span = f"labels {keys.min()}-{keys.max()}"
        return names, f"class names: {mapping.shown} ({len(keys)} classes, {span})"
    train_top = int(labels[0].max())
    idx.check_labels_in(labels[1], lambda x: x <= train_top,
                        f"the training labels' classes 0-{train_top} (no class list found)",
                        label_paths[1])
    parts = Path(root).parts + tuple(folder.split("/")) + (prefix,)
    if top < 10 and any("fashion" in p.lower() for p in parts):
        return FASHION_NAMES, "class names: Fashion-MNIST's (\"fashion\" in the path)"
    names = tuple(str(i) for i in range(top + 1))
    return names, (f"class names: none found (no mapping file), so max label + 1 = "
                   f"{top + 1} classes named 0-{top}")


# ---------------------------------------------------------------- the source


def load(spec: str) -> IdxData:
    """Read ``idx:`` path ``spec`` (see the module docstring): the four arrays
    (``{train,test}_images`` uint8 (N, 28, 28), ``{train,test}_labels`` int32 (N,)),
    class names and notes. ``DataError`` for every problem."""
    root, entries, prefix = open_tree(spec)
    (folder, set_prefix), roles = choose_set(root, entries, prefix)
    arrays, notes, labels, label_paths = {}, [], [], []
    for split in ("train", "test"):
        images_entry, images_data, images_notes = _pick(roles[(split, "images")],
                                                        (split, "images"))
        labels_entry, labels_data, labels_notes = _pick(roles[(split, "labels")],
                                                        (split, "labels"))
        images, shape_note = idx.images_from_bytes(images_data, images_entry.shown)
        split_labels, table_note = idx.labels_from_bytes(labels_data, labels_entry.shown)
        idx.check_split(images, split_labels, images_entry.shown, labels_entry.shown)
        arrays[f"{split}_images"] = images
        labels.append(split_labels)
        label_paths.append(labels_entry.shown)
        notes += images_notes + labels_notes + [n for n in (shape_note, table_note) if n]
    names, names_note = class_names(labels, label_paths, root, entries, folder, set_prefix)
    for split, split_labels in zip(("train", "test"), labels, strict=True):
        arrays[f"{split}_labels"] = split_labels.astype(np.int32)
    return IdxData(arrays, names, (*notes, names_note))
