"""What a data file really is, from its first bytes, whatever its name says.

Downloads go wrong in a handful of ways: an HTML error page or a Git LFS pointer saved
under the data file's name, a file compressed twice or with another compressor, an
archive where a file was expected, a NumPy or pickle file from another tutorial. Here:

* ``unwrap(data)`` undoes the layers the Python standard library can read: gzip, bzip2,
  xz, lzma (``.lzma``), zlib, and a zip or tar archive holding exactly one file,
  repeatedly (a ``.tar.gz`` of one file is two layers). It returns the inner bytes and
  the layers it removed.
* ``describe(data)`` says, in a few words, what non-IDX bytes are and what to do about
  them: other compressors (Unix compress, zstd, lz4, 7-Zip, RAR), archives of several
  files, web pages (with their title), JSON and XML error replies, Git LFS and
  git-annex pointers, images (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM), NumPy ``.npy``/
  ``.npz`` (with shapes), PyTorch files, pickles, HDF5, PDF, CSV or other text.

Magic numbers: the format specifications (gzip RFC 1952, zip APPNOTE, POSIX ustar,
PNG, ...) as collected in ``file(1)``'s magic database. Pure functions of bytes; nothing
is executed or unpickled.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import tarfile
import zipfile
import zlib
from typing import NamedTuple

MAX_LAYERS = 4
IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short (int16)",
             0x0C: "int (int32)", 0x0D: "float (float32)", 0x0E: "double (float64)"}


class Layer(NamedTuple):
    """One wrapping removed by ``unwrap``: its format and, for archives, the member."""

    format: str
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.format} member {self.member}" if self.member else self.format


def _is_lzma_alone(data: bytes) -> bool:
    """The legacy ``.lzma`` header: properties byte 0x5D, then a power-of-two dictionary."""
    if len(data) < 13 or data[0] != 0x5D:
        return False
    dict_size = int.from_bytes(data[1:5], "little")
    return dict_size >= 4096 and dict_size & (dict_size - 1) == 0


def _is_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0


# (name, test, decompress): the compressors the standard library reads.
DECOMPRESSORS = (
    ("gzip", lambda d: d[:2] == b"\x1f\x8b", gzip.decompress),
    ("bzip2", lambda d: d[:3] == b"BZh" and d[3:4].isdigit(), bz2.decompress),
    ("xz", lambda d: d[:6] == b"\xfd7zXZ\x00", lzma.decompress),
    ("lzma", _is_lzma_alone, lambda d: lzma.decompress(d, format=lzma.FORMAT_ALONE)),
    ("zlib", _is_zlib, zlib.decompress),
)


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def is_tar(data: bytes) -> bool:
    return len(data) >= 262 and data[257:262] == b"ustar"


def archive_members(data: bytes) -> list[str]:
    """The regular files in zip or tar ``data`` (directories and macOS ``__MACOSX/`` and
    ``._*`` resource forks left out), in archive order."""
    if is_zip(data):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
    else:
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            names = [m.name for m in t.getmembers() if m.isfile()]
    return [n for n in names if not is_junk(n)]


def is_junk(name: str) -> bool:
    """macOS metadata that zip tools add: ``__MACOSX/...`` and ``._name`` files."""
    parts = name.replace("\\", "/").split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def read_member(data: bytes, member: str) -> bytes:
    """The bytes of ``member`` of zip or tar archive ``data``."""
    if is_zip(data):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.read(member)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        f = t.extractfile(member)
        if f is None:
            raise KeyError(member)
        return f.read()


# Decompression is bounded (a few KiB of gzip can hold gigabytes of zeros): a layer is
# decompressed up to what the IDX header it holds announces (at least SMALL_BYTES, so
# that a few bytes of trailing data are still counted exactly), and at most MAX_BYTES.
PEEK_BYTES = 4 + 4 * 255  # the longest IDX header
SMALL_BYTES = 64 << 20
MAX_BYTES = 2 << 30  # EMNIST byclass's training images, the largest known, are 547 MB
STREAMS = {
    "gzip": lambda: zlib.decompressobj(31),
    "bzip2": bz2.BZ2Decompressor,
    "xz": lzma.LZMADecompressor,
    "lzma": lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE),
    "zlib": zlib.decompressobj,
}


def _stream(name: str, data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes (or all, when fewer) of the ``name``-compressed
    ``data``, multi-member like ``gzip.decompress``; ``EOFError`` when a stream ends
    early; the decompressors' own errors when it is corrupt."""
    out, rest = bytearray(), data
    while rest and len(out) < limit:
        stream = STREAMS[name]()
        out += stream.decompress(rest, limit - len(out))
        if len(out) >= limit:
            break
        if not stream.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        rest = stream.unused_data
        if name not in ("gzip", "bzip2") or not rest.strip(b"\0"):
            break  # one stream, as zlib/lzma.decompress read it (or zero padding)
    return bytes(out)


