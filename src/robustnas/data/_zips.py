"""Opening untrusted zip archives (image-folder ``.zip`` files and ``.npz`` arrays) with one-line errors."""
from __future__ import annotations

import lzma
import zipfile
import zlib
from pathlib import Path

from robustnas.errors import RobustnasError

# What reading a damaged archive or member raises: truncation (EOFError, BadZipFile), bad CRCs
# (BadZipFile), corrupt deflate/LZMA streams (zlib.error, LZMAError), unsupported compression
# methods (NotImplementedError), malformed headers (ValueError) and I/O failures (OSError).
ZIP_ERRORS = (
    OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError
)
_ENCRYPTED = 0x1  # general purpose bit 0: the member is encrypted (PKWARE APPNOTE.TXT 4.4.4)


def open_zip(path: Path, what: str) -> zipfile.ZipFile:
    """``path`` as an open ZipFile, refusing password-protected archives up front.

    ``what`` names the expected kind of file in the error (e.g. ".npz file"). Without the
    encryption check, reading a member later fails with zipfile's RuntimeError asking for a password.
    """
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as error:
        raise RobustnasError(
            f"{path}: not a readable {what} (not a zip archive, or truncated): {error}"
        ) from None
    encrypted = next((info.filename for info in archive.infolist() if info.flag_bits & _ENCRYPTED), None)
    if encrypted is not None:
        archive.close()
        raise RobustnasError(
            f"{path}: member '{encrypted}' is encrypted; robustnas does not read password-protected "
            "archives: extract it and zip it again without a password"
        )
    return archive
