"""What an uploaded file is: its type (by extension AND by content), a safe display name, its plain text.

Pure functions over bytes and file objects; no storage, no MongoDB. A file is accepted only
when its extension and its sniffed content name the same type, so a renamed executable or
an HTML page called `lease.pdf` is refused.

Text is extracted for text/plain and text/csv only. PDFs and DOCX files are stored without
text: no pure-Python PDF extractor is installed in this project and we add no heavy
dependency for it (issue 4); searching them by text needs one later (pypdf would do).
"""

import codecs
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import IO

PDF, PNG, JPEG, TXT, CSV, DOCX = "pdf", "png", "jpeg", "txt", "csv", "docx"

MIME_TYPES = {
    PDF: "application/pdf",
    PNG: "image/png",
    JPEG: "image/jpeg",
    TXT: "text/plain",
    CSV: "text/csv",
    DOCX: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
# File name extension -> type.
EXTENSIONS = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".txt": TXT,
    ".csv": CSV,
    ".docx": DOCX,
}
# Stored file names use one extension per type.
STORED_EXTENSION = {PDF: ".pdf", PNG: ".png", JPEG: ".jpg", TXT: ".txt", CSV: ".csv", DOCX: ".docx"}

MAX_NAME_CHARS = 255
MAX_TEXT_CHARS = 1_000_000  # textContent is for search; a 16 MiB document limit must never be in reach
CHUNK = 64 * 1024

UNSUPPORTED_EXTENSION = "The file type is not allowed: send a .pdf, .png, .jpg, .jpeg, .txt, .csv or .docx file."
CONTENT_MISMATCH = "The file's content does not match its extension ({expected}); it was not stored."
EMPTY_FILE = "The file is empty."

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Control bytes no text file holds (tab, LF, FF and CR are fine); none occurs inside UTF-8 sequences.
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f]")


@dataclass(frozen=True)
class Sniffed:
    kind: str
    mime_type: str
    text: str | None  # extracted plain text (txt, csv), else None


class FileRejected(ValueError):
    """The file is not one of the allowed types, or its content contradicts its extension."""


def display_name(raw: str | None) -> str:
    """The client's file name made safe to store and echo: no path, no control characters, at most 255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFC", _CONTROL.sub("", name)).strip().lstrip(".")
    if not name:
        return "upload"
    if len(name) > MAX_NAME_CHARS:
        _, dot, ext = name.rpartition(".")
        keep = f".{ext}" if dot and len(ext) <= 10 else ""
        name = name[: MAX_NAME_CHARS - len(keep)] + keep
    return name


def kind_of_name(name: str) -> str:
    """The type named by the file's extension; FileRejected for any other extension."""
    _, dot, ext = name.lower().rpartition(".")
    kind = EXTENSIONS.get(f".{ext}") if dot else None
    if kind is None:
        raise FileRejected(UNSUPPORTED_EXTENSION)
    return kind


def _is_docx(file: IO[bytes]) -> bool:
    """A ZIP archive holding `word/document.xml` (reads the central directory only)."""
    try:
        file.seek(0)
        with zipfile.ZipFile(file) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _text(file: IO[bytes]) -> str | None:
    """The file decoded as text (UTF-8, with or without BOM, else Windows-1252), or None when it is binary."""
    for encoding in ("utf-8-sig", "cp1252"):
        file.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        parts: list[str] = []
        size = 0
        try:
            while chunk := file.read(CHUNK):
                if _BINARY.search(chunk):
                    return None
                piece = decoder.decode(chunk)
                if size < MAX_TEXT_CHARS:
                    parts.append(piece)
                    size += len(piece)
            tail = decoder.decode(b"", final=True)
            parts.append(tail)
        except UnicodeDecodeError:
            continue
        return "".join(parts)[:MAX_TEXT_CHARS]
    return None


def sniff(file: IO[bytes], name: str) -> Sniffed:
    """The file's type when its extension and its content agree; FileRejected otherwise.

    `file` must be seekable; it is left at position 0.
    """
    expected = kind_of_name(name)
    file.seek(0)
    head = file.read(8)
    if not head:
        raise FileRejected(EMPTY_FILE)
    text: str | None = None
    if head.startswith(b"%PDF-"):
        found = PDF
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        found = PNG
    elif head.startswith(b"\xff\xd8\xff"):
        found = JPEG
    elif head.startswith(b"PK\x03\x04") and _is_docx(file):
        found = DOCX
    elif expected in (TXT, CSV) and (text := _text(file)) is not None:
        found = expected
    else:
        found = "unknown"
    file.seek(0)
    if found != expected:
        raise FileRejected(CONTENT_MISMATCH.format(expected=expected))
    return Sniffed(kind=found, mime_type=MIME_TYPES[found], text=text)
