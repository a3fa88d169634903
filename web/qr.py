"""QR images drawn here, from the `qrcode` package's matrix: SVG (one path, crisp at any size) and PNG
(zlib only, no imaging library). For the personal code (`/api/v1/me/code`) and the pages (kiosk)."""

from __future__ import annotations

import struct
import zlib

import qrcode
import qrcode.constants


def matrix(data: str, border: int = 4) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=1, border=border)
    qr.add_data(data)
    qr.make(fit=True)
    return [[bool(c) for c in row] for row in qr.get_matrix()]


def svg(data: str, *, border: int = 4, title: str = "") -> str:
    """The QR code of `data` as an SVG document (one module = one user unit; scale it with CSS)."""
    m = matrix(data, border)
    n = len(m)
    path = "".join(f"M{x},{y}h1v1h-1z" for y, row in enumerate(m) for x, dark in enumerate(row) if dark)
    label = f"<title>{_escape(title)}</title>" if title else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" shape-rendering="crispEdges" '
            f'role="img">{label}<rect width="{n}" height="{n}" fill="#fff"/><path d="{path}" fill="#000"/></svg>')


def png(data: str, *, box: int = 8, border: int = 4) -> bytes:
    """The QR code of `data` as a black-and-white 8-bit greyscale PNG, `box` pixels per module."""
    m = matrix(data, border)
    rows = []
    for line in m:
        pixels = b"".join(b"\x00" * box if dark else b"\xff" * box for dark in line)
        rows.extend([b"\x00" + pixels] * box)  # filter type 0 per scanline
    size = len(m) * box

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
