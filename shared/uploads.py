"""Uploaded files (ledgers, lab results): their digest, so the same content applies once."""

import hashlib
from typing import BinaryIO


def file_digest(file: BinaryIO) -> str:
    """The SHA-256 of the file's content from where it stands; the position is kept."""
    digest = hashlib.sha256()
    start = file.tell()
    while chunk := file.read(1 << 20):
        digest.update(chunk)
    file.seek(start)
    return digest.hexdigest()