def _idx_bytes(head: bytes) -> int | None:
    """The size of the IDX file whose start is ``head``, as its header announces."""
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_TYPES:
        return None
    rank = head[3]
    if len(head) < 4 + 4 * rank:
        return None
    count = 1
    for i in range(rank):
        count *= int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big")
    size = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[head[2]]
    return 4 + 4 * rank + count * size


def decompress(name: str, data: bytes) -> bytes:
    """``data`` decompressed (``name``: a key of ``STREAMS``), bounded by what the IDX
    header inside announces, and by ``MAX_BYTES``; ``ValueError`` beyond."""
    announced = _idx_bytes(_stream(name, data, PEEK_BYTES))
    if announced is not None and announced > MAX_BYTES:
        raise ValueError(f"its IDX header announces {announced:,} bytes, more than the "
                         f"{MAX_BYTES >> 30} GiB jaxcnn reads")
    limit = MAX_BYTES + 1 if announced is None else max(announced + 1, SMALL_BYTES)
    out = _stream(name, data, limit)
    if len(out) > MAX_BYTES:
        raise ValueError(f"it decompresses to more than {MAX_BYTES >> 30} GiB, more than "
                         "any data set jaxcnn reads whole")
    return out


def unwrap(data: bytes) -> tuple[bytes, list[Layer]]:
    """Remove compression layers and single-file archives (at most ``MAX_LAYERS``).

    Returns ``(inner bytes, layers removed, outermost first)``. Raises ``ValueError``
    (message: the format and what went wrong) when a layer is corrupt or truncated.
    Archives of several files are returned as they are (``describe`` explains them).
    """
    layers: list[Layer] = []
    for _ in range(MAX_LAYERS):
        for name, test, _ in DECOMPRESSORS:
            if test(data):
                try:
                    data = decompress(name, data)  # bounded
                except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as exc:
                    if name == "zlib":  # a weak signature: not zlib after all
                        continue
                    raise ValueError(f"corrupt or truncated {name} data ({exc})") from exc
                layers.append(Layer(name))
                break
        else:
            if not (is_zip(data) or is_tar(data)):
                return data, layers
            kind = "zip" if is_zip(data) else "tar"
            try:
                members = archive_members(data)
            except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
                raise ValueError(f"corrupt or truncated {kind} archive ({exc})") from exc
            if len(members) != 1 or members[0].endswith((".npy", "data.pkl")):
                return data, layers  # several files, or a NumPy .npz / PyTorch file
            data = read_member(data, members[0])
            layers.append(Layer(kind, members[0]))
    return data, layers


def _text(data: bytes, limit: int = 4096) -> str | None:
    """The start of ``data`` as text, or None if it is not (mostly printable) text."""
    head = data[:limit]
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the limit
            return None
        text = head[:exc.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    return text if text and printable >= 0.95 * len(text) else None


def _npy_header(data: bytes) -> str:
    import numpy as np

    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read_header(f)
    except (ValueError, OSError, EOFError):
        return "a NumPy .npy file"
    return f"a NumPy .npy array, {dtype} {shape}"


def _zip_description(data: bytes) -> str:
    try:
        members = archive_members(data)
    except (zipfile.BadZipFile, EOFError, OSError):
        return "a damaged zip archive"
    if members and all(m.endswith(".npy") for m in members):
        arrays = []
        for m in members[:6]:
            arrays.append(f"{m[:-4]}: " + _npy_header(read_member(data, m))
                          .removeprefix("a NumPy .npy array, "))
        return (f"a NumPy .npz archive ({'; '.join(arrays)}), as Keras's mnist.npz; not IDX: "
                "save its arrays with jaxcnn.data.idx.encode_idx, or get the IDX files")
    if any(m.endswith("data.pkl") for m in members):
        return ("a PyTorch file (torch.save, e.g. torchvision's processed/*.pt); not IDX: "
                "use the IDX files from torchvision's raw/ folder next to it")
    return _archive_advice("zip", members, "unzip FILE -d DIR")


def _archive_advice(kind: str, members: list[str], command: str) -> str:
    shown = ", ".join(members[:6]) + (f", ... ({len(members)} in all)" if len(members) > 6
                                      else "")
    return (f"a {kind} archive of {len(members)} files ({shown or 'empty'}); point idx: at "
            f"the archive itself, or unpack it (`{command}`) and point idx: at the folder")


def _markup_description(text: str) -> str | None:
    low = text.lstrip().lower()
    if not low.startswith("<"):
        return None
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    code = re.search(r"<code>(.*?)</code>", text, re.I | re.S)
    if low.startswith(("<!doctype html", "<html", "<head", "<body", "<!--", "<meta")) or title:
        said = f" titled {' '.join(title.group(1).split())[:80]!r}" if title else ""
        return (f"an HTML web page{said}, not data: the download failed and saved the "
                "server's page under this name; download the file again (check the URL)")
    if low.startswith("<?xml") or low.startswith("<error"):
        said = f" with error code {code.group(1).strip()[:60]!r}" if code else ""
        return (f"an XML document{said} (a storage server's error reply?), not data; "
                "download the file again (check the URL)")
    return None


IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
OTHER_MAGIC = (
    (b"\x1f\x9d", "Unix compress (.Z) data: Python cannot read it; run `uncompress FILE` "
                  "(or `gzip -d FILE`), then point idx: at the result"),
    (b"(\xb5/\xfd", "zstd-compressed data: run `zstd -d FILE`, then point idx: at the result"),
    (b"\x04\"M\x18", "lz4-compressed data: run `lz4 -d FILE`, then point idx: at the result"),
    (b"7z\xbc\xaf'\x1c", "a 7-Zip archive: unpack it (`7z x FILE`) and point idx: at the folder"),
    (b"Rar!\x1a\x07", "a RAR archive: unpack it (`unrar x FILE`) and point idx: at the folder"),
    (b"\x93NUMPY", None),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file, not IDX: read it with h5py and save the arrays "
                           "with jaxcnn.data.idx.encode_idx, or get the IDX files"),
    (b"%PDF", "a PDF document, not data"),
)


def describe(data: bytes) -> str:
    """What ``data`` (already ``unwrap``-ed) is, and what to do, as a phrase for a message
    such as ``f"{path}: this is {describe(data)}"``. For bytes that are not recognised
    (nor IDX), the first bytes in hex and as text."""
    if not data:
        return "an empty file (0 bytes): the download or copy failed; fetch the file again"
    for magic, what in IMAGE_MAGIC:
        if data.startswith(magic):
            return (f"{what}, not an IDX file: jaxcnn reads the IDX files of MNIST-format "
                    "data sets, not folders of image files")
    if data[:2] == b"BM" and len(data) >= 26 and int.from_bytes(data[2:6], "little") == len(data):
        return "a BMP image, not an IDX file: jaxcnn reads IDX files, not image files"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP image, not an IDX file: jaxcnn reads IDX files, not image files"
    if re.match(rb"P[1-6]\s", data[:3]):
        return "a PNM/PGM image, not an IDX file: jaxcnn reads IDX files, not image files"
    for magic, what in OTHER_MAGIC:
        if data.startswith(magic):
            if magic == b"\x93NUMPY":
                return (f"{_npy_header(data)}, not IDX: save it with "
                        "jaxcnn.data.idx.encode_idx, or get the IDX files")
            return what
    if is_zip(data):
        return _zip_description(data)
    if is_tar(data):
        try:
            return _archive_advice("tar", archive_members(data), "tar -xf FILE -C DIR")
        except (tarfile.TarError, EOFError, OSError):
            return "a damaged tar archive"
    if data[0] == 0x80 and len(data) > 1 and 2 <= data[1] <= 5:
        return ("a Python pickle (e.g. mnist.pkl.gz of the Theano tutorials), not IDX; "
                "jaxcnn never unpickles files (unpickling can run code): get the IDX files")
    if len(data) >= 4 and data[2:4] == b"\x00\x00" and data[1] in IDX_TYPES and 1 <= data[0] <= 4:
        return (f"an IDX file whose header was written little-endian (bytes "
                f"{data[:4].hex(' ')}, expected {bytes([0, 0, data[1], data[0]]).hex(' ')}); "
                "rewrite it big-endian as the IDX format requires")
    text = _text(data)
    if text is not None:
        return _describe_text(text)
    head = data[:8]
    shown = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    return (f"not an IDX file nor any format jaxcnn recognises: it starts with bytes "
            f"{head.hex(' ')} ({shown!r}); check that it is the right file")


def _describe_text(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("version https://git-lfs.github.com/spec/"):
        return ("a Git LFS pointer, not the data: run `git lfs pull` in the repository "
                "that holds it")
    if "/annex/objects/" in stripped[:300] or stripped.startswith("../.git/annex/"):
        return "a git-annex pointer, not the data: run `git annex get FILE`"
    markup = _markup_description(text)
    if markup:
        return markup
    if stripped.startswith(("{", "[")):
        try:
            json.loads(stripped)
            shape = "JSON text"
        except (ValueError, RecursionError):  # cut at 4 KiB, or nested very deeply
            shape = "JSON-like text"
        return (f"{shape} ({' '.join(stripped[:80].split())!r}), perhaps a server's error "
                "reply saved under this name; download the file again")
    first = stripped.splitlines()[0] if stripped else ""
    if first.count(",") >= 2:
        return (f"CSV text (first line {first[:60]!r}{'...' if len(first) > 60 else ''}), "
                "not IDX; jaxcnn reads the IDX files of MNIST-format data sets")
    return (f"a text file ({' '.join(stripped[:60].split())!r}), not IDX; check that it is "
            "the right file")
